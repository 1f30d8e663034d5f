"""Feature-space augmentation. SpecAugment masks come from torchaudio; Freq-MixStyle is written here
(torchaudio and torch-audiomentations have no statistics-mixing transform; it is a few tensor ops)."""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from audio_nas.training.config import FreqMixStyleConfig, SpecAugmentConfig


def spec_augment(x: torch.Tensor, cfg: SpecAugmentConfig) -> torch.Tensor:
    """Apply time and frequency masks to a batch ``x`` of shape [B, T, F].

    Masked cells get each example's mean, not zero: log-mel zero is loud, the mean
    is neutral. Randomness comes from torch's global generator, which the trainer
    seeds once per run (torchaudio's masking takes no generator argument).
    """
    if cfg.time_masks == 0 and cfg.freq_masks == 0:
        return x
    fill = x.mean(dim=(1, 2), keepdim=True)
    spec = (x - fill).unsqueeze(1)  # [B, 1, T, F]; masking writes 0 == the mean after re-adding
    for _ in range(cfg.time_masks):
        if cfg.time_mask_frames > 0:
            spec = AF.mask_along_axis_iid(spec, cfg.time_mask_frames, 0.0, axis=2, p=1.0)
    for _ in range(cfg.freq_masks):
        if cfg.freq_mask_bins > 0:
            spec = AF.mask_along_axis_iid(spec, cfg.freq_mask_bins, 0.0, axis=3, p=1.0)
    return spec.squeeze(1) + fill


def freq_mixstyle(x: torch.Tensor, cfg: FreqMixStyleConfig) -> torch.Tensor:
    """Freq-MixStyle (Kim et al. 2022, after Zhou et al.'s MixStyle) on a batch ``x`` of shape [B, T, F].

    With probability ``cfg.p`` per batch, each example is normalised per feature bin over time and given
    a mix of its own and a random partner's per-bin mean and standard deviation (weight ~ Beta(alpha,
    alpha)). A voice's or a channel's spectral colouring lives in those statistics (on MFCC they are
    the cepstral means), the word in the normalised pattern; mixing them teaches the model to ignore the
    colouring. Training only; no cost at inference. Randomness from torch's global generator, as
    ``spec_augment``.
    """
    if cfg.p <= 0 or x.shape[0] < 2 or float(torch.rand(())) >= cfg.p:
        return x
    mu = x.mean(dim=1, keepdim=True)  # [B, 1, F]
    sd = (x.var(dim=1, keepdim=True) + 1e-6).sqrt()
    lam = torch.distributions.Beta(cfg.alpha, cfg.alpha).sample((x.shape[0], 1, 1)).to(x.dtype)
    perm = torch.randperm(x.shape[0])
    return (x - mu) / sd * (lam * sd + (1 - lam) * sd[perm]) + (lam * mu + (1 - lam) * mu[perm])
