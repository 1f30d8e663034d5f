"""Front-end cost on a microcontroller: MACs, cycles and RAM per frame and per second.

Counted for the fixed-point path the firmware runs (int16 audio, CMSIS-DSP-style q15
real FFT, int32 power, q15 mel weights, integer log):
  window      n_window MACs (q15 multiply)
  FFT         real FFT of n_fft points = complex FFT of n_fft/2 + a split stage:
              (n_fft/4) log2(n_fft/2) radix-2 butterflies x 4 MACs + n_fft/2 x 4 MACs for the split
  power       n_fft/2 + 1 bins x 2 MACs (re^2 + im^2)
  mel         non-zero triangle weights (each FFT bin in at most two filters: <= 2 x bins)
  log         n_mels x LOG_CYCLES (CLZ + 32-entry table + interpolation)
  DCT (MFCC)  n_mels x n_mfcc MACs
Cycles per MAC per core (CYCLES_PER_MAC) are for q15 kernels: Cortex-M4F/M33 have a
single-cycle 16x16+32 MAC (SMLAD does two per cycle; we count 0.75 cycles per MAC to
include loads, a CMSIS-DSP-like figure), Cortex-M0+ has no DSP extension (a 32x32
multiply is 1 cycle on the RP2040 but loads, shifts and saturation make ~4 cycles per MAC).
These are engineering estimates, not measurements; the QEMU board measures instructions
of the real firmware front-end (``frontend%`` command) to check them.
RAM: audio window int16 + FFT buffer int32 complex + mel int32 + feature history int8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from audio_nas.errors import ConfigError
from audio_nas.features.config import FrontEndConfig

CYCLES_PER_MAC: dict[str, float] = {
    "cortex-m4f": 0.75,
    "cortex-m33": 0.75,
    "cortex-m7": 0.5,
    "cortex-m0plus": 4.0,
}
LOG_CYCLES = 20
FRAME_OVERHEAD_CYCLES = 2_000  # call overhead, buffer shifting, saturation passes


@dataclass(frozen=True)
class FrontEndCost:
    core: str
    macs_per_frame: int
    cycles_per_frame: int
    ram_bytes: int
    frames_per_s: float

    @property
    def cycles_per_s(self) -> float:
        return self.cycles_per_frame * self.frames_per_s

    def energy_per_s_uj(self, clock_hz: float, active_power_mw: float) -> float:
        """Energy of one second of features on a core at ``clock_hz`` drawing ``active_power_mw``."""
        return self.cycles_per_s / clock_hz * active_power_mw * 1e3


def frontend_cost(cfg: FrontEndConfig, core: str = "cortex-m4f") -> FrontEndCost:
    if core not in CYCLES_PER_MAC:
        raise ConfigError(
            f"core {core!r} has no front-end cost model; choose one of {', '.join(CYCLES_PER_MAC)}"
        )
    n_fft = cfg.n_fft_effective
    bins = n_fft // 2 + 1
    window = cfg.window_samples
    fft = (n_fft // 4) * int(math.log2(max(2, n_fft // 2))) * 4 + (n_fft // 2) * 4
    power = 2 * bins
    mel = 2 * bins
    dct = cfg.n_mels * cfg.n_mfcc if cfg.kind == "mfcc" else 0
    macs = window + fft + power + mel + dct
    cycles = int(macs * CYCLES_PER_MAC[core] + cfg.n_mels * LOG_CYCLES + FRAME_OVERHEAD_CYCLES)
    if cfg.kind == "pcen":
        cycles += cfg.n_mels * 3 * LOG_CYCLES  # smoothing, two logs/exps per bin
    ram = 2 * window + 4 * 2 * n_fft + 4 * cfg.n_mels + cfg.n_frames * cfg.n_bins
    return FrontEndCost(
        core=core,
        macs_per_frame=macs,
        cycles_per_frame=cycles,
        ram_bytes=ram,
        frames_per_s=1000.0 / cfg.hop_ms,
    )
