// Host tests of the firmware's protocol core (no TFLM). Prints "firmware: N passed, M failed".
#include <cstdio>
#include <cstring>
#include <string>

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
  std::printf("firmware: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
