"""Float front-ends: log-mel, MFCC (torchaudio transforms) and PCEN.

Framing matches ``FrontEndConfig`` and TFLM's micro_speech: frames of
``window_samples`` every ``hop_samples`` with no centre padding, a periodic Hann
window, each frame zero-padded to ``n_fft`` (torchaudio's Spectrogram frames by
``n_fft`` instead, which would give fewer frames), power spectrum, torchaudio's HTK
mel filterbank (``norm=None``), ``log(mel + 1e-6)``. MFCC is the orthonormal DCT-II of the
log-mel (``torchaudio.functional.create_dct``). PCEN (Wang et al. 2017) is written
here because torchaudio has none; it follows ``librosa.pcen``'s definition and is
cross-checked against it in the tests.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

from audio_nas.errors import ConfigError
from audio_nas.features.config import FrontEndConfig

LOG_EPS = 1e-6
PCEN_DEFAULTS = dict(gain=0.98, bias=2.0, power=0.5, time_constant_s=0.4, eps=1e-6)


class FrontEnd(Protocol):
    cfg: FrontEndConfig
    # True when a frame's features depend on audio before its own window (PCEN's smoothing filter): on a
    # stream such a front-end carries the seconds before a keyword, so the feature cache computes its
    # clips after a lead-in (features/cache.py).
    carries_state: bool

    def __call__(self, waveforms: np.ndarray) -> np.ndarray:
        """[N, S] float32 audio -> [N, T, F] float32 features."""


class MelFrontEnd(abc.ABC):
    """Framing, power spectrum and mel filterbank shared by every front-end; subclasses map mel power to
    their features."""

    carries_state: bool = False

    def __init__(self, cfg: FrontEndConfig):
        self.cfg = cfg
        self.window = torch.hann_window(cfg.window_samples, periodic=True)
        self.mel = T.MelScale(
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate_hz,
            f_min=cfg.fmin_hz,
            f_max=cfg.fmax_hz_effective,
            n_stft=cfg.n_fft_effective // 2 + 1,
            norm=None,
            mel_scale="htk",
        )

    def mel_power(self, waveforms: np.ndarray) -> torch.Tensor:
        """[N, S] -> [N, T, n_mels] mel power spectrogram."""
        x = torch.as_tensor(np.asarray(waveforms, dtype=np.float32))
        if x.ndim != 2:
            raise ConfigError(f"front-end expects audio shaped [N, samples], got {tuple(x.shape)}")
        if x.shape[1] < self.cfg.window_samples:
            raise ConfigError(
                f"audio of {x.shape[1]} samples is shorter than one window ({self.cfg.window_samples})"
            )
        with torch.no_grad():
            frames = x.unfold(-1, self.cfg.window_samples, self.cfg.hop_samples) * self.window  # [N, T, W]
            power = torch.fft.rfft(frames, n=self.cfg.n_fft_effective).abs().pow(2)  # [N, T, bins]
            return self.mel_of_power(power)

    def mel_of_power(self, power: torch.Tensor) -> torch.Tensor:
        """[N, T, n_fft/2 + 1] linear power spectrogram -> [N, T, n_mels] mel power (differentiable)."""
        return self.mel(power.transpose(1, 2)).transpose(1, 2)

    @abc.abstractmethod
    def from_mel_power(self, mel: torch.Tensor) -> torch.Tensor:
        """[N, T, n_mels] mel power -> [N, T, F] features, in torch and differentiable (model inversion
        renders spectra and needs gradients through the front-end)."""

    def __call__(self, waveforms: np.ndarray) -> np.ndarray:
        return self.from_mel_power(self.mel_power(waveforms)).numpy().astype(np.float32)


class LogMel(MelFrontEnd):
    def from_mel_power(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log(mel + LOG_EPS)


class MFCC(MelFrontEnd):
    def __init__(self, cfg: FrontEndConfig):
        super().__init__(cfg)
        self.dct = AF.create_dct(cfg.n_mfcc, cfg.n_mels, norm="ortho")  # [n_mels, n_mfcc]

    def from_mel_power(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log(mel + LOG_EPS) @ self.dct.to(mel.device, mel.dtype)


class PCEN(MelFrontEnd):
    """Per-channel energy normalisation of the mel *magnitude*-scaled power, as librosa.pcen."""

    carries_state = True  # the smoother's state: the level of the audio before the frame

    def __init__(self, cfg: FrontEndConfig, **params: float):
        super().__init__(cfg)
        self.p = {**PCEN_DEFAULTS, **params}

    def smoothing_coefficient(self) -> float:
        t_frames = self.p["time_constant_s"] * self.cfg.sample_rate_hz / self.cfg.hop_samples
        return float((np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2))

    def from_mel_power(self, mel: torch.Tensor) -> torch.Tensor:
        e = mel.double()  # [N, T, F]; float64 as librosa, the smoother runs over many frames
        s = self.smoothing_coefficient()
        rows = []
        prev = torch.ones_like(e[:, 0])  # librosa's default: the filter starts in steady state for unit input
        for t in range(e.shape[1]):
            prev = (1 - s) * prev + s * e[:, t]
            rows.append(prev)
        m = torch.stack(rows, dim=1)
        g, b, r, eps = self.p["gain"], self.p["bias"], self.p["power"], self.p["eps"]
        smooth = torch.exp(-g * (math.log(eps) + torch.log1p(m / eps)))
        return ((e * smooth + b) ** r - b**r).to(mel.dtype)


FRONTENDS: dict[str, Callable[[FrontEndConfig], FrontEnd]] = {"logmel": LogMel, "mfcc": MFCC, "pcen": PCEN}


def carries_state(cfg: FrontEndConfig) -> bool:
    """Whether ``cfg``'s front-end keeps state across frames (see ``FrontEnd.carries_state``)."""
    return bool(getattr(FRONTENDS.get(cfg.kind), "carries_state", False))


def make_frontend(cfg: FrontEndConfig) -> FrontEnd:
    try:
        return FRONTENDS[cfg.kind](cfg)
    except KeyError:
        raise ConfigError(
            f"front-end {cfg.kind!r} is unknown; choose one of {', '.join(FRONTENDS)}"
        ) from None
