// Posterior smoothing and detection, the C++ twin of audio_nas.streaming.pipeline.Recognizer:
// average the class probabilities of the last `average_window_ms`; report the top class when it is not a
// background class, its average reaches the threshold and `refractory_ms` passed since the last detection.
#pragma once
#include <cstddef>
#include <cstdint>

namespace audio_nas {

constexpr int kMaxClasses = 32;
constexpr int kMaxHistory = 64;

struct Detection {
  int label = -1;
  float score = 0.0f;
  uint32_t time_ms = 0;
};

class Recognizer {
 public:
  void Reset(int n_classes, float threshold, uint32_t ignore_mask, uint32_t average_window_ms = 300,
             uint32_t refractory_ms = 1000);
  // Adds one posterior vector at time t_ms; returns true and fills `out` on a detection.
  bool Update(uint32_t t_ms, const float* probs, Detection* out);
  int n_classes() const { return n_classes_; }

 private:
  float probs_[kMaxHistory][kMaxClasses];
  uint32_t times_[kMaxHistory];
  int head_ = 0, count_ = 0, n_classes_ = 0;
  float threshold_ = 0.7f;
  uint32_t ignore_mask_ = 0, window_ms_ = 300, refractory_ms_ = 1000;
  bool detected_ = false;
  uint32_t last_detection_ms_ = 0;
};

}  // namespace audio_nas
