// See fixed_frontend.h and audio_nas/features/fixed_point.py for the algorithm; every step here
// mirrors the Python twin operation for operation so the outputs are identical bit for bit.
#include "frontend/fixed_frontend.h"

namespace audio_nas {
namespace {

int Log2Floor(uint64_t v) {
  int msb = 0;
  while (v >>= 1) ++msb;
  return msb;
}

unsigned BitReverse(unsigned i, int bits) {
  unsigned r = 0;
  for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1u) << (bits - 1 - b);
  return r;
}

}  // namespace

bool ComputeFrame(const FixedFrontendTables& t, const int16_t* window, FixedFrontendScratch s, int16_t* out) {
  if (!window || !s.re || !s.im || !out || !t.hann_q15 || !t.twiddle_re || !t.twiddle_im || !t.mel_q15 ||
      !t.log_lut) {
    return false;
  }
  if (t.n_fft < 2 || (t.n_fft & (t.n_fft - 1)) != 0 || t.window_samples < 0 || t.n_mels < 0) return false;
  const int n = t.n_fft;
  const int bits = Log2Floor(static_cast<uint64_t>(n));
  // 1. window (Q15) and 2a. bit-reversed load, zero padded
  for (int i = 0; i < n; ++i) {
    const unsigned src = BitReverse(static_cast<unsigned>(i), bits);
    int32_t v = 0;
    if (static_cast<int>(src) < t.window_samples) {
      v = static_cast<int32_t>((static_cast<int64_t>(window[src]) * t.hann_q15[src] + (1 << 14)) >> 15);
    }
    s.re[i] = v;
    s.im[i] = 0;
  }
  // 2b. radix-2 DIT stages, each scaled by 1/2
  for (int size = 2; size <= n; size *= 2) {
    const int half = size / 2;
    const int step = n / size;
    for (int start = 0; start < n; start += size) {
      for (int j = 0; j < half; ++j) {
        const int64_t wr = t.twiddle_re[j * step];
        const int64_t wi = t.twiddle_im[j * step];
        const int64_t br = s.re[start + half + j];
        const int64_t bi = s.im[start + half + j];
        const int64_t tr = (br * wr - bi * wi + (1 << 14)) >> 15;
        const int64_t ti = (br * wi + bi * wr + (1 << 14)) >> 15;
        const int64_t ar = s.re[start + j];
        const int64_t ai = s.im[start + j];
        s.re[start + j] = static_cast<int32_t>((ar + tr) >> 1);
        s.im[start + j] = static_cast<int32_t>((ai + ti) >> 1);
        s.re[start + half + j] = static_cast<int32_t>((ar - tr) >> 1);
        s.im[start + half + j] = static_cast<int32_t>((ai - ti) >> 1);
      }
    }
  }
  // 3. power, 4. mel, 5. log2 in Q8
  const int bins = n / 2 + 1;
  for (int m = 0; m < t.n_mels; ++m) {
    int64_t acc = 0;
    const int32_t* w = t.mel_q15 + m * bins;
    for (int k = 0; k < bins; ++k) {
      if (w[k] == 0) continue;
      const int64_t p = static_cast<int64_t>(s.re[k]) * s.re[k] + static_cast<int64_t>(s.im[k]) * s.im[k];
      acc += p * w[k];
    }
    const uint64_t v = static_cast<uint64_t>(acc >> 15) + 1u;
    const int msb = Log2Floor(v);
    const unsigned frac = msb >= 8 ? static_cast<unsigned>((v >> (msb - 8)) & 0xFFu)
                                   : static_cast<unsigned>((v << (8 - msb)) & 0xFFu);
    out[m] = static_cast<int16_t>((msb << 8) + t.log_lut[frac]);
  }
  return true;
}

}  // namespace audio_nas
