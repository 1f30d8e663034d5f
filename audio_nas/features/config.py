"""Front-end configuration: everything needed to turn audio into a feature matrix.

The output shape is derived from the config alone (``FrontEndConfig.output_shape``),
so the search space, the exporter and the firmware agree on it without running
any audio through the front-end. Framing follows TFLM's micro_speech: no centre
padding, ``n_frames = 1 + (clip_samples - window_samples) // hop_samples``
(16 kHz, 30 ms window, 20 ms hop, 1 s clip -> 49 frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from audio_nas.errors import ConfigError

FrontEndKind = Literal["logmel", "mfcc", "pcen"]
FRONTEND_KINDS: tuple[str, ...] = ("logmel", "mfcc", "pcen")


@dataclass(frozen=True, kw_only=True)
class FrontEndConfig:
    kind: FrontEndKind = "logmel"
    sample_rate_hz: int = 16_000
    clip_ms: int = 1000
    window_ms: float = 30.0
    hop_ms: float = 20.0
    n_fft: int | None = None  # None: next power of two >= window samples
    n_mels: int = 40
    n_mfcc: int = 10  # used when kind == "mfcc"
    fmin_hz: float = 20.0
    fmax_hz: float | None = None  # None: sample_rate_hz / 2

    def __post_init__(self) -> None:
        if self.kind not in FRONTEND_KINDS:
            raise ConfigError(f"front-end kind {self.kind!r} is unknown; choose one of {FRONTEND_KINDS}")
        if self.sample_rate_hz <= 0:
            raise ConfigError(f"sample_rate_hz must be > 0, got {self.sample_rate_hz}")
        if self.window_ms <= 0 or self.hop_ms <= 0:
            raise ConfigError(f"window_ms and hop_ms must be > 0, got {self.window_ms}, {self.hop_ms}")
        if self.hop_ms > self.window_ms:
            raise ConfigError(f"hop_ms ({self.hop_ms}) must not exceed window_ms ({self.window_ms})")
        if self.clip_ms < self.window_ms:
            raise ConfigError(f"clip_ms ({self.clip_ms}) must be at least window_ms ({self.window_ms})")
        if self.n_fft is not None and self.n_fft < self.window_samples:
            raise ConfigError(f"n_fft ({self.n_fft}) must be >= window samples ({self.window_samples})")
        if self.n_mels < 1:
            raise ConfigError(f"n_mels must be >= 1, got {self.n_mels}")
        if self.kind == "mfcc" and not (1 <= self.n_mfcc <= self.n_mels):
            raise ConfigError(f"n_mfcc must be in 1..n_mels ({self.n_mels}), got {self.n_mfcc}")
        fmax = self.fmax_hz_effective
        if not (0 <= self.fmin_hz < fmax <= self.sample_rate_hz / 2):
            raise ConfigError(
                f"need 0 <= fmin_hz < fmax_hz <= sample_rate_hz/2, got fmin_hz={self.fmin_hz}, fmax_hz={fmax}"
            )

    # ---- derived quantities (never stored) ----
    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.window_ms / 1000.0))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.hop_ms / 1000.0))

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.clip_ms / 1000.0))

    @property
    def n_fft_effective(self) -> int:
        if self.n_fft is not None:
            return self.n_fft
        n = 1
        while n < self.window_samples:
            n *= 2
        return n

    @property
    def fmax_hz_effective(self) -> float:
        return float(self.fmax_hz) if self.fmax_hz is not None else self.sample_rate_hz / 2.0

    @property
    def n_frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.hop_samples

    @property
    def n_bins(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def output_shape(self) -> tuple[int, int]:
        """(frames, bins) of one clip's feature matrix."""
        return (self.n_frames, self.n_bins)
