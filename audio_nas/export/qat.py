"""Quantisation-aware training: fake-quantisation that rounds like TFLite/TFLM.

``prepare_qat(model)`` switches every ``ConvBnAct`` of a built model to a quantisation-aware forward:
BatchNorm is frozen and folded into the convolution (as the exporter folds it), the folded weights are
fake-quantised per output channel (symmetric, [-127, 127]) and the output per tensor (asymmetric int8,
range tracked by an exponential moving average of min/max, always including 0). The model input is
fake-quantised too. Rounding is half away from zero, as TFLite's quantiser and TFLM's requantisation
round, not torch's half-to-even; gradients pass straight through (STE). The module structure is
unchanged, so ``export_model`` lowers a QAT model exactly like a float one.

int4 weights (``weight_bits == 4`` on a ``ConvBnAct`` or the ``Classifier``, set by the builder from a
``_w4`` token) are fake-quantised to [-7, 7], per output channel for convs and per tensor for the
classifier, exactly as ``quantize.quantize_graph`` will quantise them. Scales are min/max (absmax / qmax of
the current folded weights), not learned (LSQ): with min/max the fake-quantised weights the network trains
with are the integers the exporter writes, bit for bit, with no extra state to carry into the flatbuffer,
and the straight-through estimator still lets the weights move to where 15 levels serve them best. A
learned clipping scale can do better at 4 bits when a channel has one outlier weight; that would need the
exporter to take the learned scales, and is left as future work. Distillation from the float model uses the
trainer's ``teacher_logits`` / ``distill_alpha`` unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audio_nas.space.layers import Classifier, ConvBnAct

EMA = 0.99


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """TFLite rounding with a straight-through gradient."""
    r = torch.sign(x) * torch.floor(torch.abs(x) + 0.5)
    return x + (r - x).detach()


WEIGHT_QMAX = {8: 127, 4: 7}  # symmetric narrow range, as export.quantize.WEIGHT_QMAX


def fake_quant_weights(w: torch.Tensor, bits: int = 8, per_tensor: bool = False) -> torch.Tensor:
    """Per-output-channel (axis 0) or per-tensor symmetric int8 / int4, as the exporter quantises weights."""
    qmax = WEIGHT_QMAX[bits]
    if per_tensor:
        absmax = w.detach().abs().amax()
    else:
        absmax = w.detach().abs().amax(dim=tuple(range(1, w.ndim)), keepdim=True)
    scale = absmax.clamp_min(1e-8) / qmax
    return torch.clamp(round_half_away(w / scale), -qmax, qmax) * scale


class ActObserver(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            lo, hi = x.detach().min().clamp(max=0.0), x.detach().max().clamp(min=0.0)
            if not bool(self.initialised):
                self.lo.copy_(lo)
                self.hi.copy_(hi)
                self.initialised.fill_(True)
            else:
                self.lo.mul_(EMA).add_((1 - EMA) * lo)
                self.hi.mul_(EMA).add_((1 - EMA) * hi)
        scale = ((self.hi - self.lo) / 255.0).clamp_min(1e-8)
        zp = torch.clamp(round_half_away(-128 - self.lo / scale), -128, 127).detach()
        q = torch.clamp(round_half_away(x / scale) + zp, -128, 127)
        return (q - zp) * scale


def _qat_conv_forward(self: ConvBnAct, x: torch.Tensor) -> torch.Tensor:
    bn = self.bn
    std = torch.sqrt(bn.running_var + bn.eps)
    w = self.conv.weight * (bn.weight / std).reshape(-1, 1, 1, 1)
    b = bn.bias - bn.running_mean * bn.weight / std
    pt, pb, pl, pr = self.pads(x.shape[2], x.shape[3])
    if pt or pb or pl or pr:
        x = F.pad(x, (pl, pr, pt, pb))
    y = F.conv2d(
        x, fake_quant_weights(w, getattr(self, "weight_bits", 8)), b, self.stride_hw, groups=self.groups
    )
    return self.qat_out(self.act(y))


def _qat_int4_classifier_forward(self: Classifier, x: torch.Tensor) -> torch.Tensor:
    """An int4 classifier: per-tensor fake-quantised weights (TFLM's int4 FULLY_CONNECTED is per-tensor)."""
    return F.linear(x, fake_quant_weights(self.fc.weight, 4, per_tensor=True), self.fc.bias)


class _QATInput(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.obs = ActObserver()

    def forward(self, x):
        return self.obs(x)


def prepare_qat(model: nn.Module) -> nn.Module:
    """Switch ``model`` (an AudioNet) to quantisation-aware training in place; returns it."""
    for m in model.modules():
        if isinstance(m, ConvBnAct) and not hasattr(m, "qat_out"):
            m.qat_out = ActObserver()
            m.bn.eval()  # frozen statistics: the fold must match what export folds
            m.bn.requires_grad_(True)
            m.forward = _qat_conv_forward.__get__(m, ConvBnAct)
        if isinstance(m, Classifier) and getattr(m, "weight_bits", 8) == 4:
            m.forward = _qat_int4_classifier_forward.__get__(m, Classifier)
    if not hasattr(model, "qat_input"):
        model.qat_input = _QATInput(model)
        original = model.forward
        model.forward = lambda x: original(model.qat_input(x))
    return model


def is_qat(model: nn.Module) -> bool:
    return hasattr(model, "qat_input")
