"""The fixed-point log-mel front-end a Cortex-M firmware computes, bit-exact with firmware/src/frontend/.

Integer pipeline for one frame (int16 audio window of ``window_samples``):
  1. window     x_w[n] = (x[n] * hann_q15[n] + 2^14) >> 15                     (Q15 periodic Hann)
  2. FFT        radix-2 decimation-in-time complex FFT of ``n_fft`` points (zero imaginary part,
                zero-padded), Q15 twiddles, every stage scaled by 1/2 (as CMSIS-DSP's q15 FFTs):
                t = (w * b + 2^14) >> 15 (complex), a' = (a + t) >> 1, b' = (a - t) >> 1
  3. power      p[k] = re^2 + im^2 for k = 0..n_fft/2                           (int64)
  4. mel        m[j] = (sum_k p[k] * melw_q15[j][k]) >> 15                     (HTK triangles, Q15)
  5. log        out[j] = 256 * log2(m[j] + 1) in Q8: (msb << 8) + LUT[next 8 bits]  (int16)
All tables (Hann, twiddles, mel weights, log LUT) are generated here and written into a C header,
so the C++ twin never recomputes a float and both produce the same bits. ``>>`` is an arithmetic
shift in both (Python ints; gcc/clang on two's complement).

Relation to the float front-end: the FFT is scaled by 1/n_fft and audio is in int16 units, so
    ln(mel_float) ~= (out / 256 + 2 log2(n_fft) - 2 log2(32768)) * ln 2   (``to_float_logmel``)
Agreement (tests/features/test_fixed_point.py): on speech-like audio, frames whose mel energy is
above the integer floor agree with the float log-mel within 0.1 nats on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_nas.config import load_yaml
from audio_nas.errors import ConfigError
from audio_nas.features.config import FrontEndConfig

Q15 = 1 << 15
LOG_LUT_BITS = 8


@dataclass(frozen=True)
class FixedTables:
    window_samples: int
    hop_samples: int
    n_fft: int
    n_mels: int
    hann_q15: np.ndarray  # int16 [window]
    twiddle_re: np.ndarray  # int16 [n_fft/2]
    twiddle_im: np.ndarray  # int16 [n_fft/2]
    mel_q15: np.ndarray  # int32 [n_mels, n_fft/2+1]
    log_lut: np.ndarray  # int16 [256]
    sample_rate_hz: int = 16_000  # the audio mode times frames with hop_samples / sample_rate_hz


def make_tables(cfg: FrontEndConfig) -> FixedTables:
    if cfg.kind != "logmel":
        raise ConfigError(f"the fixed-point front-end computes log-mel; got kind {cfg.kind!r}")
    n = cfg.n_fft_effective
    if n & (n - 1):
        raise ConfigError(f"the fixed-point FFT needs a power-of-two n_fft, got {n}")
    w = cfg.window_samples
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w)  # periodic, as the float front-end
    k = np.arange(n // 2)
    tw_re = np.round(np.cos(2 * np.pi * k / n) * (Q15 - 1)).astype(np.int16)
    tw_im = np.round(-np.sin(2 * np.pi * k / n) * (Q15 - 1)).astype(np.int16)
    import torchaudio.functional as AF

    fb = (
        AF.melscale_fbanks(
            n // 2 + 1,
            cfg.fmin_hz,
            cfg.fmax_hz_effective,
            cfg.n_mels,
            cfg.sample_rate_hz,
            norm=None,
            mel_scale="htk",
        )
        .numpy()
        .T
    )  # [n_mels, bins]
    lut = np.round(256 * np.log2(1 + np.arange(256) / 256)).astype(np.int16)
    return FixedTables(
        w,
        cfg.hop_samples,
        n,
        cfg.n_mels,
        np.round(hann * (Q15 - 1)).astype(np.int16),
        tw_re,
        tw_im,
        np.round(fb * (Q15 - 1)).astype(np.int32),
        lut,
        cfg.sample_rate_hz,
    )


def _bit_reverse(n: int) -> np.ndarray:
    bits = int(math.log2(n))
    return np.array([int(f"{i:0{bits}b}"[::-1], 2) for i in range(n)])


def _fft_q15(xr: np.ndarray, t: FixedTables) -> tuple[np.ndarray, np.ndarray]:
    """Scaled radix-2 DIT FFT on int64 arrays [frames, n_fft] (integer semantics of the C twin)."""
    n = t.n_fft
    rev = _bit_reverse(n)
    re = xr[:, rev].astype(np.int64)
    im = np.zeros_like(re)
    size = 2
    while size <= n:
        half = size // 2
        step = n // size
        wr = t.twiddle_re[np.arange(half) * step].astype(np.int64)
        wi = t.twiddle_im[np.arange(half) * step].astype(np.int64)
        for start in range(0, n, size):
            a = slice(start, start + half)
            b = slice(start + half, start + size)
            br, bi = re[:, b], im[:, b]
            tr = (br * wr - bi * wi + (1 << 14)) >> 15
            ti = (br * wi + bi * wr + (1 << 14)) >> 15
            ar, ai = re[:, a].copy(), im[:, a].copy()
            re[:, a], im[:, a] = (ar + tr) >> 1, (ai + ti) >> 1
            re[:, b], im[:, b] = (ar - tr) >> 1, (ai - ti) >> 1
        size *= 2
    return re, im


def _log2_q8(m: np.ndarray, lut: np.ndarray) -> np.ndarray:
    v = m.astype(np.int64) + 1
    msb = np.floor(np.log2(v.astype(np.float64))).astype(np.int64)
    # correct float rounding at exact powers of two
    msb = np.where((np.int64(1) << msb) > v, msb - 1, msb)
    msb = np.where((np.int64(1) << (msb + 1)) <= v, msb + 1, msb)
    frac = np.where(
        msb >= LOG_LUT_BITS,
        (v >> np.maximum(msb - LOG_LUT_BITS, 0)) & 0xFF,
        (v << np.maximum(LOG_LUT_BITS - msb, 0)) & 0xFF,
    )
    return ((msb << 8) + lut[frac]).astype(np.int16)


def frames_q15(audio_int16: np.ndarray, t: FixedTables) -> np.ndarray:
    """int16 audio [S] -> int16 log-mel [frames, n_mels] (Q8 log2)."""
    x = np.asarray(audio_int16, np.int64)
    n_frames = 1 + (len(x) - t.window_samples) // t.hop_samples
    idx = np.arange(t.window_samples)[None, :] + t.hop_samples * np.arange(n_frames)[:, None]
    xw = (x[idx] * t.hann_q15.astype(np.int64) + (1 << 14)) >> 15
    padded = np.zeros((n_frames, t.n_fft), np.int64)
    padded[:, : t.window_samples] = xw
    re, im = _fft_q15(padded, t)
    bins = t.n_fft // 2 + 1
    power = re[:, :bins] ** 2 + im[:, :bins] ** 2
    mel = (power @ t.mel_q15.T.astype(np.int64)) >> 15
    return _log2_q8(mel, t.log_lut)


def to_float_logmel(out_q8: np.ndarray, t: FixedTables) -> np.ndarray:
    """Convert the fixed-point output to the float front-end's scale (natural log of mel power)."""
    return (out_q8.astype(np.float64) / 256 + 2 * math.log2(t.n_fft) - 2 * math.log2(32768)) * math.log(2)


def write_c_header(t: FixedTables, path: str | Path, name: str = "kFrontend") -> Path:
    """The tables as a C++ header for firmware/src/frontend (the twin reads nothing else)."""

    def arr(ctype, ident, values):
        vals = ", ".join(str(int(v)) for v in np.ravel(values))
        return f"static const {ctype} {ident}[{np.size(values)}] = {{{vals}}};\n"

    body = (
        "// Generated by audio_nas.features.fixed_point.write_c_header. Do not edit.\n"
        "#pragma once\n#include <cstdint>\n"
        '#include "frontend/fixed_frontend.h"\n\n'
        + arr("int16_t", f"{name}Hann", t.hann_q15)
        + arr("int16_t", f"{name}TwRe", t.twiddle_re)
        + arr("int16_t", f"{name}TwIm", t.twiddle_im)
        + arr("int32_t", f"{name}Mel", t.mel_q15)
        + arr("int16_t", f"{name}LogLut", t.log_lut)
        + f"static constexpr int {name}Nfft = {t.n_fft};\n"
        f"static constexpr int {name}WindowSamples = {t.window_samples};\n"
        + f"static const audio_nas::FixedFrontendTables {name}Tables = {{{t.window_samples}, "
        f"{t.hop_samples}, {t.n_fft}, {t.n_mels}, {name}Hann, {name}TwRe, {name}TwIm, {name}Mel, "
        f"{name}LogLut, {t.sample_rate_hz}}};\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m audio_nas.features.fixed_point OUT.h [FRONTEND.yaml]``: the firmware build's table
    header."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: python -m audio_nas.features.fixed_point OUT.h [FRONTEND.yaml]", file=sys.stderr)
        return 2
    cfg = FrontEndConfig()
    if len(args) == 2:
        cfg = load_yaml(FrontEndConfig, args[1])
    write_c_header(make_tables(cfg), args[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
