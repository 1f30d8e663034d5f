"""ArchSpec -> torch nn.Module. The module is made only of ``layers.py`` primitives."""

from __future__ import annotations

import torch
from torch import nn

from audio_nas.space.layers import (
    Classifier,
    ConvBlock,
    ConvBnAct,
    DSBlock,
    Flatten,
    GlobalAvgPool,
    MQABlock,
    UIBBlock,
)
from audio_nas.space.plan import LayerCost, PlanBuilder
from audio_nas.space.spec import ArchSpec, ConvSpec, DSSpec, MQASpec, UIBSpec, stage_shapes


def _make_block(b, in_ch: int, stride, one_d: bool) -> tuple[nn.Module, int]:
    if isinstance(b, UIBSpec):
        return UIBBlock(in_ch, b.channels, b.start_k, b.mid_k, b.expand, stride, b.act, one_d), b.channels
    if isinstance(b, DSSpec):
        return DSBlock(in_ch, b.channels, b.kernel, stride, b.act, one_d), b.channels
    if isinstance(b, ConvSpec):
        return ConvBlock(in_ch, b.channels, b.kernel, stride, b.act), b.channels
    if isinstance(b, MQASpec):
        return MQABlock(in_ch, b.heads, b.key_dim, b.kv_stride, one_d), in_ch
    raise TypeError(f"unknown block spec {type(b).__name__}")


class AudioNet(nn.Module):
    """Input ``[B, T, F]`` features, output ``[B, n_classes]`` logits."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        self.n_classes = spec.n_classes
        one_d = spec.is_1d
        t, f = spec.input_shape
        in_ch = f if one_d else 1
        self.stem = ConvBnAct(
            in_ch, spec.stem.channels, spec.stem.kernel, spec.stem.stride, act=spec.stem.act
        )
        ch = spec.stem.channels
        blocks: list[nn.Module] = []
        for b in spec.blocks:
            repeats = 1 if isinstance(b, MQASpec) else b.repeats
            for r in range(repeats):
                stride = (1, 1) if isinstance(b, MQASpec) or r > 0 else b.stride
                module, ch = _make_block(b, ch, stride, one_d)
                for (
                    sub
                ) in module.modules():  # the block's weight bit-width (``_w4``) goes to each of its convs
                    if isinstance(sub, ConvBnAct):
                        sub.weight_bits = b.weight_bits
                blocks.append(module)
        self.blocks = nn.ModuleList(blocks)
        self.head_conv = (
            ConvBnAct(ch, spec.head.channels, (1, 1), (1, 1), act=spec.head.act)
            if spec.head.channels
            else None
        )
        if spec.head.channels:
            ch = spec.head.channels
            self.head_conv.weight_bits = spec.head.weight_bits
        if spec.head.pool == "flatten":
            h, w, _ = stage_shapes(spec)[-1]
            self.pool = Flatten()
            self.classifier = Classifier(ch * h * w, spec.n_classes)
        else:
            self.pool = GlobalAvgPool()
            self.classifier = Classifier(ch, spec.n_classes)
        self.classifier.weight_bits = spec.head.weight_bits

    def to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.is_1d:
            return x.transpose(1, 2).unsqueeze(-1)  # [B, F, T, 1]: bins as channels
        return x.unsqueeze(1)  # [B, 1, T, F]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the classifier sees, ``[B, D]`` (for training-only heads)."""
        x = self.stem(self.to_nchw(x))
        for block in self.blocks:
            x = block(x)
        if self.head_conv is not None:
            x = self.head_conv(x)
        return self.pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def layer_plan(self) -> list[LayerCost]:
        """The TFLite ops of this model in execution order (NHWC, batch 1)."""
        pb = PlanBuilder()
        t, f = self.spec.input_shape
        x = pb.tensor((1, t, f, 1))
        if self.spec.is_1d:
            x = pb.add("input_reshape", "reshape", (x,), (1, t, 1, f))
        x = self.stem.plan(pb, x, "stem")
        for i, block in enumerate(self.blocks):
            x = block.plan(pb, x, f"blocks.{i}")
        if self.head_conv is not None:
            x = self.head_conv.plan(pb, x, "head_conv")
        x = self.pool.plan(pb, x, "pool")
        self.classifier.plan(pb, x, "classifier")
        return pb.layers


def build_model(spec: ArchSpec) -> AudioNet:
    return AudioNet(spec)
