// A stand-in inference engine for host tests (no TFLM): input [1, T, F, 1] int8 (default T=4, F=3, scale 0.5,
// zero point -1), output `classes` int8 scores (default 3) with scale 0.1 and zero point 0, out[c] = the last
// frame's bin c (0 for c >= F). Tests may change the shape (t, f, classes) to reach the handler's limits.
#pragma once
#include <cstdio>
#include <cstring>

#include "app/engine.h"

class FakeEngine final : public audio_nas::InferenceEngine {
 public:
  static constexpr int kMaxInput = 8192, kMaxOutput = 512;
  int t = 4, f = 3, classes = 3;  // the shape the next calls report (keep t * f <= kMaxInput, classes <= kMaxOutput)
  void (*on_invoke)() = nullptr;  // called by every Invoke (tests advance a simulated clock with it)
  bool Activate(const uint8_t* model, size_t model_bytes, size_t arena_bytes, char* err, size_t cap) override {
    if (model_bytes < 4 || std::memcmp(model, "FAKE", 4) != 0) {
      std::snprintf(err, cap, "model invalid: not a FAKE model");
      return false;
    }
    if (arena_bytes != 0 && arena_bytes < 100) {
      std::snprintf(err, cap, "arena too small: need 100");
      return false;
    }
    active_ = true;
    return true;
  }
  void Deactivate() override {
    active_ = false;
    ++deactivations;
  }
  bool active() const override { return active_; }
  size_t arena_used() const override { return 100; }
  audio_nas::TensorInfo input() const override {
    audio_nas::TensorInfo ti;
    ti.ndims = 4;
    ti.dims[0] = 1, ti.dims[1] = t, ti.dims[2] = f, ti.dims[3] = 1;
    ti.scale = 0.5f;
    ti.zero_point = -1;
    ti.bytes = static_cast<size_t>(t * f);
    return ti;
  }
  audio_nas::TensorInfo output() const override {
    audio_nas::TensorInfo ti;
    ti.ndims = 2;
    ti.dims[0] = 1, ti.dims[1] = classes;
    ti.scale = 0.1f;
    ti.bytes = static_cast<size_t>(classes);
    return ti;
  }
  int8_t* input_data() override { return in_; }
  const int8_t* output_data() const override { return out_; }
  bool Invoke(char*, size_t) override {
    ++invocations;
    if (on_invoke) on_invoke();
    for (int c = 0; c < classes; ++c) out_[c] = c < f && t > 0 ? in_[(t - 1) * f + c] : 0;
    std::memset(in_, 0x55, sizeof in_);  // like TFLM's planner reusing the input tensor: callers must re-copy
    return true;
  }
  int invocations = 0;
  int deactivations = 0;

 private:
  bool active_ = false;
  int8_t in_[kMaxInput] = {};
  int8_t out_[kMaxOutput] = {};
};
