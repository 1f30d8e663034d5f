// A stand-in inference engine for host tests (no TFLM): input [1, T=4, F=3, 1] int8, output 3 classes with
// scale 0.1 and zero point 0, out[c] = the last frame's bin c. Lets tests drive infer/results/stream exactly.
#pragma once
#include <cstdio>
#include <cstring>

#include "app/engine.h"

class FakeEngine final : public audio_nas::InferenceEngine {
 public:
  static constexpr int kT = 4, kF = 3, kClasses = 3;
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
    audio_nas::TensorInfo t;
    t.ndims = 4;
    t.dims[0] = 1, t.dims[1] = kT, t.dims[2] = kF, t.dims[3] = 1;
    t.scale = 0.5f;
    t.zero_point = -1;
    t.bytes = kT * kF;
    return t;
  }
  audio_nas::TensorInfo output() const override {
    audio_nas::TensorInfo t;
    t.ndims = 2;
    t.dims[0] = 1, t.dims[1] = kClasses;
    t.scale = 0.1f;
    t.bytes = kClasses;
    return t;
  }
  int8_t* input_data() override { return in_; }
  const int8_t* output_data() const override { return out_; }
  bool Invoke(char*, size_t) override {
    ++invocations;
    for (int c = 0; c < kClasses; ++c) out_[c] = in_[(kT - 1) * kF + c];
    std::memset(in_, 0x55, sizeof in_);  // like TFLM's planner reusing the input tensor: callers must re-copy
    return true;
  }
  int invocations = 0;
  int deactivations = 0;

 private:
  bool active_ = false;
  int8_t in_[kT * kF] = {};
  int8_t out_[kClasses] = {};
};
