// op_profiler: per-op instruction counts of one int8 .tflite on QEMU mps2-an386 (Cortex-M4) with TFLM.
//
// The host passes "MODEL OUT" on QEMU's -append line; the model is read and the results written through Arm
// semihosting (bkpt 0xab), so nothing but QEMU is needed to run it. CMSDK timer 0 (25 MHz) counts retired
// instructions deterministically under `-icount shift=6,sleep=off` (instructions = ticks x 40 / 64).
// Two passes over the same model:
//   1. a MicroInterpreter without a profiler: warm-up Invoke, then two timed Invokes (the whole-model cost, and a
//      determinism check);
//   2. a MicroInterpreter with a MicroProfilerInterface: TFLM wraps every op's Invoke in Begin/EndEvent
//      (micro_interpreter_graph.cc); warm-up, then one recorded Invoke.
// The cost of an empty Begin/EndEvent pair is measured too, so the host can subtract it from every op.
// Output (text, one record a line): see audio_nas/firmware_bridge/op_profile.py (parse_profile).
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "ops.h"  // generated: AudioNasOpResolver, RegisterAudioNasOps (every op audio-nas exports)
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// ---- Arm semihosting (QEMU: -semihosting-config enable=on,target=native) ----
constexpr int kSysOpen = 0x01, kSysClose = 0x02, kSysWrite0 = 0x04, kSysWrite = 0x05, kSysRead = 0x06;
constexpr int kSysFlen = 0x0C, kSysGetCmdline = 0x15, kSysExit = 0x18;
constexpr uint32_t kExitOk = 0x20026, kExitError = 0x20023;  // ADP_Stopped_ApplicationExit / RunTimeErrorUnknown

int Semihost(int op, const void* arg) {
  register int r0 asm("r0") = op;
  register const void* r1 asm("r1") = arg;
  asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

[[noreturn]] void Exit(bool ok) {
  Semihost(kSysExit, reinterpret_cast<const void*>(ok ? kExitOk : kExitError));
  for (;;) {
  }
}

void Console(const char* text) { Semihost(kSysWrite0, text); }

[[noreturn]] void Fail(const char* what) {
  Console("op_profiler: ");
  Console(what);
  Console("\n");
  Exit(false);
}

int Open(const char* path, int mode) {
  const uint32_t args[3] = {reinterpret_cast<uint32_t>(path), static_cast<uint32_t>(mode),
                            static_cast<uint32_t>(std::strlen(path))};
  return Semihost(kSysOpen, args);
}

// ---- CMSDK timer 0: a free-running 32-bit down-counter ----
struct CmsdkTimer {
  volatile uint32_t ctrl, value, reload, intstatus;
};
CmsdkTimer* const kTimer0 = reinterpret_cast<CmsdkTimer*>(0x40000000u);
inline uint32_t Now() { return kTimer0->value; }

// ---- the profiler TFLM calls around each op ----
class OpProfiler final : public tflite::MicroProfilerInterface {
 public:
  static constexpr uint32_t kMaxEvents = 512;
  uint32_t BeginEvent(const char* tag) override {
    const uint32_t h = count_++;
    if (h < kMaxEvents) {
      tags_[h] = tag;
      start_[h] = Now();
    }
    return h;
  }
  void EndEvent(uint32_t h) override {
    const uint32_t now = Now();
    if (h < kMaxEvents) ticks_[h] = start_[h] - now;  // down-counter
  }
  void Reset() { count_ = 0; }
  uint32_t count() const { return count_; }
  const char* tag(uint32_t i) const { return tags_[i]; }
  uint32_t ticks(uint32_t i) const { return ticks_[i]; }

 private:
  uint32_t count_ = 0;
  const char* tags_[kMaxEvents] = {};
  uint32_t start_[kMaxEvents] = {};
  uint32_t ticks_[kMaxEvents] = {};
};

alignas(16) uint8_t g_model[1024 * 1024];
alignas(16) uint8_t g_arena[1536 * 1024];
char g_cmdline[512];
char g_out[64 * 1024];
size_t g_out_len = 0;
OpProfiler g_profiler;
alignas(tflite::MicroInterpreter) uint8_t g_interp_storage[sizeof(tflite::MicroInterpreter)];

void Emit(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  const int n = std::vsnprintf(g_out + g_out_len, sizeof g_out - g_out_len, fmt, args);
  va_end(args);
  if (n < 0 || g_out_len + n >= sizeof g_out) Fail("output buffer full");
  g_out_len += n;
}

size_t ReadModel(const char* path) {
  const int fd = Open(path, 1);  // "rb"
  if (fd < 0) Fail("cannot open the model file");
  const uint32_t flen_args[1] = {static_cast<uint32_t>(fd)};
  const int len = Semihost(kSysFlen, flen_args);
  if (len <= 0 || static_cast<size_t>(len) > sizeof g_model) Fail("model file empty or over 1 MiB");
  const uint32_t read_args[3] = {static_cast<uint32_t>(fd), reinterpret_cast<uint32_t>(g_model),
                                 static_cast<uint32_t>(len)};
  if (Semihost(kSysRead, read_args) != 0) Fail("short read of the model file");
  Semihost(kSysClose, flen_args);
  return static_cast<size_t>(len);
}

void WriteOut(const char* path) {
  const int fd = Open(path, 5);  // "wb"
  if (fd < 0) Fail("cannot open the output file");
  const uint32_t args[3] = {static_cast<uint32_t>(fd), reinterpret_cast<uint32_t>(g_out),
                            static_cast<uint32_t>(g_out_len)};
  if (Semihost(kSysWrite, args) != 0) Fail("short write of the output file");
  const uint32_t close_args[1] = {static_cast<uint32_t>(fd)};
  Semihost(kSysClose, close_args);
}

tflite::MicroInterpreter* MakeInterpreter(const tflite::Model* model, const AudioNasOpResolver& resolver,
                                          tflite::MicroProfilerInterface* profiler) {
  auto* interp = new (g_interp_storage)
      tflite::MicroInterpreter(model, resolver, g_arena, sizeof g_arena, nullptr, profiler);
  if (interp->AllocateTensors() != kTfLiteOk) Fail("AllocateTensors failed (arena too small or op missing)");
  TfLiteTensor* in = interp->input(0);
  uint32_t lcg = 12345;  // a fixed pseudo-random input: kernel timing does not depend on values here
  for (size_t i = 0; i < in->bytes; ++i) {
    lcg = lcg * 1664525u + 1013904223u;
    in->data.int8[i] = static_cast<int8_t>(lcg >> 24);
  }
  return interp;
}

uint32_t TimedInvoke(tflite::MicroInterpreter* interp) {
  const uint32_t t0 = Now();
  if (interp->Invoke() != kTfLiteOk) Fail("Invoke failed");
  return t0 - Now();
}

}  // namespace

extern "C" void DebugLog(const char* format, va_list args) {
  char line[256];
  std::vsnprintf(line, sizeof line, format, args);
  Console("tflm: ");
  Console(line);
  Console("\n");
}

extern "C" int DebugVsnprintf(char* buffer, size_t buf_size, const char* format, va_list vlist) {
  return std::vsnprintf(buffer, buf_size, format, vlist);
}

int main() {
  kTimer0->ctrl = 0;
  kTimer0->reload = 0xFFFFFFFFu;
  kTimer0->value = 0xFFFFFFFFu;
  kTimer0->ctrl = 1u;

  // QEMU's semihosting command line is "<kernel> <-append text>": the model and output paths follow the .elf.
  uint32_t cmd_args[2] = {reinterpret_cast<uint32_t>(g_cmdline), sizeof g_cmdline - 1};
  if (Semihost(kSysGetCmdline, cmd_args) != 0) Fail("no semihosting command line");
  char* tokens[8];
  int n = 0;
  for (char* tok = std::strtok(g_cmdline, " "); tok && n < 8; tok = std::strtok(nullptr, " ")) tokens[n++] = tok;
  int first = 0;
  for (int i = 0; i < n; ++i) {
    const size_t len = std::strlen(tokens[i]);
    if (len > 4 && std::strcmp(tokens[i] + len - 4, ".elf") == 0) first = i + 1;
  }
  if (n - first < 2) Fail("usage: -append \"MODEL.tflite OUT.txt\"");
  const char* model_path = tokens[first];
  const char* out_path = tokens[first + 1];

  const size_t model_bytes = ReadModel(model_path);
  flatbuffers::Verifier verifier(g_model, model_bytes);
  if (!tflite::VerifyModelBuffer(verifier)) Fail("not a TFLite flatbuffer");
  const tflite::Model* model = tflite::GetModel(g_model);
  static AudioNasOpResolver resolver;
  if (RegisterAudioNasOps(resolver) != kTfLiteOk) Fail("op resolver full");

  // The cost of the profiler itself: an empty Begin/EndEvent pair, as TFLM's loop makes it (virtual calls).
  tflite::MicroProfilerInterface* prof = &g_profiler;
  uint32_t empty = 0xFFFFFFFFu;
  for (int i = 0; i < 4; ++i) {
    prof->EndEvent(prof->BeginEvent("empty"));
    if (g_profiler.ticks(g_profiler.count() - 1) < empty) empty = g_profiler.ticks(g_profiler.count() - 1);
  }
  g_profiler.Reset();

  Emit("op_profiler 1\nkernels %s\ntflm %s\nmodel_bytes %u\n", AUDIO_NAS_KERNELS, AUDIO_NAS_TFLM_REVISION,
       static_cast<unsigned>(model_bytes));

  // Pass 1: the whole model, no profiler.
  tflite::MicroInterpreter* interp = MakeInterpreter(model, resolver, nullptr);
  Emit("arena_used %u\n", static_cast<unsigned>(interp->arena_used_bytes()));
  TimedInvoke(interp);  // warm-up
  const uint32_t total1 = TimedInvoke(interp);
  const uint32_t total2 = TimedInvoke(interp);
  Emit("invoke_ticks %lu %lu\n", static_cast<unsigned long>(total1), static_cast<unsigned long>(total2));
  interp->~MicroInterpreter();

  // Pass 2: per op.
  interp = MakeInterpreter(model, resolver, &g_profiler);
  TimedInvoke(interp);  // warm-up
  g_profiler.Reset();
  const uint32_t profiled = TimedInvoke(interp);
  Emit("profiled_invoke_ticks %lu\nempty_event_ticks %lu\nops %lu\n", static_cast<unsigned long>(profiled),
       static_cast<unsigned long>(empty), static_cast<unsigned long>(g_profiler.count()));
  if (g_profiler.count() > OpProfiler::kMaxEvents) Fail("more ops than the profiler records");
  for (uint32_t i = 0; i < g_profiler.count(); ++i) {
    Emit("op %lu %s %lu\n", static_cast<unsigned long>(i), g_profiler.tag(i),
         static_cast<unsigned long>(g_profiler.ticks(i)));
  }
  interp->~MicroInterpreter();
  Emit("end\n");
  WriteOut(out_path);
  Exit(true);
}
