"""Domain-adversarial training (DANN, Ganin et al. 2016): features that do not tell the domain apart.

A small domain head reads the model's pooled features (``AudioNet.embed``) through a gradient-reversal
layer and learns to name each training clip's domain (here: the TTS engine that spoke it). The reversed
gradient pushes the network's features towards ones the head cannot separate, i.e. towards what the
engines share: the words. The head exists only during training; the exported model is unchanged (same
ops, same cost). Written by hand because it is a dozen lines of torch and no audio/AutoML library we
depend on ships it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

IGNORE_DOMAIN = -1  # a clip with no domain (a _silence_ clip has no engine): left out of the domain loss


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-scale`` on the way back."""
    return _GradReverse.apply(x, scale)


class DomainHead(nn.Module):
    """Two-layer classifier of the domain from pooled features (training only)."""

    def __init__(self, in_features: int, n_domains: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_domains))

    def forward(self, features: torch.Tensor, scale: float) -> torch.Tensor:
        return self.net(grad_reverse(features, scale))


def reversal_scale(weight: float, progress: float) -> float:
    """DANN's ramp: 0 at the start of training, ``weight`` at the end (2 / (1 + e^(-10 p)) - 1)."""
    p = min(max(progress, 0.0), 1.0)
    return weight * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)
