#include "protocol/protocol.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace audio_nas {

uint32_t Crc32(const uint8_t* data, size_t len, uint32_t crc) {
  // Bitwise CRC-32 (IEEE 802.3, reflected): slow but table-free, so it costs no flash on a small board.
  crc = ~crc;
  for (size_t i = 0; i < len; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseCrc(const char* text, uint32_t* out) {
  // strtoul would also take a sign, a 0x prefix or leading spaces: the protocol allows 8 hex digits only
  if (!text) return false;
  uint32_t v = 0;
  size_t i = 0;
  for (; text[i] != '\0'; ++i) {
    const int d = HexDigit(text[i]);
    if (d < 0 || i >= 8) return false;
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  if (i != 8) return false;
  *out = v;
  return true;
}

bool FrontendTablesUsable(const FixedFrontendTables& t) {
  return t.window_samples >= 1 && static_cast<size_t>(t.window_samples) <= kMaxWindowSamples && t.hop_samples >= 1 &&
         t.n_fft >= 2 && (t.n_fft & (t.n_fft - 1)) == 0 && t.n_fft >= t.window_samples && t.n_mels >= 1 &&
         t.n_mels <= kMaxMels && t.sample_rate_hz > 0;
}

int HexDecode(const char* hex, size_t len, uint8_t* out, size_t cap) {
  if (len % 2 != 0 || len / 2 > cap) return -1;
  for (size_t i = 0; i < len / 2; ++i) {
    const int hi = HexDigit(hex[2 * i]), lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return static_cast<int>(len / 2);
}

LineAssembler::Result LineAssembler::Feed(uint8_t b) {
  if (done_) {
    len_ = 0;
    done_ = false;
  }
  if (b == '%') {
    Result r = overflow_ ? Result::kTooLong : invalid_ ? Result::kInvalidByte : Result::kCommand;
    buf_[len_] = '\0';
    if (r != Result::kCommand) len_ = 0;
    done_ = r == Result::kCommand;
    overflow_ = invalid_ = false;
    return r;
  }
  if ((b == '\r' || b == '\n') && len_ == 0) return Result::kNone;
  if (overflow_) return Result::kNone;
  if (len_ + 1 >= kMaxCommandBytes) {
    overflow_ = true;
    len_ = 0;
    return Result::kNone;
  }
  if (b >= 0x20 && b <= 0x7E) {
    buf_[len_++] = static_cast<char>(b);
  } else {
    invalid_ = true;
  }
  return Result::kNone;
}

ModelStore::Status ModelStore::Begin(size_t size, uint32_t crc) {
  if (size > cap_) return Status::kTooLarge;
  size_ = size;
  crc_ = crc;
  received_ = 0;
  uploading_ = true;
  ready_ = false;
  return Status::kOk;
}

ModelStore::Status ModelStore::Write(size_t offset, const uint8_t* data, size_t len) {
  if (!uploading_) return Status::kNoUpload;
  if (offset != received_) return Status::kBadOffset;
  if (len > size_ - received_) {
    uploading_ = false;
    return Status::kOverflow;
  }
  std::memcpy(buf_ + received_, data, len);
  received_ += len;
  if (received_ < size_) return Status::kOk;
  uploading_ = false;
  computed_ = Crc32(buf_, size_);
  if (computed_ != crc_) return Status::kCrcMismatch;
  ready_ = true;
  return Status::kComplete;
}

void CommandHandler::Line(const char* a, const char* b, const char* c) {
  board_.write(a, std::strlen(a));
  board_.write(b, std::strlen(b));
  board_.write(c, std::strlen(c));
  board_.write("\r\n", 2);
}

void CommandHandler::Ready() { Line("m-ready"); }

void CommandHandler::Error(const char* message) {
  Line("e-[", message, "]");
  Ready();
}

static bool ParseSize(const char* s, size_t* out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (*end != '\0' || s[0] == '-' || v > 0xFFFFFFFFull) return false;
  *out = static_cast<size_t>(v);
  return true;
}

// Note: Debian's newlib is built without C99 printf formats (%zu, %hhd): size_t is printed as %lu with a cast.

// Appends printf-style text to a fixed line buffer of kMaxReplyLineChars characters. Text that does not fit
// marks the line overflowed; Emit() then answers e-[reply too long: ...] instead of sending a cut line.
class LineBuf {
 public:
  void Add(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  void Clear() {
    len_ = 0;
    overflow_ = false;
    buf_[0] = '\0';
  }
  const char* str() const { return buf_; }
  bool overflowed() const { return overflow_; }

 private:
  char buf_[kMaxReplyLineChars + 1];
  size_t len_ = 0;
  bool overflow_ = false;
};

void LineBuf::Add(const char* fmt, ...) {
  if (overflow_) return;
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf_ + len_, sizeof buf_ - len_, fmt, ap);
  va_end(ap);
  if (n < 0 || len_ + static_cast<size_t>(n) >= sizeof buf_) {
    overflow_ = true;
    buf_[len_] = '\0';  // keep what fitted, though it is never sent
    return;
  }
  len_ += static_cast<size_t>(n);
}

// Work buffers shared by the commands (one command runs at a time, and no handler nests another's use):
// one reply line, one decoded hex chunk, one mel frame, and the audio window / stream input copy, which are
// never live together.
static LineBuf g_line;
static uint8_t g_chunk[kMaxCommandBytes / 2];
static int16_t g_mels[kMaxMels];
static union Scratch {
  int16_t audio[kMaxWindowSamples];       // the front-end's window (frontend%, stream audio)
  int8_t features[kMaxStreamInputBytes];  // the stream's model input, oldest frame first
} g_scratch;

void CommandHandler::Emit(const LineBuf& line, const char* what) {
  if (!line.overflowed()) return Line(line.str());
  char msg[80];
  std::snprintf(msg, sizeof msg, "%s line over %lu characters", what, static_cast<unsigned long>(kMaxReplyLineChars));
  Line("e-[reply too long: ", msg, "]");
}

static void TensorText(const TensorInfo& t, LineBuf& out) {
  for (int i = 0; i < t.ndims; ++i) out.Add(i ? "x%ld" : "%ld", static_cast<long>(t.dims[i]));
  out.Add("-%.8g-%ld", static_cast<double>(t.scale), static_cast<long>(t.zero_point));
}

bool CommandHandler::DbCommand(char** tok, int n) {
  char num[48];
  if (n >= 3 && std::strcmp(tok[1], "load") == 0) {
    size_t want = 0;
    if (!ParseSize(tok[2], &want)) return false;
    if (want > input_cap_) {
      std::snprintf(num, sizeof num, "%lu > %lu", static_cast<unsigned long>(want), static_cast<unsigned long>(input_cap_));
      Line("e-[db load too large: ", num, "]");
      return true;
    }
    stream_ = StreamMode::kOff;  // the stream's ring lives in the input buffer
    input_expected_ = want;
    input_len_ = 0;
    std::snprintf(num, sizeof num, "%lu", static_cast<unsigned long>(want));
    Line("m-[Expecting ", num, " bytes]");
    return true;
  }
  if (n >= 2 && std::strcmp(tok[1], "print") == 0) {
    size_t count = 64;
    if (n >= 3 && !ParseSize(tok[2], &count)) return false;
    if (count > 256) count = 256;
    if (count > input_len_) count = input_len_;
    LineBuf& line = g_line;
    line.Clear();
    line.Add("m-buffer-[");
    for (size_t i = 0; i < count; ++i) line.Add("%02x", input_[i]);
    line.Add("]");
    Emit(line, "buffer");
    return true;
  }
  if (n == 2) {
    const size_t len = std::strlen(tok[1]);
    if (len / 2 > input_expected_ - input_len_) {
      Line("e-[db overflow]");
      return true;
    }
    const int got = HexDecode(tok[1], len, input_ + input_len_, input_cap_ - input_len_);
    if (got < 0) return false;
    input_len_ += static_cast<size_t>(got);
    if (input_len_ == input_expected_) Line("m-load-done");
    return true;
  }
  return false;
}

bool CommandHandler::ModelCommand(char** tok, int n) {
  char buf[96];
  if (n >= 4 && std::strcmp(tok[1], "load") == 0) {
    size_t size = 0;
    uint32_t crc = 0;
    if (!ParseSize(tok[2], &size) || !ParseCrc(tok[3], &crc)) return false;
    // the engine reads the model bytes (even to tear down), so drop it before an upload overwrites them
    if (services_.engine) services_.engine->Deactivate();
    activated_ = false;
    stream_ = StreamMode::kOff;
    if (store_.Begin(size, crc) == ModelStore::Status::kTooLarge) {
      std::snprintf(buf, sizeof buf, "%lu > %lu", static_cast<unsigned long>(size), static_cast<unsigned long>(store_.capacity()));
      Line("e-[model too large: ", buf, "]");
      return true;
    }
    std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(size));
    Line("m-expecting-", buf);
    return true;
  }
  if (n >= 2 && std::strcmp(tok[1], "info") == 0) {
    std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(store_.model_size()));
    Line("m-model-bytes-", buf);
    std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(store_.model_crc()));
    Line("m-model-crc-", buf);
    Line("m-model-source-", store_.source());
    return true;
  }
  if (n >= 2 && std::strcmp(tok[1], "activate") == 0) {
    size_t arena = 0;
    if (n >= 3 && !ParseSize(tok[2], &arena)) return false;
    stream_ = StreamMode::kOff;  // a stream was set up for the previous model's shapes
    if (!store_.model()) {
      Line("e-[no model]");
    } else if (!services_.engine) {
      Line("e-[no inference engine: built without TFLM]");
    } else if (!services_.engine->Activate(store_.model(), store_.model_size(), arena, buf, sizeof buf)) {
      activated_ = false;
      Line("e-[", buf, "]");
    } else {
      activated_ = true;
      have_results_ = false;
      std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(services_.engine->arena_used()));
      Line("m-arena-used-", buf);
      LineBuf& line = g_line;
      line.Clear();
      line.Add("m-input-");
      TensorText(services_.engine->input(), line);
      Emit(line, "input");
      line.Clear();
      line.Add("m-output-");
      TensorText(services_.engine->output(), line);
      Emit(line, "output");
    }
    return true;
  }
  if (n == 3) {
    size_t offset = 0;
    uint8_t* const chunk = g_chunk;
    if (!ParseSize(tok[1], &offset)) return false;
    const int len = HexDecode(tok[2], std::strlen(tok[2]), chunk, sizeof g_chunk);
    if (len < 0) return false;
    switch (store_.Write(offset, chunk, static_cast<size_t>(len))) {
      case ModelStore::Status::kNoUpload:
        Line("e-[no upload in progress: send model load SIZE CRC first]");
        return true;
      case ModelStore::Status::kBadOffset:
        std::snprintf(buf, sizeof buf, "got %lu, expected %lu", static_cast<unsigned long>(offset), static_cast<unsigned long>(store_.received()));
        Line("e-[bad offset: ", buf, "]");
        return true;
      case ModelStore::Status::kOverflow:
        Line("e-[model overflow]");
        return true;
      case ModelStore::Status::kCrcMismatch:
        std::snprintf(buf, sizeof buf, "expected %08lx got %08lx", static_cast<unsigned long>(store_.expected_crc()),
                      static_cast<unsigned long>(store_.computed_crc()));
        Line("e-[crc mismatch: ", buf, "]");
        return true;
      case ModelStore::Status::kComplete:
        std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(store_.received()));
        Line("m-ack-", buf);
        std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(store_.model_crc()));
        Line("m-model-ok-", buf);
        return true;
      default:
        std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(store_.received()));
        Line("m-ack-", buf);
        return true;
    }
  }
  return false;
}

bool CommandHandler::Invoke(const int8_t* input) {
  char err[96];
  const TensorInfo in = services_.engine->input();
  std::memcpy(services_.engine->input_data(), input, in.bytes);  // the planner may reuse the input tensor
  if (!services_.engine->Invoke(err, sizeof err)) {
    Line("e-[", err, "]");
    return false;
  }
  ++infer_count_;
  have_results_ = true;
  return true;
}

void CommandHandler::ResultsLine() {
  LineBuf& line = g_line;
  line.Clear();
  line.Add("m-results-[");
  if (have_results_) {
    const TensorInfo out = services_.engine->output();
    const int8_t* q = services_.engine->output_data();
    for (size_t i = 0; i < out.bytes; ++i)
      line.Add(i ? ",%.6f" : "%.6f", static_cast<double>((q[i] - out.zero_point) * out.scale));
  }
  line.Add("]");
  Emit(line, "results");
}

// Replies e-[...] and returns false unless an engine exists and a model is activated.
bool CommandHandler::ReadyToInfer() {
  if (!services_.engine) {
    Line("e-[no inference engine: built without TFLM]");
    return false;
  }
  if (!activated_) {
    Line("e-[no model]");
    return false;
  }
  return true;
}

bool CommandHandler::InferCommand(char** tok, int n) {
  size_t count = 1, warmup = 0;
  if ((n >= 2 && !ParseSize(tok[1], &count)) || (n >= 3 && !ParseSize(tok[2], &warmup)) || count == 0) return false;
  if (!ReadyToInfer()) return true;
  const TensorInfo in = services_.engine->input();
  if (input_expected_ != in.bytes || input_len_ != in.bytes) {
    Line("e-[input not loaded]");
    return true;
  }
  char num[32];
  std::snprintf(num, sizeof num, "%lu", static_cast<unsigned long>(warmup));
  Line("m-warmup-start-", num);
  for (size_t i = 0; i < warmup; ++i)
    if (!Invoke(reinterpret_cast<const int8_t*>(input_))) return true;
  Line("m-warmup-done");
  std::snprintf(num, sizeof num, "%lu", static_cast<unsigned long>(count));
  Line("m-infer-start-", num);
  const uint64_t t0 = board_.time_us();
  const uint64_t c0 = board_.cycles ? board_.cycles() : 0;
  if (board_.marker) board_.marker(true);
  bool ok = true;
  for (size_t i = 0; i < count && ok; ++i) {
    ok = Invoke(reinterpret_cast<const int8_t*>(input_));
    // a read per inference keeps a board's 32-bit counter extensions (WrapCounter) exact over long runs
    if (board_.cycles) board_.cycles();
    board_.time_us();
  }
  if (board_.marker) board_.marker(false);
  const uint64_t c1 = board_.cycles ? board_.cycles() : 0;
  const uint64_t t1 = board_.time_us();
  if (!ok) return true;
  cycles_last_ = (c1 - c0) / count;
  std::snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(t0));
  Line("m-lap-us-", num);
  std::snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(t1));
  Line("m-lap-us-", num);
  Line("m-infer-done");
  ResultsLine();
  return true;
}

bool CommandHandler::FrontendCommand(char**, int) {
  const FixedFrontendTables* t = services_.frontend;
  if (!t || !services_.frontend_scratch.re) {
    Line("e-[no front-end: built without front-end tables]");
    return true;
  }
  if (!FrontendTablesUsable(*t)) {
    Line("e-[front-end tables out of range: window 1..1024, hop >= 1, n_fft a power of two >= window, 1..256 mels]");
    return true;
  }
  const size_t w = static_cast<size_t>(t->window_samples);
  if (input_len_ < 2 * w) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%lu samples, got %lu", static_cast<unsigned long>(w), static_cast<unsigned long>(input_len_ / 2));
    Line("e-[frontend needs ", buf, " (send them with db load/db first)]");
    return true;
  }
  int16_t* const window = g_scratch.audio;
  for (size_t i = 0; i < w; ++i)
    window[i] = static_cast<int16_t>(static_cast<uint16_t>(input_[2 * i] | (input_[2 * i + 1] << 8)));
  int16_t* const mels = g_mels;
  const uint64_t c0 = board_.cycles ? board_.cycles() : 0;
  const bool ok = ComputeFrame(*t, window, services_.frontend_scratch, mels);
  const uint64_t c1 = board_.cycles ? board_.cycles() : 0;
  if (!ok) {
    Line("e-[front-end failed: tables or buffers missing]");
    return true;
  }
  LineBuf& line = g_line;
  line.Clear();
  line.Add("m-frame-[");
  for (int m = 0; m < t->n_mels; ++m) line.Add(m ? ",%d" : "%d", mels[m]);
  line.Add("]");
  Emit(line, "frame");
  if (line.overflowed()) return true;  // the error is the whole reply
  char num[32];
  std::snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(c1 - c0));
  Line("m-cycles-", num);
  return true;
}

void CommandHandler::StreamFrame(const int8_t* frame, float hop_ms) {
  const TensorInfo in = services_.engine->input();
  const size_t bins = static_cast<size_t>(in.dims[2]);
  features_.Push(frame, bins);
  ++frames_seen_;
  if (frames_seen_ < next_inference_) return;
  next_inference_ += stride_;
  int8_t* const window = g_scratch.features;  // the audio path is done with g_scratch.audio when it gets here
  if (in.bytes > sizeof g_scratch.features) return;
  features_.CopyLast(window, in.bytes);
  if (!Invoke(window)) return;
  ++stream_runs_;
  const TensorInfo out = services_.engine->output();
  const int8_t* q = services_.engine->output_data();
  float probs[kMaxClasses];
  const int classes = recognizer_.n_classes();
  float top = -1e30f;
  for (int c = 0; c < classes; ++c) {
    probs[c] = (q[c] - out.zero_point) * out.scale;
    if (probs[c] > top) top = probs[c];
  }
  float sum = 0.0f;
  for (int c = 0; c < classes; ++c) sum += (probs[c] = std::exp(probs[c] - top));
  LineBuf& line = g_line;
  line.Clear();
  line.Add("m-scores-[");
  for (int c = 0; c < classes; ++c) line.Add(c ? ",%.4f" : "%.4f", static_cast<double>(probs[c] /= sum));
  line.Add("]");
  Emit(line, "scores");
  const uint32_t t_ms = static_cast<uint32_t>(static_cast<float>(frames_seen_) * hop_ms);
  Detection d;
  if (recognizer_.Update(t_ms, probs, &d)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%d-%d-%lu", d.label, static_cast<int>(std::lround(d.score * 1000.0f)),
                  static_cast<unsigned long>(d.time_ms));
    Line("m-det-", buf);
  }
}

bool CommandHandler::StreamCommand(char** tok, int n) {
  if (n < 2) return false;
  if (std::strcmp(tok[1], "stop") == 0) {
    char num[32];
    std::snprintf(num, sizeof num, "%lu", static_cast<unsigned long>(stream_runs_));
    stream_ = StreamMode::kOff;
    Line("m-stream-stopped-", num);
    return true;
  }
  if (std::strcmp(tok[1], "start") == 0) {
    if (n < 3) return false;
    const bool audio = std::strcmp(tok[2], "audio") == 0;
    if (!audio && std::strcmp(tok[2], "features") != 0) return false;
    size_t stride = 2, threshold = 700;
    uint32_t ignore = 0;
    int k = 3;
    if (n > k && std::strncmp(tok[k], "ignore=", 7) != 0 && !ParseSize(tok[k++], &stride)) return false;
    if (n > k && std::strncmp(tok[k], "ignore=", 7) != 0 && !ParseSize(tok[k++], &threshold)) return false;
    if (n > k) {
      if (std::strncmp(tok[k], "ignore=", 7) != 0) return false;
      for (char* p = tok[k] + 7; *p;) {
        char* end = nullptr;
        const long c = std::strtol(p, &end, 10);
        if (end == p || c < 0 || c >= kMaxClasses) return false;
        ignore |= 1u << c;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0') return false;
      }
    }
    if (stride == 0) return false;
    if (!ReadyToInfer()) return true;
    const TensorInfo in = services_.engine->input(), out = services_.engine->output();
    // T >= 1 frames of F >= 1 bins (a zero bin count would divide by zero in every later stream command)
    if (in.ndims < 3 || in.dims[1] < 1 || in.dims[2] < 1 || in.bytes < static_cast<size_t>(in.dims[2]) ||
        in.bytes > input_cap_ || in.bytes > kMaxStreamInputBytes || out.bytes < 1 ||
        out.bytes > static_cast<size_t>(kMaxClasses)) {
      Line("e-[model shape not streamable: needs input [1,T,F(,1)] with T, F >= 1, <= 4096 B and 1..32 classes]");
      return true;
    }
    if (audio) {
      const FixedFrontendTables* t = services_.frontend;
      if (!t || !services_.frontend_scratch.re) {
        Line("e-[no front-end: built without front-end tables; use stream start features]");
        return true;
      }
      if (!FrontendTablesUsable(*t)) {  // n_mels <= kMaxMels (the frame buffers), hop >= 1, window fits
        Line("e-[front-end tables out of range: window 1..1024, hop >= 1, n_fft a power of two >= window, 1..256 mels]");
        return true;
      }
      if (t->n_mels != in.dims[2]) {
        char buf[80];
        std::snprintf(buf, sizeof buf, "model wants %ld bins, firmware front-end makes %d", static_cast<long>(in.dims[2]),
                      t->n_mels);
        Line("e-[front-end mismatch: ", buf, "]");
        return true;
      }
      audio_ = RingBuffer<int16_t>(audio_storage_, static_cast<size_t>(t->window_samples));
      audio_.Fill(0);
      samples_pending_ = 0;
      samples_total_ = 0;
    }
    features_ = RingBuffer<int8_t>(reinterpret_cast<int8_t*>(input_), in.bytes);
    features_.Fill(static_cast<int8_t>(in.zero_point));
    input_len_ = input_expected_ = 0;  // the db buffer now holds the stream
    frames_seen_ = 0;
    next_inference_ = static_cast<size_t>(in.dims[1]);
    stride_ = stride;
    stream_runs_ = 0;
    recognizer_.Reset(static_cast<int>(out.bytes), threshold / 1000.0f, ignore);
    stream_ = audio ? StreamMode::kAudio : StreamMode::kFeatures;
    Line("m-stream-started");
    return true;
  }
  if (stream_ == StreamMode::kOff) {
    Line("e-[no stream: send stream start first]");
    return true;
  }
  // frame times: HOP_MS when given; else the front-end's own hop in audio mode, 20 ms (micro_speech) for features
  float hop_ms = 20.0f;
  if (stream_ == StreamMode::kAudio) {
    hop_ms = 1000.0f * static_cast<float>(services_.frontend->hop_samples) /
             static_cast<float>(services_.frontend->sample_rate_hz);
  }
  if (n >= 3) {
    char* end = nullptr;
    hop_ms = std::strtof(tok[2], &end);
    if (*end != '\0' || !(hop_ms > 0.0f)) return false;
  }
  uint8_t* const chunk = g_chunk;
  const int len = HexDecode(tok[1], std::strlen(tok[1]), chunk, sizeof g_chunk);
  if (len < 0) return false;
  const TensorInfo in = services_.engine->input();
  const size_t bins = static_cast<size_t>(in.dims[2]);
  if (stream_ == StreamMode::kFeatures) {
    if (static_cast<size_t>(len) % bins != 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(bins));
      Line("e-[stream data must be whole frames of ", buf, " bytes]");
      return true;
    }
    for (size_t off = 0; off < static_cast<size_t>(len); off += bins)
      StreamFrame(reinterpret_cast<const int8_t*>(chunk + off), hop_ms);
    return true;
  }
  // audio: int16 little-endian samples through the fixed-point front-end, quantised with the model's input params
  if (len % 2 != 0) {
    Line("e-[stream audio must be whole int16 samples]");
    return true;
  }
  const FixedFrontendTables& t = *services_.frontend;
  const size_t window = static_cast<size_t>(t.window_samples), hop = static_cast<size_t>(t.hop_samples);
  // ln(mel power) of the float front-end from the Q8 log2 output (audio_nas.features.fixed_point.to_float_logmel)
  const float offset = 2.0f * std::log2(static_cast<float>(t.n_fft)) - 30.0f;
  for (int i = 0; i + 1 < len; i += 2) {
    const int16_t s = static_cast<int16_t>(static_cast<uint16_t>(chunk[i] | (chunk[i + 1] << 8)));
    audio_.Push(&s, 1);
    ++samples_total_;
    if (samples_total_ < window || (samples_total_ - window) % hop != 0) continue;
    int16_t* const win = g_scratch.audio;
    int16_t* const mels = g_mels;  // stream start checked n_mels <= kMaxMels and n_mels == bins
    audio_.CopyLast(win, window);
    if (!ComputeFrame(t, win, services_.frontend_scratch, mels)) continue;
    int8_t frame[kMaxMels];
    for (size_t m = 0; m < bins && m < sizeof frame; ++m) {
      const float x = (mels[m] / 256.0f + offset) * 0.69314718f;
      const long q = std::lround(x / in.scale) + in.zero_point;
      frame[m] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
    StreamFrame(frame, hop_ms);
  }
  return true;
}

bool CommandHandler::NameCommand(char**, int) {
  Line("m-name-dut-[", board_.name, "]");
  return true;
}

bool CommandHandler::ProfileCommand(char**, int) {
  Line("m-profile-[ulp-mlperf]");
  Line("m-model-[kws01]");
  return true;
}

bool CommandHandler::PingCommand(char**, int) {
  Line("m-pong");
  return true;
}

bool CommandHandler::TimestampCommand(char**, int) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(board_.time_us()));
  Line("m-lap-us-", buf);
  return true;
}

bool CommandHandler::VersionCommand(char**, int) {
  Line("m-version-1-", board_.firmware_version);
  Line("m-board-", board_.name);
  Line("m-tflm-", services_.engine ? "1" : "0");
  return true;
}

bool CommandHandler::ResultsCommand(char**, int) {
  if (services_.engine) {
    ResultsLine();
  } else {
    Line("m-results-[]");
  }
  return true;
}

bool CommandHandler::StatsCommand(char**, int) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(board_.clock_hz));
  Line("m-clock-hz-", buf);
  std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(cycles_last_));
  Line("m-cycles-last-", buf);
  std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(infer_count_));
  Line("m-infer-count-", buf);
  Line("m-timer-", board_.timer_name);
  std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(handled_));
  Line("m-commands-", buf);
  return true;
}

bool CommandHandler::ResetCommand(char**, int) {
  if (!board_.reset) {
    Line("e-[reset not supported on this board]");
    return true;
  }
  Line("m-resetting");
  Ready();
  ready_sent_ = true;
  board_.reset();  // does not return on a board
  return true;
}

// The dispatch table protocol.h promises: one row per command of docs/protocol.md (constant-initialised; a
// member function so that it may name the private handlers).
const CommandHandler::Command* CommandHandler::commands(size_t* count) {
  static constexpr Command kCommands[] = {
      {"name", &CommandHandler::NameCommand},         {"profile", &CommandHandler::ProfileCommand},
      {"ping", &CommandHandler::PingCommand},         {"timestamp", &CommandHandler::TimestampCommand},
      {"version", &CommandHandler::VersionCommand},   {"db", &CommandHandler::DbCommand},
      {"model", &CommandHandler::ModelCommand},       {"infer", &CommandHandler::InferCommand},
      {"results", &CommandHandler::ResultsCommand},   {"stream", &CommandHandler::StreamCommand},
      {"frontend", &CommandHandler::FrontendCommand}, {"stats", &CommandHandler::StatsCommand},
      {"reset", &CommandHandler::ResetCommand},
  };
  if (count) *count = sizeof kCommands / sizeof kCommands[0];
  return kCommands;
}

void CommandHandler::Handle(const char* command, size_t len) {
  ++handled_;
  static char copy[kMaxCommandBytes];
  if (len >= sizeof copy) len = sizeof copy - 1;
  std::memcpy(copy, command, len);
  copy[len] = '\0';
  char* tok[8];
  int n = 0;
  for (char* p = std::strtok(copy, " "); p && n < 8; p = std::strtok(nullptr, " ")) tok[n++] = p;
  if (n == 0) return Error("unknown command: ");
  size_t count = 0;
  const Command* table = commands(&count);
  const Command* cmd = nullptr;
  for (size_t i = 0; i < count && !cmd; ++i)
    if (std::strcmp(tok[0], table[i].name) == 0) cmd = &table[i];
  ready_sent_ = false;
  if (!cmd) {
    Line("e-[unknown command: ", tok[0], "]");
  } else if (!(this->*cmd->run)(tok, n)) {
    Line("e-[bad argument: ", tok[0], "]");
  }
  if (!ready_sent_) Ready();
}

}  // namespace audio_nas
