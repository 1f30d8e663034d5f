"""The torch primitives every built model is made of, each with its TFLite lowering in mind.

The exporter lowers a built model op by op, so the set is small and explicit:

- ``ConvBnAct``: Conv2d (bias-free, groups for depthwise) + BatchNorm2d + activation.
  Padding follows TFLite ``SAME`` exactly: for stride 2 TFLite pads asymmetrically
  (more at the end), so the pad is explicit (``F.pad``) and the conv has padding 0.
  Lowers to CONV_2D or DEPTHWISE_CONV_2D (BN folded, RELU/RELU6 fused, HARD_SWISH separate).
- ``UIBBlock``, ``DSBlock``, ``ConvBlock``: sequences of ConvBnAct (+ ADD for residuals).
- ``MQABlock``: Mobile MQA from ConvBnAct + RESHAPE + BATCH_MATMUL + SOFTMAX + ADD
  (all int8 builtins of TFLM; the 1/sqrt(d) scale is folded into the query conv at export).
- ``GlobalAvgPool`` (MEAN over H, W) or ``Flatten`` (RESHAPE, NHWC order), ``Classifier`` (FULLY_CONNECTED).

Layout: the model takes ``[B, T, F]`` features. A 2D network views them as NCHW
``[B, 1, T, F]`` (TFLite NHWC ``[1, T, F, 1]``); a 1D network views them as
``[B, F, T, 1]`` — frequency bins as channels — which in NHWC is ``[1, T, 1, F]``,
the same memory as the input, so the exporter emits a RESHAPE only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audio_nas.space.plan import PlanBuilder, numel

ACT_LAYERS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "none": nn.Identity}


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite SAME padding (before, after) for one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBnAct(nn.Module):
    def __init__(
        self, in_ch: int, out_ch: int, kernel_hw=(1, 1), stride_hw=(1, 1), groups: int = 1, act: str = "none"
    ):
        super().__init__()
        self.kernel_hw = tuple(kernel_hw)
        self.stride_hw = tuple(stride_hw)
        self.groups = groups
        self.act_name = act
        self.conv = nn.Conv2d(
            in_ch, out_ch, self.kernel_hw, self.stride_hw, padding=0, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = ACT_LAYERS[act]()
        self.weight_bits = (
            8  # 4: int4 weights (QAT fake-quantises to [-7, 7], export packs them); set by the builder
        )

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.conv.in_channels == self.conv.out_channels

    def pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) SAME pads for an input of h x w."""
        pt, pb = same_pads(h, self.kernel_hw[0], self.stride_hw[0])
        pl, pr = same_pads(w, self.kernel_hw[1], self.stride_hw[1])
        return pt, pb, pl, pr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pt, pb, pl, pr = self.pads(x.shape[2], x.shape[3])
        if pt or pb or pl or pr:
            x = F.pad(x, (pl, pr, pt, pb))
        return self.act(self.bn(self.conv(x)))

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        h, w, c = pb.tensor_shapes[tid][1:]
        oh, ow = -(-h // self.stride_hw[0]), -(-w // self.stride_hw[1])
        oc = self.conv.out_channels
        kh, kw = self.kernel_hw
        macs = oh * ow * oc * (c // self.groups) * kh * kw
        params = self.conv.weight.numel() + oc  # folded BN -> bias
        fused = self.act_name if self.act_name in ("relu", "relu6") else "none"
        out = pb.add(
            name,
            "depthwise_conv2d" if self.is_depthwise else "conv2d",
            (tid,),
            (1, oh, ow, oc),
            kernel_hw=self.kernel_hw,
            stride_hw=self.stride_hw,
            groups=self.groups,
            macs=macs,
            params=params,
            activation=fused,
            weight_bits=self.weight_bits,
        )
        if self.act_name == "hswish":
            out = pb.add(f"{name}.hswish", "hard_swish", (out,), (1, oh, ow, oc))
        return out


class UIBBlock(nn.Module):
    """Universal Inverted Bottleneck: [start dw] -> 1x1 expand -> [middle dw] -> 1x1 project (+ residual)."""

    def __init__(
        self, in_ch: int, out_ch: int, start_k: int, mid_k: int, expand: int, stride_hw, act: str, one_d: bool
    ):
        super().__init__()
        mid = in_ch * expand
        k2 = (lambda k: (k, 1)) if one_d else (lambda k: (k, k))
        # The stride goes to the start dw only when there is no middle dw (as in MobileNetV4).
        start_stride = stride_hw if (start_k and not mid_k) else (1, 1)
        mid_stride = stride_hw if mid_k else (1, 1)
        self.start_dw = (
            ConvBnAct(in_ch, in_ch, k2(start_k), start_stride, groups=in_ch, act="none") if start_k else None
        )
        self.expand = ConvBnAct(in_ch, mid, (1, 1), (1, 1), act=act)
        self.mid_dw = ConvBnAct(mid, mid, k2(mid_k), mid_stride, groups=mid, act=act) if mid_k else None
        self.project = ConvBnAct(mid, out_ch, (1, 1), (1, 1), act="none")
        self.residual = tuple(stride_hw) == (1, 1) and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.start_dw is not None:
            y = self.start_dw(y)
        y = self.expand(y)
        if self.mid_dw is not None:
            y = self.mid_dw(y)
        y = self.project(y)
        return x + y if self.residual else y

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        y = tid
        if self.start_dw is not None:
            y = self.start_dw.plan(pb, y, f"{name}.start_dw")
        y = self.expand.plan(pb, y, f"{name}.expand")
        if self.mid_dw is not None:
            y = self.mid_dw.plan(pb, y, f"{name}.mid_dw")
        y = self.project.plan(pb, y, f"{name}.project")
        if self.residual:
            y = pb.add(f"{name}.add", "add", (tid, y), pb.tensor_shapes[y])
        return y


class DSBlock(nn.Module):
    """Depthwise KxK + BN + act, then pointwise 1x1 + BN + act (MobileNetV1 / DS-CNN)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride_hw, act: str, one_d: bool):
        super().__init__()
        k = (kernel, 1) if one_d else (kernel, kernel)
        self.dw = ConvBnAct(in_ch, in_ch, k, stride_hw, groups=in_ch, act=act)
        self.pw = ConvBnAct(in_ch, out_ch, (1, 1), (1, 1), act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        return self.pw.plan(pb, self.dw.plan(pb, tid, f"{name}.dw"), f"{name}.pw")


class ConvBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_hw, stride_hw, act: str):
        super().__init__()
        self.conv = ConvBnAct(in_ch, out_ch, kernel_hw, stride_hw, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        return self.conv.plan(pb, tid, f"{name}.conv")


class MQABlock(nn.Module):
    """Mobile multi-query attention with one shared key/value head (MobileNetV4).

    q = 1x1 conv -> heads*d; k, v = [dw 3x3 stride kv_stride] -> 1x1 conv -> d.
    Rows of Q are (position, head) pairs in NHWC order, so the TFLite graph is
    RESHAPE [HW*heads, d] -> BATCH_MATMUL(Q, K^T) -> SOFTMAX -> BATCH_MATMUL(P, V)
    -> RESHAPE [H, W, heads*d] -> 1x1 conv -> ADD (residual).
    """

    def __init__(self, ch: int, heads: int, key_dim: int, kv_stride: int, one_d: bool):
        super().__init__()
        self.heads, self.key_dim, self.kv_stride = heads, key_dim, kv_stride
        k = (3, 1) if one_d else (3, 3)
        s = (kv_stride, 1) if one_d else (kv_stride, kv_stride)
        self.query = ConvBnAct(ch, heads * key_dim, (1, 1), (1, 1), act="none")
        self.kv_down = ConvBnAct(ch, ch, k, s, groups=ch, act="none") if kv_stride > 1 else None
        self.key = ConvBnAct(ch, key_dim, (1, 1), (1, 1), act="none")
        self.value = ConvBnAct(ch, key_dim, (1, 1), (1, 1), act="none")
        self.out = ConvBnAct(heads * key_dim, ch, (1, 1), (1, 1), act="none")
        self.scale = 1.0 / math.sqrt(key_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x) * self.scale  # folded into the query conv at export
        kv = self.kv_down(x) if self.kv_down is not None else x
        k, v = self.key(kv), self.value(kv)
        q = q.permute(0, 2, 3, 1).reshape(b, h * w * self.heads, self.key_dim)
        k = k.permute(0, 2, 3, 1).reshape(b, -1, self.key_dim)
        v = v.permute(0, 2, 3, 1).reshape(b, -1, self.key_dim)
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)
        o = torch.bmm(attn, v).reshape(b, h, w, self.heads * self.key_dim).permute(0, 3, 1, 2)
        return x + self.out(o)

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        _, h, w, c = pb.tensor_shapes[tid]
        q = self.query.plan(pb, tid, f"{name}.query")
        kv = self.kv_down.plan(pb, tid, f"{name}.kv_down") if self.kv_down is not None else tid
        k = self.key.plan(pb, kv, f"{name}.key")
        v = self.value.plan(pb, kv, f"{name}.value")
        m = numel(pb.tensor_shapes[k][1:3])
        n = h * w * self.heads
        d = self.key_dim
        q2 = pb.add(f"{name}.q_reshape", "reshape", (q,), (1, n, d))
        k2 = pb.add(f"{name}.k_reshape", "reshape", (k,), (1, m, d))
        v2 = pb.add(f"{name}.v_reshape", "reshape", (v,), (1, m, d))
        s = pb.add(f"{name}.qk", "batch_matmul", (q2, k2), (1, n, m), macs=n * m * d)
        p = pb.add(f"{name}.softmax", "softmax", (s,), (1, n, m))
        o = pb.add(f"{name}.pv", "batch_matmul", (p, v2), (1, n, d), macs=n * m * d)
        o = pb.add(f"{name}.o_reshape", "reshape", (o,), (1, h, w, self.heads * d))
        o = self.out.plan(pb, o, f"{name}.out")
        return pb.add(f"{name}.add", "add", (tid, o), (1, h, w, c))


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        c = pb.tensor_shapes[tid][3]
        return pb.add(name, "mean", (tid,), (1, c))


class Flatten(nn.Module):
    """NHWC flatten (TFLite RESHAPE): permute to channels-last first so the order matches TFLite."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        return pb.add(name, "reshape", (tid,), (1, numel(pb.tensor_shapes[tid][1:])))


class Classifier(nn.Module):
    def __init__(self, in_features: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, n_classes)
        self.weight_bits = 8  # 4: int4 weights, per-tensor (a head token's ``_w4``); set by the builder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def plan(self, pb: PlanBuilder, tid: int, name: str) -> int:
        i, o = self.fc.in_features, self.fc.out_features
        return pb.add(
            name,
            "fully_connected",
            (tid,),
            (1, o),
            macs=i * o,
            params=i * o + o,
            weight_bits=self.weight_bits,
        )
