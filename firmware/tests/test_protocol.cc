// Host tests of the firmware's protocol core (no TFLM). Prints "firmware: N passed, M failed".
#include <cstdio>
#include <cstring>
#include <string>

#include "app/wrap_counter.h"
#include "fake_engine.h"
#include "protocol/protocol.h"

using namespace audio_nas;

static std::string g_out;
static void Write(const char* t, size_t n) { g_out.append(t, n); }
static uint64_t Now() { return 1234; }
static const Board kBoard{"test-board", 25000000u, Now, Write};
static int g_pass = 0, g_fail = 0;

#define CHECK(cond)                                                  \
  do {                                                               \
    if (cond) {                                                      \
      ++g_pass;                                                      \
    } else {                                                         \
      ++g_fail;                                                      \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
      std::printf("  output so far: %s\n", g_out.c_str());           \
    }                                                                \
  } while (0)

static uint8_t g_model[4096];
static uint8_t g_input[256];

static std::string Run(CommandHandler& h, const char* bytes) {
  static LineAssembler a;
  g_out.clear();
  for (const char* p = bytes; *p; ++p) {
    switch (a.Feed(static_cast<uint8_t>(*p))) {
      case LineAssembler::Result::kCommand: h.Handle(a.command(), a.length()); break;
      case LineAssembler::Result::kTooLong: h.Error("line too long"); break;
      case LineAssembler::Result::kInvalidByte: h.Error("invalid byte"); break;
      default: break;
    }
  }
  return g_out;
}

static bool Has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

int main() {
  // CRC-32 check value
  CHECK(Crc32(reinterpret_cast<const uint8_t*>("123456789"), 9) == 0xCBF43926u);
  uint8_t hex[4];
  CHECK(HexDecode("00fFa1", 6, hex, 4) == 3 && hex[1] == 0xFF && hex[2] == 0xA1);
  CHECK(HexDecode("0", 1, hex, 4) == -1 && HexDecode("zz", 2, hex, 4) == -1 && HexDecode("0011223344", 10, hex, 4) == -1);

  ModelStore store(g_model, sizeof g_model);
  CommandHandler h(kBoard, store, g_input, sizeof g_input);
  std::string r = Run(h, "name%");
  CHECK(r == "m-name-dut-[test-board]\r\nm-ready\r\n");
  CHECK(Has(Run(h, "\r\nprofile%"), "m-model-[kws01]"));
  CHECK(Has(Run(h, "timestamp%"), "m-lap-us-1234"));
  CHECK(Has(Run(h, "ping%"), "m-pong\r\nm-ready"));
  CHECK(Has(Run(h, "frobnicate%"), "e-[unknown command: frobnicate]\r\nm-ready"));
  // db load / db / overflow
  CHECK(Has(Run(h, "db load 4%"), "m-[Expecting 4 bytes]"));
  CHECK(!Has(Run(h, "db 0102%"), "m-load-done"));
  CHECK(Has(Run(h, "db 0304%"), "m-load-done") && g_input[3] == 4);
  CHECK(Has(Run(h, "db 05%"), "e-[db overflow]"));
  CHECK(Has(Run(h, "db load 100000%"), "e-[db load too large"));
  CHECK(Has(Run(h, "db load -1%"), "e-[bad argument: db]"));
  // model upload with CRC
  const char* payload = "abcdefgh";
  char cmd[64];
  std::snprintf(cmd, sizeof cmd, "model load 8 %08lx%%", static_cast<unsigned long>(Crc32(reinterpret_cast<const uint8_t*>(payload), 8)));
  CHECK(Has(Run(h, cmd), "m-expecting-8"));
  CHECK(Has(Run(h, "model 0 61626364%"), "m-ack-4"));
  CHECK(Has(Run(h, "model 2 6162%"), "e-[bad offset: got 2, expected 4]"));
  r = Run(h, "model 4 65666768%");
  CHECK(Has(r, "m-ack-8") && Has(r, "m-model-ok-"));
  CHECK(Has(Run(h, "model info%"), "m-model-bytes-8"));
  CHECK(Has(Run(h, "model load 4 00000000%model 0 61626364%"), "e-[crc mismatch: expected 00000000 got"));
  CHECK(Has(Run(h, "model load 99999999 00000000%"), "e-[model too large"));
  CHECK(Has(Run(h, "model load 2 00000000%model 0 616263%"), "e-[model overflow]"));
  CHECK(Has(Run(h, "model 0 6162%"), "e-[no upload in progress"));
  CHECK(Has(Run(h, "model load 2 0000%"), "e-[bad argument: model]"));
  // inference needs TFLM
  CHECK(Has(Run(h, "infer 1 0%"), "built without TFLM"));
  // framing errors and recovery
  std::string longline(1500, 'x');
  longline += "%name%";
  r = Run(h, longline.c_str());
  CHECK(Has(r, "e-[line too long]") && Has(r, "m-name-dut-"));
  r = Run(h, "na\x01me%ping%");
  CHECK(Has(r, "e-[invalid byte]") && Has(r, "m-pong"));
  // ---- with an inference engine (the fake one: out[c] = last frame's bin c, scale 0.1)
  {
    static uint8_t model[64], input[64];
    static FakeEngine engine;
    static uint64_t cycle = 0;
    static bool marker_high = false;
    static int marker_edges = 0;
    Board board = kBoard;
    board.cycles = []() -> uint64_t { return cycle += 1000; };
    board.timer_name = "fake";
    board.marker = [](bool high) { marker_high = high; ++marker_edges; };
    ModelStore st(model, sizeof model);
    Services services;
    services.engine = &engine;
    CommandHandler e(board, st, input, sizeof input, services);
    CHECK(Has(Run(e, "version%"), "m-tflm-1"));
    CHECK(Has(Run(e, "model activate 0%"), "e-[no model]"));
    std::snprintf(cmd, sizeof cmd, "model load 4 %08lx%%model 0 46414b45%%",
                  static_cast<unsigned long>(Crc32(reinterpret_cast<const uint8_t*>("FAKE"), 4)));
    CHECK(Has(Run(e, cmd), "m-model-ok-"));
    CHECK(Has(Run(e, "infer 1 0%"), "e-[no model]"));  // uploaded but not activated
    CHECK(Has(Run(e, "model activate 50%"), "e-[arena too small: need 100]"));
    r = Run(e, "model activate 0%");
    CHECK(Has(r, "m-arena-used-100") && Has(r, "m-input-1x4x3x1-0.5--1") && Has(r, "m-output-1x3-0.1-0"));
    CHECK(Has(Run(e, "infer 1 0%"), "e-[input not loaded]"));
    Run(e, "db load 12%");
    CHECK(Has(Run(e, "db 000000000000000000%db 0a14e2%"), "m-load-done"));
    CHECK(Has(Run(e, "db print 3%"), "m-buffer-[000000]"));
    r = Run(e, "infer 3 2%");
    CHECK(Has(r, "m-warmup-start-2") && Has(r, "m-infer-start-3") && Has(r, "m-infer-done"));
    CHECK(Has(r, "m-results-[1.000000,2.000000,-3.000000]"));  // 0x0a, 0x14, 0xe2 = 10, 20, -30 x 0.1
    CHECK(engine.invocations == 5 && !marker_high && marker_edges == 2);
    r = Run(e, "stats%");
    CHECK(Has(r, "m-cycles-last-") && Has(r, "m-infer-count-5") && Has(r, "m-timer-fake"));
    CHECK(Has(Run(e, "results%"), "m-results-[1.000000,2.000000,-3.000000]"));
    // streaming: frames of 3 bins, inference every 2 frames after the first 4; class 0 is background
    CHECK(Has(Run(e, "stream 000000%"), "e-[no stream: send stream start first]"));
    CHECK(Has(Run(e, "stream start sideways%"), "e-[bad argument: stream]"));
    CHECK(Has(Run(e, "stream start features 2 600 ignore=0%"), "m-stream-started"));
    CHECK(Has(Run(e, "stream 0000%"), "e-[stream data must be whole frames of 3 bytes]"));
    r = Run(e, "stream 000000000000000000%");  // 3 frames: no inference yet
    CHECK(!Has(r, "m-scores-"));
    r = Run(e, "stream 000064 20%");  // frame 4 -> first inference, class 2 logit 10 -> p ~ 1
    CHECK(Has(r, "m-scores-[0.0000,0.0000,0.9999]") && Has(r, "m-det-2-1000-80"));
    r = Run(e, "stream 640000640000%");  // frames 5, 6: class 0 (ignored) dominates, no detection
    CHECK(Has(r, "m-scores-[0.9999,0.0000,0.0000]") && !Has(r, "m-det-"));
    CHECK(Has(Run(e, "stream stop%"), "m-stream-stopped-2"));
    CHECK(Has(Run(e, "frontend%"), "e-[no front-end"));
    const int before = engine.deactivations;
    CHECK(Has(Run(e, "model load 4 00000000%"), "m-expecting-4") && engine.deactivations == before + 1 &&
          !engine.active());
    CHECK(Has(Run(e, "infer 1 0%"), "e-[no model]"));
    CHECK(Has(Run(e, "reset%"), "e-[reset not supported"));
  }
  // ---- the command dispatch table (protocol.h): every documented command is a row, names are unique, each
  // row is what Handle() dispatches to, and anything else is an unknown command
  {
    size_t count = 0;
    const CommandHandler::Command* table = CommandHandler::commands(&count);
    const char* documented[] = {"name",    "profile", "ping",   "timestamp", "version", "db",   "model",
                                "infer",   "results", "stream", "frontend",  "stats",   "reset"};
    CHECK(table != nullptr && count == sizeof documented / sizeof *documented);
    for (const char* d : documented) {
      int rows = 0;
      for (size_t i = 0; i < count; ++i) rows += std::strcmp(table[i].name, d) == 0 && table[i].run != nullptr;
      CHECK(rows == 1);
    }
    for (size_t i = 0; i < count; ++i) {
      std::snprintf(cmd, sizeof cmd, "%s%%", table[i].name);
      r = Run(h, cmd);
      CHECK(!Has(r, "e-[unknown command") && r.size() >= 9 && r.compare(r.size() - 9, 9, "m-ready\r\n") == 0);
    }
    CHECK(Has(Run(h, "nam%"), "e-[unknown command: nam]\r\nm-ready\r\n"));
    CHECK(Has(Run(h, "NAME%"), "e-[unknown command: NAME]"));
  }
  // ---- CRC arguments are exactly 8 hex digits: no sign, no 0x prefix (docs/protocol.md)
  {
    uint32_t crc = 0;
    CHECK(ParseCrc("deadBEEF", &crc) && crc == 0xDEADBEEFu);
    CHECK(ParseCrc("00000000", &crc) && crc == 0u);
    const char* bad[] = {"+1234567", "-0000001", "0x123456", "0X123456", "1234567",  "123456789",
                         "1234567g", "",         " 1234567", "12 34567", "+0x12345", "ffffffff0"};
    bool refused = true;
    for (const char* b : bad) refused = refused && !ParseCrc(b, &crc);
    CHECK(refused);
    CHECK(!ParseCrc(nullptr, &crc));
    CHECK(Has(Run(h, "model load 4 +1234567%"), "e-[bad argument: model]"));
    CHECK(Has(Run(h, "model load 4 -0000001%"), "e-[bad argument: model]"));
    CHECK(Has(Run(h, "model load 4 0x123456%"), "e-[bad argument: model]"));
    CHECK(Has(Run(h, "model load 4 DEADBEEF%"), "m-expecting-4"));
  }
  // ---- shapes and front-end tables at the limits (the fake engine's shape is set per case)
  {
    static uint8_t model[64], input[4096];
    static FakeEngine engine;
    static int16_t hann[1024], tw_re[512], tw_im[512], lut[256];
    static int32_t mel[300 * 9], fre[1024], fim[1024];
    // a tiny front-end: window 16, hop 8 at 800 Hz (10 ms), n_fft 16; all-zero weights -> every mel = lut[0]
    FixedFrontendTables tables{16, 8, 16, 3, hann, tw_re, tw_im, mel, lut};
    tables.sample_rate_hz = 800;
    ModelStore st(model, sizeof model);
    Services services;
    services.engine = &engine;
    services.frontend = &tables;
    services.frontend_scratch = {fre, fim};
    CommandHandler e(kBoard, st, input, sizeof input, services);
    std::snprintf(cmd, sizeof cmd, "model load 4 %08lx%%model 0 46414b45%%",
                  static_cast<unsigned long>(Crc32(reinterpret_cast<const uint8_t*>("FAKE"), 4)));
    CHECK(Has(Run(e, cmd), "m-model-ok-"));
    const std::string zeros_40_samples(160, '0');
    const std::string audio = "stream " + zeros_40_samples + "%";
    // a model input with zero bins per frame is refused at stream start: no division by a zero bin count later
    engine.f = 0;
    CHECK(Has(Run(e, "model activate 0%"), "m-arena-used-"));
    CHECK(Has(Run(e, "stream start features 1 0%"), "e-[model shape not streamable"));
    CHECK(Has(Run(e, "stream 00%"), "e-[no stream: send stream start first]"));
    CHECK(Has(Run(e, "stream start audio 1 0%"), "e-[model shape not streamable"));
    CHECK(Has(Run(e, audio.c_str()), "e-[no stream"));
    engine.t = 0, engine.f = 3;  // zero frames
    CHECK(Has(Run(e, "model activate 0%stream start features 1 0%"), "e-[model shape not streamable"));
    // re-activating a model stops a running stream (its shape may differ)
    engine.t = 4;
    CHECK(Has(Run(e, "model activate 0%stream start features 1 0%"), "m-stream-started"));
    engine.f = 0;
    r = Run(e, "model activate 0%stream 00%");
    CHECK(Has(r, "m-arena-used-") && Has(r, "e-[no stream"));
    engine.f = 3;
    CHECK(Has(Run(e, "model activate 0%"), "m-arena-used-"));
    // a zero hop would divide by zero for every sample: refused with the tables' limits named
    tables.hop_samples = 0;
    CHECK(Has(Run(e, "stream start audio 1 0%"), "e-[front-end tables out of range"));
    CHECK(Has(Run(e, audio.c_str()), "e-[no stream"));
    tables.hop_samples = 8;
    tables.sample_rate_hz = 0;
    CHECK(Has(Run(e, "stream start audio 1 0%"), "e-[front-end tables out of range"));
    tables.sample_rate_hz = 800;
    // the audio path checks n_mels <= 256 (its frame buffers) even when the model asks for as many bins
    tables.n_mels = 300;
    engine.t = 1, engine.f = 300;
    CHECK(Has(Run(e, "model activate 0%"), "m-input-1x1x300x1-"));
    CHECK(Has(Run(e, "stream start audio 1 0%"), "e-[front-end tables out of range"));
    CHECK(Has(Run(e, audio.c_str()), "e-[no stream"));
    Run(e, "db load 32%");
    CHECK(Has(Run(e, "db 0000000000000000000000000000000000000000000000000000000000000000%"), "m-load-done"));
    CHECK(Has(Run(e, "frontend%"), "e-[front-end tables out of range"));
    // the audio hop is the front-end's (8 samples at 800 Hz = 10 ms), not 20 ms: first inference after 4 frames
    tables.n_mels = 3;
    engine.t = 4, engine.f = 3;
    CHECK(Has(Run(e, "model activate 0%"), "m-input-1x4x3x1-"));
    CHECK(Has(Run(e, "stream start audio 1 0%"), "m-stream-started"));
    r = Run(e, audio.c_str());  // 40 samples: frames end at samples 16, 24, 32, 40
    CHECK(Has(r, "m-scores-[0.3333,0.3333,0.3333]") && Has(r, "m-det-0-333-40\r\n"));
    CHECK(Has(Run(e, "stream stop%"), "m-stream-stopped-1"));
    CHECK(Has(Run(e, "stream start audio 1 0%"), "m-stream-started"));
    const std::string audio_hop = "stream " + zeros_40_samples + " 25%";  // an explicit HOP_MS still wins
    CHECK(Has(Run(e, audio_hop.c_str()), "m-det-0-333-100\r\n"));
    Run(e, "stream stop%");
    // reply lines are never cut: a results line over 1198 characters is an explicit error
    engine.classes = 200;  // 200 x "-3.200000," does not fit
    Run(e, "db load 12%db 0a14e20a14e20a14e20a14e2%");
    r = Run(e, "infer 1 0%");
    CHECK(Has(r, "m-infer-done\r\ne-[reply too long: results line over 1198 characters]\r\nm-ready\r\n") &&
          !Has(r, "m-results-"));
    CHECK(Run(e, "results%") == "e-[reply too long: results line over 1198 characters]\r\nm-ready\r\n");
    engine.classes = 100;  // 100 x at most 10 characters + 12 fits
    r = Run(e, "results%");
    CHECK(Has(r, "m-results-[1.000000,2.000000,-3.000000,0.000000") && Has(r, "0.000000]\r\nm-ready\r\n"));
    engine.classes = 3;
    // ... and so is a front-end frame over 1198 characters (256 mels of "10000,")
    for (int16_t& v : lut) v = 10000;
    tables.n_mels = 256;
    Run(e, "db load 32%db 0000000000000000000000000000000000000000000000000000000000000000%");
    CHECK(Run(e, "frontend%") == "e-[reply too long: frame line over 1198 characters]\r\nm-ready\r\n");
    tables.n_mels = 150;
    r = Run(e, "frontend%");
    CHECK(Has(r, "m-frame-[10000,10000,") && Has(r, ",10000]\r\nm-cycles-0\r\nm-ready\r\n"));
    // n_fft must be a power of two
    tables.n_fft = 24;
    CHECK(Has(Run(e, "frontend%"), "e-[front-end tables out of range"));
    CHECK(!ComputeFrame(tables, hann, {fre, fim}, reinterpret_cast<int16_t*>(fre)));
  }
  // ---- 32-bit counters (Arduino micros() wraps after 71.6 min, DWT CYCCNT after 67 s at 64 MHz) extended to 64 bits
  {
    WrapCounter w;
    CHECK(w.Extend(100u) == 100u);
    CHECK(w.Extend(0xFFFFFF00u) == 0xFFFFFF00ull);
    CHECK(w.Extend(0x00000100u) == 0x100000100ull);  // wrapped: still 0x200 later, not 2^32 earlier
    CHECK(w.Extend(0x80000000u) == 0x180000000ull);
    CHECK(w.Extend(0x10u) == 0x200000010ull);
    // a board whose counters are 32 bits wide and only advance while inferences run (3e9 ticks each): infer
    // reads them after every inference, so 3 inferences over 2 wraps still time as 3e9 each
    static uint64_t sim = 0;
    static WrapCounter cyc, us;
    static uint8_t model[64], input[64];
    static FakeEngine engine;
    engine.on_invoke = [] { sim += 3000000000ull; };
    Board board = kBoard;
    board.cycles = []() -> uint64_t { return cyc.Extend(static_cast<uint32_t>(sim)); };
    board.time_us = []() -> uint64_t { return us.Extend(static_cast<uint32_t>(sim / 1000u)); };
    ModelStore st(model, sizeof model);
    Services services;
    services.engine = &engine;
    CommandHandler e(board, st, input, sizeof input, services);
    std::snprintf(cmd, sizeof cmd, "model load 4 %08lx%%model 0 46414b45%%model activate 0%%",
                  static_cast<unsigned long>(Crc32(reinterpret_cast<const uint8_t*>("FAKE"), 4)));
    CHECK(Has(Run(e, cmd), "m-arena-used-"));
    Run(e, "db load 12%db 000000000000000000000000%");
    r = Run(e, "infer 3 0%");
    CHECK(Has(r, "m-lap-us-0\r\nm-lap-us-9000000\r\n"));  // t1 - t0 = 9 s in microseconds, across a wrap
    CHECK(Has(Run(e, "stats%"), "m-cycles-last-3000000000\r\n"));
  }
  // ring buffer: oldest first after wrap-around
  {
    int buf[4];
    RingBuffer<int> ring(buf, 4);
    ring.Fill(0);
    const int a[6] = {1, 2, 3, 4, 5, 6};
    ring.Push(a, 6);
    int out[4];
    ring.CopyLast(out, 4);
    CHECK(out[0] == 3 && out[1] == 4 && out[2] == 5 && out[3] == 6);
    ring.CopyLast(out, 2);
    CHECK(out[0] == 5 && out[1] == 6);
  }
  // recognizer: averaging window, threshold, refractory time, ignored classes
  {
    Recognizer rec;
    rec.Reset(2, 0.7f, 1u << 0, 600, 1000);
    const float fg[2] = {0.0f, 1.0f}, bg[2] = {1.0f, 0.0f};
    Detection d;
    CHECK(!rec.Update(0, bg, &d));
    CHECK(!rec.Update(100, fg, &d));           // average 0.5 < 0.7
    CHECK(!rec.Update(200, fg, &d));           // 0.667
    CHECK(rec.Update(300, fg, &d) && d.label == 1 && d.time_ms == 300);  // 0.75
    CHECK(!rec.Update(400, fg, &d));           // refractory
    CHECK(rec.Update(1300, fg, &d) && d.time_ms == 1300);  // window holds only 700..1300 entries
  }
  std::printf("firmware: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
