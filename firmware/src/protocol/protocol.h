// The device side of docs/protocol.md without TFLM: line assembly, CRC-32, hex, the upload model store,
// the input buffer and a command dispatch table. Plain C++17, no heap, no exceptions; all buffers are
// provided by the board port. The Python twin is audio_nas/firmware_bridge (framing.py, emulator.py).
#pragma once
#include <cstddef>
#include <cstdint>

#include "app/engine.h"
#include "app/recognizer.h"
#include "app/ring_buffer.h"
#include "frontend/fixed_frontend.h"

namespace audio_nas {

constexpr size_t kMaxCommandBytes = 1200;
// A reply line's text: at most 1198 characters, so that with its "\r\n" it fits the same 1200 bytes as a command.
// A line that would be longer is never cut: the command answers e-[reply too long: ...] instead (docs/protocol.md).
constexpr size_t kMaxReplyLineChars = kMaxCommandBytes - 2;

// Parses exactly 8 hex digits (no sign, no 0x, no spaces: docs/protocol.md) into *out.
bool ParseCrc(const char* text, uint32_t* out);

uint32_t Crc32(const uint8_t* data, size_t len, uint32_t crc = 0);
// Decodes hex into out; returns the number of bytes, or -1 for an odd length, a bad digit or overflow.
int HexDecode(const char* hex, size_t len, uint8_t* out, size_t cap);

// Bytes in, complete commands out: printable ASCII up to '%', 1200-byte limit, leading CR/LF ignored.
class LineAssembler {
 public:
  enum class Result { kNone, kCommand, kTooLong, kInvalidByte };
  Result Feed(uint8_t b);
  const char* command() const { return buf_; }
  size_t length() const { return len_; }

 private:
  char buf_[kMaxCommandBytes];
  size_t len_ = 0;
  bool overflow_ = false;
  bool invalid_ = false;
  bool done_ = false;  // the last byte completed a command: start afresh on the next one
};

// Chunked model upload with offsets and a final CRC check (protocol `model load SIZE CRC%`, `model OFF HEX%`).
class ModelStore {
 public:
  ModelStore(uint8_t* buffer, size_t capacity) : buf_(buffer), cap_(capacity) {}
  enum class Status { kOk, kTooLarge, kNoUpload, kBadOffset, kOverflow, kCrcMismatch, kComplete };
  // A model compiled into flash: served (source "builtin") whenever no upload is complete.
  void SetBuiltin(const uint8_t* model, size_t size) {
    builtin_ = model;
    builtin_size_ = size;
  }
  Status Begin(size_t size, uint32_t crc);
  Status Write(size_t offset, const uint8_t* data, size_t len);
  size_t received() const { return received_; }
  size_t capacity() const { return cap_; }
  size_t model_size() const { return ready_ ? size_ : builtin_size_; }
  uint32_t model_crc() const { return ready_ ? crc_ : Crc32(builtin_, builtin_size_); }
  const uint8_t* model() const { return ready_ ? buf_ : builtin_; }
  const char* source() const { return ready_ ? "uploaded" : builtin_ ? "builtin" : "none"; }
  uint32_t computed_crc() const { return computed_; }
  uint32_t expected_crc() const { return crc_; }

 private:
  uint8_t* buf_;
  size_t cap_;
  size_t size_ = 0;
  size_t received_ = 0;
  uint32_t crc_ = 0;
  uint32_t computed_ = 0;
  bool uploading_ = false;
  bool ready_ = false;
  const uint8_t* builtin_ = nullptr;
  size_t builtin_size_ = 0;
};

// Everything a command handler needs from the board; the board port fills it.
struct Board {
  const char* name;
  uint32_t clock_hz;
  uint64_t (*time_us)();  // 64-bit: a port with a 32-bit counter extends it (app/wrap_counter.h)
  void (*write)(const char* text, size_t len);  // raw bytes out (UART)
  uint64_t (*cycles)() = nullptr;               // the board's cycle counter (DWT CYCCNT, or timer ticks under QEMU)
  const char* timer_name = "none";              // dwt / cmsdk-icount / systick: reported by `stats%`
  void (*marker)(bool high) = nullptr;          // GPIO marker for an external power monitor, high while timed
  void (*reset)() = nullptr;                    // `reset%`: a system reset (does not return)
  const char* firmware_version = "fw-0.2";      // `version%`; "-emulated" in it marks timings as estimates
};

// Optional parts a board wires in: the inference engine (TFLM) and the fixed-point front-end.
struct Services {
  InferenceEngine* engine = nullptr;
  const FixedFrontendTables* frontend = nullptr;
  FixedFrontendScratch frontend_scratch{nullptr, nullptr};  // two int32 arrays of n_fft entries
};

constexpr size_t kMaxWindowSamples = 1024;  // the streaming audio mode's window limit
constexpr int kMaxMels = 256;                // mel bins a front-end frame may have (the frame buffers' size)
constexpr size_t kMaxStreamInputBytes = 4096;  // a streamable model's input tensor (the stream window copy)

// The front-end tables' own limits, checked before any frame is computed: window 1..kMaxWindowSamples,
// hop >= 1, n_fft a power of two >= 2 covering the window, 1..kMaxMels mels, a sample rate > 0.
bool FrontendTablesUsable(const FixedFrontendTables& t);

class LineBuf;

// Parses one command and writes its reply lines, always ending with "m-ready\r\n".
class CommandHandler {
 public:
  CommandHandler(const Board& board, ModelStore& store, uint8_t* input, size_t input_capacity,
                 Services services = Services())
      : board_(board), store_(store), input_(input), input_cap_(input_capacity), services_(services),
        features_(reinterpret_cast<int8_t*>(input), input_capacity), audio_(audio_storage_, kMaxWindowSamples) {}
  void Handle(const char* command, size_t len);
  void Error(const char* message);  // "e-[message]" + m-ready (used for assembler errors)
  uint32_t commands_handled() const { return handled_; }

  // The command dispatch table: Handle() looks the first token up here (no if/else chain). A handler gets
  // the tokens (tok[0] is the command name) and returns false for a malformed argument, which Handle answers
  // "e-[bad argument: NAME]"; every reply then ends with m-ready.
  using CommandFn = bool (CommandHandler::*)(char** tok, int n);
  struct Command {
    const char* name;
    CommandFn run;
  };
  static const Command* commands(size_t* count);  // the table itself (host tests walk it)

 private:
  void Line(const char* a, const char* b = "", const char* c = "");
  void Emit(const LineBuf& line, const char* what);  // the line, or e-[reply too long: ...] if it overflowed
  void Ready();
  bool NameCommand(char** tok, int n);
  bool ProfileCommand(char** tok, int n);
  bool PingCommand(char** tok, int n);
  bool TimestampCommand(char** tok, int n);
  bool VersionCommand(char** tok, int n);
  bool DbCommand(char** tok, int n);
  bool ModelCommand(char** tok, int n);
  bool ReadyToInfer();
  bool InferCommand(char** tok, int n);
  bool ResultsCommand(char** tok, int n);
  bool FrontendCommand(char** tok, int n);
  bool StreamCommand(char** tok, int n);
  bool StatsCommand(char** tok, int n);
  bool ResetCommand(char** tok, int n);
  void StreamFrame(const int8_t* frame, float hop_ms);
  bool Invoke(const int8_t* input);  // copies the input in, runs the engine once; on failure writes the e- line
  void ResultsLine();
  const Board& board_;
  ModelStore& store_;
  uint8_t* input_;
  size_t input_cap_;
  Services services_;
  size_t input_expected_ = 0;
  size_t input_len_ = 0;
  uint32_t handled_ = 0;
  uint32_t infer_count_ = 0;
  uint64_t cycles_last_ = 0;
  bool have_results_ = false;
  bool activated_ = false;
  // streaming mode: the last T feature frames live in the input buffer (db data is discarded)
  enum class StreamMode { kOff, kFeatures, kAudio } stream_ = StreamMode::kOff;
  RingBuffer<int8_t> features_;
  RingBuffer<int16_t> audio_;
  int16_t audio_storage_[kMaxWindowSamples];
  size_t frames_seen_ = 0, next_inference_ = 0, stride_ = 2, samples_pending_ = 0, samples_total_ = 0;
  uint32_t stream_runs_ = 0;
  bool ready_sent_ = false;  // a handler (reset) already ended its reply with m-ready
  Recognizer recognizer_;
};

}  // namespace audio_nas
