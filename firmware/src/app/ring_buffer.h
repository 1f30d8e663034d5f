// A fixed-capacity ring over caller storage: the streaming mode keeps the last T feature frames (or the last
// window of audio samples) without shifting memory on every push. Header-only; tested by tests/test_protocol.cc.
#pragma once
#include <cstddef>
#include <cstring>

namespace audio_nas {

template <typename T>
class RingBuffer {
 public:
  RingBuffer(T* storage, size_t capacity) : buf_(storage), cap_(capacity) {}
  void Fill(T value) {
    for (size_t i = 0; i < cap_; ++i) buf_[i] = value;
    head_ = 0;
  }
  // Appends n items, overwriting the oldest.
  void Push(const T* items, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      buf_[head_] = items[i];
      head_ = head_ + 1 == cap_ ? 0 : head_ + 1;
    }
  }
  // Copies the last `n` items (n <= capacity), oldest first.
  void CopyLast(T* out, size_t n) const {
    size_t start = (head_ + cap_ - n) % cap_;
    const size_t first = n < cap_ - start ? n : cap_ - start;
    std::memcpy(out, buf_ + start, first * sizeof(T));
    std::memcpy(out + first, buf_, (n - first) * sizeof(T));
  }
  size_t capacity() const { return cap_; }

 private:
  T* buf_;
  size_t cap_;
  size_t head_ = 0;
};

}  // namespace audio_nas
