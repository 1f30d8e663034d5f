"""Feature-space augmentation. SpecAugment masks come from torchaudio."""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from audio_nas.training.config import SpecAugmentConfig


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
