"""A source-filter prior for model inversion: synthesised inputs rendered from a few speech-like parameters.

Per-cell inversion (``training.inversion``) lets every time-frequency cell move, and the teacher is
satisfied by noise-textured inputs that a fresh student does not learn words from (docs/benchmarks.md,
"Data-free search"). Here each example is instead *rendered* from the parameters of a cascade formant
synthesiser (Klatt 1980) plus frication and a stationary background, in the linear power-spectrum domain,
and passed through the teacher's own mel filterbank and front-end (``MelFrontEnd.mel_of_power`` /
``from_mel_power``, differentiable). Only a word-like input can then be produced: harmonics of a smooth
pitch contour, four formant tracks, a voicing and a noise envelope over time. The teacher's gradients move
those parameters. This is a prior about speech (a keyword spotter's input), not data: no recording is used.

Written by hand: no library renders differentiable source-filter spectra at this size (DDSP-style
synthesisers render waveforms and need far more parameters and compute per example).

Per example (control points linearly interpolated over the front-end's frames):

  f0          pitch contour, 6 points, 80-300 Hz; harmonic comb ``((1 + cos 2 pi f / f0) / 2) ** p`` with
              ``p`` set so each harmonic is about 25 Hz wide (the analysis window's main lobe)
  formants    F1-F4 tracks, 12 points each (F1 200-1000, F2 600-2800, F3 1500-3800, F4 3000-5000 Hz),
              one bandwidth each (40-300 Hz); all-pole resonances in cascade, normalised to a 0 dB peak
  tilt        source spectral slope above f0, 1-3 (power ~ (f0 / f) ** tilt)
  voice_db    voicing level, 25 points, -90..0 dB re a full-scale sine
  noise_db    frication level, 25 points, -90..0 dB; a log-frequency Gaussian band whose centre moves
              over 6 points (1-7.5 kHz), one width (0.3-2 octaves)
  background  a stationary noise floor: one level (-90..-10 dB) and a spectral shape of 8 points (+-20 dB)

Initialisation draws a word-like event: a voicing bump at a random place and length (0.15-0.5 s) and
level (-35..-10 dB), a frication burst inside it in half of the examples, a random background.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from audio_nas.errors import ConfigError
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.frontends import MelFrontEnd, make_frontend

F0_POINTS = 6
FORMANT_POINTS = 12
ENV_POINTS = 25
FRIC_POINTS = 6
BG_POINTS = 8
FORMANT_RANGES_HZ = ((200.0, 1000.0), (600.0, 2800.0), (1500.0, 3800.0), (3000.0, 5000.0))
F0_RANGE_HZ = (80.0, 300.0)
BANDWIDTH_RANGE_HZ = (40.0, 300.0)
LEVEL_RANGE_DB = (-90.0, 0.0)
BG_RANGE_DB = (-90.0, -10.0)
FRIC_CENTRE_HZ = (1000.0, 7500.0)
FRIC_WIDTH_OCT = (0.3, 2.0)
TILT_RANGE = (1.0, 3.0)
HARMONIC_WIDTH_HZ = 25.0


def _logit(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 1e-3, 1 - 1e-3)
    return np.log(u / (1 - u))


def _to_unit(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.asarray(v, np.float64) - lo) / (hi - lo)


def _scaled(z: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.sigmoid(z)


def _interp_at(points: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """[B, K] control points, evenly spaced over [0, 1], read at positions ``u`` ([B, n] or [1, n], in
    [0, 1]) by linear interpolation -> [B, n]. At ``u = linspace(0, 1, n)`` this is
    ``F.interpolate(..., mode="linear", align_corners=True)``."""
    k = points.shape[1]
    pos = u.clamp(0.0, 1.0) * (k - 1)
    i0 = pos.floor().clamp(max=k - 2).long()
    frac = pos - i0
    i0 = i0.expand(points.shape[0], -1)
    frac = frac.expand(points.shape[0], -1)
    left = torch.gather(points, 1, i0)
    right = torch.gather(points, 1, i0 + 1)
    return left + frac * (right - left)


def frame_centres_s(frontend: FrontEndConfig) -> np.ndarray:
    """Centre time of every analysis frame of the front-end, in seconds from the clip's start."""
    return (frontend.window_samples / 2 + frontend.hop_samples * np.arange(frontend.n_frames)) / float(
        frontend.sample_rate_hz
    )


def timeline_span_s(frontend: FrontEndConfig) -> tuple[float, float]:
    """The stretch of the clip that a prior's control points span: the first to the last frame centre of
    the front-end the parameters were inverted for (for it, control points map to frames exactly as
    before; another front-end reads the same curves at its own frame times)."""
    c = frame_centres_s(frontend)
    return float(c[0]), float(c[-1])


def full_scale_power(frontend: FrontEndConfig) -> float:
    """Peak bin power of a unit-amplitude sine under the front-end's window (0 dB re full scale)."""
    return float((torch.hann_window(frontend.window_samples, periodic=True).sum() / 2) ** 2)


def source_filter_power(
    params: dict[str, torch.Tensor],
    frontend: FrontEndConfig,
    span_s: tuple[float, float],
    shift_s: torch.Tensor | None = None,
    warp: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (foreground, background) linear power spectrograms [B, T, n_fft/2 + 1] of the parameters
    (unconstrained, as the inversion optimises them) at the front-end's frames and bins, relative to full
    scale (multiply by ``full_scale_power``). The foreground is voicing plus frication, the background
    the stationary floor. ``shift_s`` [B] delays each example's curves by that many seconds (ends held).

    ``warp`` (each [B]; a speaker's and a speaking rate's variation of the same utterance) scales the
    pitch (``f0_scale``), the vocal tract (``formant_scale``: formant frequencies and bandwidths and the
    frication band, as vocal-tract-length perturbation does), the tempo (``tempo`` > 1 is faster: the
    curves are read ``tempo`` times as fast around the span's middle) and the foreground level
    (``gain_db``). A row at 1, 1, 1, 0 dB renders bit for bit as without ``warp``."""
    p = params
    dev = p["f0"].device
    w = {k: v.to(dev, torch.float32) for k, v in (warp or {}).items()}
    centres = torch.as_tensor(frame_centres_s(frontend), dtype=torch.float32, device=dev)[None, :]
    if shift_s is not None:
        centres = centres - shift_s.to(dev, torch.float32)[:, None]
    if "tempo" in w:
        mid = (span_s[0] + span_s[1]) / 2
        tempo = w["tempo"][:, None]
        centres = torch.where(tempo == 1, centres, mid + (centres - mid) * tempo)
    u = (centres - span_s[0]) / max(span_s[1] - span_s[0], 1e-9)  # [1 or B, T]
    bins = frontend.n_fft_effective // 2 + 1
    f = torch.linspace(0.0, frontend.sample_rate_hz / 2, bins, device=dev)[None, None, :]  # [1, 1, bins]
    one = torch.ones((), device=dev)
    f0_scale = w["f0_scale"][:, None, None] if "f0_scale" in w else one
    tract_scale = w["formant_scale"][:, None, None] if "formant_scale" in w else one
    f0 = _interp_at(_scaled(p["f0"], *F0_RANGE_HZ), u)[:, :, None] * f0_scale  # [B, T, 1]
    sharp = f0.pow(2) / (2 * math.pi**2 * HARMONIC_WIDTH_HZ**2)
    comb = ((1 + torch.cos(2 * math.pi * f / f0)) / 2).clamp(min=1e-12).pow(sharp)
    tilt = _scaled(p["tilt"], *TILT_RANGE)[:, :, None]  # [B, 1, 1]
    ratio = (f / f0).clamp(min=1e-3)
    source = torch.where(ratio < 1, ratio.pow(2), ratio.pow(-tilt))
    tract = torch.ones_like(comb)
    for i, (lo, hi) in enumerate(FORMANT_RANGES_HZ):
        fi = _interp_at(_scaled(p["formants"][:, i], lo, hi), u)[:, :, None] * tract_scale
        bi = _scaled(p["bandwidths"][:, i], *BANDWIDTH_RANGE_HZ)[:, None, None] * tract_scale
        tract = tract / ((1 - (f / fi).pow(2)).pow(2) + (f * bi / fi.pow(2)).pow(2))
    voiced = comb * source * tract
    voiced = voiced / voiced.amax(dim=2, keepdim=True).clamp(min=1e-12)  # 0 dB peak per frame
    voice = 10 ** (_interp_at(_scaled(p["voice_db"], *LEVEL_RANGE_DB), u) / 10)[:, :, None]
    centre = _interp_at(_scaled(p["fric_centre"], *FRIC_CENTRE_HZ), u)[:, :, None] * tract_scale
    width = _scaled(p["fric_width"], *FRIC_WIDTH_OCT)[:, :, None]
    octaves = torch.log2(f.clamp(min=1.0) / centre)
    fric = torch.exp(-octaves.pow(2) / (2 * width.pow(2)))
    noise = 10 ** (_interp_at(_scaled(p["noise_db"], *LEVEL_RANGE_DB), u) / 10)[:, :, None]
    u_f = f[0] / f[0, 0, -1]  # [1, bins] in [0, 1]
    bg_shape = _interp_at(20 * torch.tanh(p["bg_shape"]), u_f)[:, None, :]  # [B, 1, bins] dB
    bg = 10 ** ((_scaled(p["bg_db"], *BG_RANGE_DB)[:, :, None] + bg_shape) / 10)
    fg = voice * voiced + noise * fric
    if "gain_db" in w:
        fg = fg * 10 ** (w["gain_db"][:, None, None] / 10)
    return fg, bg.expand(-1, voiced.shape[1], -1)


class SourceFilterPrior:
    """Inversion variables and their rendering to the teacher's features; see the module doc."""

    def __init__(self, frontend: FrontEndConfig, n: int, rng: np.random.Generator, device: torch.device):
        fe = make_frontend(frontend)
        if not isinstance(fe, MelFrontEnd):
            raise ConfigError(f"the source-filter prior needs a mel front-end, got {frontend.kind!r}")
        self.fe = fe
        self.fe.mel = self.fe.mel.to(device)
        self.cfg = frontend
        self.span_s = timeline_span_s(frontend)
        self.full_scale_power = full_scale_power(frontend)
        self.params = {
            k: torch.tensor(v, dtype=torch.float32, device=device).requires_grad_(True)
            for k, v in self._init(n, rng).items()
        }

    def _init(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        t = np.linspace(0.0, 1.0, ENV_POINTS)[None, :]
        centre = rng.uniform(0.2, 0.8, (n, 1))
        length = rng.uniform(0.15, 0.5, (n, 1))
        inside = np.abs(t - centre) < length / 2
        peak_db = rng.uniform(-35, -10, (n, 1))
        voice_db = np.where(inside, peak_db + rng.normal(0, 3, (n, ENV_POINTS)), -85.0)
        burst_at = centre + length * rng.uniform(-0.5, 0.5, (n, 1))
        burst = (np.abs(t - burst_at) < rng.uniform(0.03, 0.08, (n, 1))) & (rng.uniform(size=(n, 1)) < 0.5)
        noise_db = np.where(burst, peak_db + rng.uniform(-15, 0, (n, 1)), -85.0)
        f0_lo, f0_hi = F0_RANGE_HZ
        f0_base = rng.uniform(90, 250, (n, 1))
        f0 = f0_base * np.exp(np.linspace(0, 1, F0_POINTS)[None, :] * rng.normal(0, 0.2, (n, 1)))
        formants = np.stack(
            [rng.uniform(0.15, 0.85, (n, FORMANT_POINTS)) for _ in FORMANT_RANGES_HZ], axis=1
        )  # unit positions within each formant's range
        return {
            "f0": _logit(_to_unit(f0, f0_lo, f0_hi)),
            "formants": _logit(formants),
            "bandwidths": _logit(rng.uniform(0.05, 0.5, (n, len(FORMANT_RANGES_HZ)))),
            "tilt": _logit(rng.uniform(0.3, 0.7, (n, 1))),
            "voice_db": _logit(_to_unit(voice_db, *LEVEL_RANGE_DB)),
            "noise_db": _logit(_to_unit(noise_db, *LEVEL_RANGE_DB)),
            "fric_centre": _logit(rng.uniform(0.2, 0.9, (n, FRIC_POINTS))),
            "fric_width": _logit(rng.uniform(0.2, 0.8, (n, 1))),
            "bg_db": _logit(_to_unit(rng.uniform(-75, -30, (n, 1)), *BG_RANGE_DB)),
            "bg_shape": rng.normal(0, 0.3, (n, BG_POINTS)),
        }

    def variables(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def power(self) -> torch.Tensor:
        """[B, T, n_fft/2 + 1] linear power spectrogram of the current parameters."""
        fg, bg = source_filter_power(self.params, self.cfg, self.span_s)
        return self.full_scale_power * (fg + bg)

    def state(self) -> dict[str, np.ndarray]:
        """The current (unconstrained) parameters, to store beside the features they render."""
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.params.items()}

    def render(self) -> torch.Tensor:
        """[B, T, F] features in the teacher's front-end space (differentiable)."""
        return self.fe.from_mel_power(self.fe.mel_of_power(self.power()))

    def render_in(self, frontend: FrontEndConfig, fe: MelFrontEnd) -> torch.Tensor:
        """The same examples in another mel front-end (``fe`` made from ``frontend``, its filterbank on
        this prior's device): that front-end's frames and bins, differentiable."""
        fg, bg = source_filter_power(self.params, frontend, self.span_s)
        return fe.from_mel_power(fe.mel_of_power(full_scale_power(frontend) * (fg + bg)))
