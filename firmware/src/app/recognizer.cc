#include "app/recognizer.h"

namespace audio_nas {

void Recognizer::Reset(int n_classes, float threshold, uint32_t ignore_mask, uint32_t average_window_ms,
                       uint32_t refractory_ms) {
  n_classes_ = n_classes < 0 ? 0 : (n_classes > kMaxClasses ? kMaxClasses : n_classes);
  threshold_ = threshold;
  ignore_mask_ = ignore_mask;
  window_ms_ = average_window_ms;
  refractory_ms_ = refractory_ms;
  head_ = count_ = 0;
  detected_ = false;
}

bool Recognizer::Update(uint32_t t_ms, const float* probs, Detection* out) {
  for (int c = 0; c < n_classes_; ++c) probs_[head_][c] = probs[c];
  times_[head_] = t_ms;
  head_ = (head_ + 1) % kMaxHistory;
  if (count_ < kMaxHistory) ++count_;
  // drop entries older than the averaging window (the oldest are at head_ - count_)
  while (count_ > 1) {
    const int oldest = (head_ - count_ + kMaxHistory) % kMaxHistory;
    if (t_ms - times_[oldest] <= window_ms_) break;
    --count_;
  }
  float avg[kMaxClasses];
  for (int c = 0; c < n_classes_; ++c) avg[c] = 0.0f;
  for (int k = 0; k < count_; ++k) {
    const int i = (head_ - 1 - k + kMaxHistory) % kMaxHistory;
    for (int c = 0; c < n_classes_; ++c) avg[c] += probs_[i][c];
  }
  int best = -1;
  for (int c = 0; c < n_classes_; ++c) {
    avg[c] /= static_cast<float>(count_);
    if ((ignore_mask_ >> c) & 1u) continue;  // background classes are never reported
    if (best < 0 || avg[c] > avg[best]) best = c;
  }
  if (best < 0) return false;
  if (avg[best] < threshold_) return false;
  if (detected_ && t_ms - last_detection_ms_ < refractory_ms_) return false;
  detected_ = true;
  last_detection_ms_ = t_ms;
  out->label = best;
  out->score = avg[best];
  out->time_ms = t_ms;
  return true;
}

}  // namespace audio_nas
