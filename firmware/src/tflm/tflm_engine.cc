#include "tflm/tflm_engine.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "tensorflow/lite/schema/schema_generated.h"

namespace audio_nas {
namespace {

char g_last_log[160];

TensorInfo Describe(const TfLiteTensor* t) {
  TensorInfo info;
  info.ndims = t->dims->size < 6 ? t->dims->size : 6;
  for (int i = 0; i < info.ndims; ++i) info.dims[i] = t->dims->data[i];
  info.scale = t->params.scale;
  info.zero_point = t->params.zero_point;
  info.bytes = t->bytes;
  return info;
}

}  // namespace

const char* LastTflmLog() { return g_last_log; }

void TflmEngine::Release() {
  if (interpreter_) interpreter_->~MicroInterpreter();  // placement-new'd: no heap on the boards
  interpreter_ = nullptr;
}

bool TflmEngine::Activate(const uint8_t* model, size_t model_bytes, size_t arena_bytes, char* err, size_t cap) {
  Release();
  if (!resolver_ready_) {
    if (RegisterAudioNasOps(resolver_) != kTfLiteOk) {
      std::snprintf(err, cap, "op resolver full: rebuild the firmware");
      return false;
    }
    resolver_ready_ = true;
  }
  flatbuffers::Verifier verifier(model, model_bytes);
  if (!tflite::VerifyModelBuffer(verifier)) {
    std::snprintf(err, cap, "model invalid: not a TFLite flatbuffer (verifier failed)");
    return false;
  }
  const tflite::Model* m = tflite::GetModel(model);
  if (m->version() != TFLITE_SCHEMA_VERSION) {
    std::snprintf(err, cap, "model invalid: schema version %lu, firmware expects %d",
                  static_cast<unsigned long>(m->version()), TFLITE_SCHEMA_VERSION);
    return false;
  }
  if (arena_bytes > arena_cap_) {
    std::snprintf(err, cap, "arena too large: %lu > %lu", static_cast<unsigned long>(arena_bytes),
                  static_cast<unsigned long>(arena_cap_));
    return false;
  }
  const size_t arena = arena_bytes ? arena_bytes : arena_cap_;
  g_last_log[0] = '\0';
  interpreter_ = new (interpreter_storage_) tflite::MicroInterpreter(m, resolver_, arena_, arena);
  if (interpreter_->AllocateTensors() != kTfLiteOk) {
    if (std::strstr(g_last_log, "find op") || std::strstr(g_last_log, "not supported")) {
      std::snprintf(err, cap, "op not supported: %s", g_last_log);
    } else {
      std::snprintf(err, cap, "arena too small: %lu B given%s%s", static_cast<unsigned long>(arena),
                    g_last_log[0] ? ": " : "", g_last_log);
    }
    Release();
    return false;
  }
  const TfLiteTensor* in = interpreter_->input(0);
  const TfLiteTensor* out = interpreter_->output(0);
  if (in->type != kTfLiteInt8 || out->type != kTfLiteInt8) {
    std::snprintf(err, cap, "model invalid: input and output must be int8 (export with audio-nas export)");
    Release();
    return false;
  }
  input_ = Describe(in);
  output_ = Describe(out);
  return true;
}

bool TflmEngine::Invoke(char* err, size_t cap) {
  if (!interpreter_) {
    std::snprintf(err, cap, "no model");
    return false;
  }
  if (interpreter_->Invoke() != kTfLiteOk) {
    std::snprintf(err, cap, "invoke failed: %s", g_last_log);
    return false;
  }
  return true;
}

}  // namespace audio_nas

// TFLM's logging hook: keep the last message for error replies and print it as a log line (no m-/e- prefix,
// so the host ignores it).
extern void AudioNasLogWrite(const char* text, size_t len);

extern "C" void DebugLog(const char* format, va_list args) {
  using audio_nas::g_last_log;
  const int n = std::vsnprintf(g_last_log, sizeof g_last_log, format, args);
  if (n > 0) {
    size_t len = std::strlen(g_last_log);
    while (len && (g_last_log[len - 1] == '\n' || g_last_log[len - 1] == '\r')) g_last_log[--len] = '\0';
    AudioNasLogWrite("tflm: ", 6);
    AudioNasLogWrite(g_last_log, len);
    AudioNasLogWrite("\r\n", 2);
  }
}

extern "C" int DebugVsnprintf(char* buffer, size_t buf_size, const char* format, va_list vlist) {
  return std::vsnprintf(buffer, buf_size, format, vlist);
}
