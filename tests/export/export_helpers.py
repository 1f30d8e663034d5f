"""Shared by the export tests (imported as a sibling module: tests/ has no packages)."""

from __future__ import annotations

import torch

from audio_nas.space import ArchSpec, build_model


def trained_like(spec: ArchSpec, seed: int = 0) -> torch.nn.Module:
    """A model with non-trivial BN statistics, as after training."""
    torch.manual_seed(seed)
    m = build_model(spec).eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    return m
