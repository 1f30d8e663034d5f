// Extends a free-running 32-bit counter (Arduino micros(), which wraps every 71.6 minutes; DWT CYCCNT, every
// 67 s at 64 MHz) to 64 bits: each read adds the unsigned 32-bit difference to the last read, so a wrap between
// two reads is harmless as long as the counter is read at least once per wrap period (the main loop reads it
// every pass, and the infer loop after every inference). Header-only; tested by tests/test_protocol.cc.
#pragma once
#include <cstdint>

namespace audio_nas {

class WrapCounter {
 public:
  uint64_t Extend(uint32_t now) {
    total_ += static_cast<uint32_t>(now - last_);  // modulo 2^32: correct across one wrap
    last_ = now;
    return total_;
  }

 private:
  uint32_t last_ = 0;
  uint64_t total_ = 0;
};

}  // namespace audio_nas
