"""The export IR: a flat list of TFLite-level ops over NHWC tensors, lowered from a built AudioNet.

One IR, three interpretations: ``run_float`` (numpy/torch float reference, BN folded — must equal the
torch model), ``quantize.run_int8`` (bit-level simulation of TFLM's int8 reference kernels) and
``tflite_writer.write`` (the flatbuffer). Lowering walks the ``space.layers`` primitives:
ConvBnAct -> CONV_2D / DEPTHWISE_CONV_2D (BN folded, RELU/RELU6 fused) [+ HARD_SWISH],
residual -> ADD, global average pool -> AVERAGE_POOL_2D (VALID, whole map) + RESHAPE, flatten -> RESHAPE,
Mobile MQA -> 1x1 CONV_2Ds (1/sqrt(d) folded into the query), RESHAPE, BATCH_MATMUL, SOFTMAX, BATCH_MATMUL,
RESHAPE, CONV_2D, ADD; classifier -> FULLY_CONNECTED. The model's output is the logits (int8); no SOFTMAX
is appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from audio_nas.errors import ExportError
from audio_nas.space.layers import (
    Classifier,
    ConvBlock,
    ConvBnAct,
    DSBlock,
    Flatten,
    GlobalAvgPool,
    MQABlock,
    UIBBlock,
    same_pads,
)

SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "AVERAGE_POOL_2D",
    "RESHAPE",
    "HARD_SWISH",
    "BATCH_MATMUL",
    "SOFTMAX",
)


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None  # constants: float weights / bias before quantisation
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    q: np.ndarray | None = None  # quantised constant
    bits: int = 8  # weights: 8 (int8) or 4 (int4, written packed two per byte; q holds the int8 values)


@dataclass
class Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)
    name: str = ""


@dataclass
class Graph:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    input: int = 0
    output: int = 0
    int4_fallbacks: dict[str, str] = field(default_factory=dict)  # op name -> why it stays int8 (quantize)

    def add_tensor(self, name: str, shape, data=None) -> int:
        self.tensors.append(Tensor(name, tuple(int(s) for s in shape), data))
        return len(self.tensors) - 1

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    @property
    def op_kinds(self) -> list[str]:
        return sorted({op.kind for op in self.ops})


def fold_bn(cbn: ConvBnAct) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights [O, I/g, kh, kw] and bias [O] with eval-mode BatchNorm folded in."""
    bn = cbn.bn
    std = torch.sqrt(bn.running_var + bn.eps)
    w = cbn.conv.weight.detach() * (bn.weight.detach() / std).reshape(-1, 1, 1, 1)
    b = bn.bias.detach() - bn.running_mean * bn.weight.detach() / std
    return w.double().numpy(), b.double().numpy()


class Lowering:
    def __init__(self, model):
        self.model = model
        self.g = Graph()

    def conv(self, cbn: ConvBnAct, x: int, name: str, scale: float = 1.0) -> int:
        w, b = fold_bn(cbn)
        w, b = w * scale, b * scale
        _, h, wd, _ = self.g.shape(x)
        oh, ow = -(-h // cbn.stride_hw[0]), -(-wd // cbn.stride_hw[1])
        oc = w.shape[0]
        act = cbn.act_name if cbn.act_name in ("relu", "relu6") else "none"
        if cbn.is_depthwise:
            kind, wt = "DEPTHWISE_CONV_2D", w.transpose(1, 2, 3, 0)  # [1, kh, kw, O]
        elif cbn.groups == 1:
            kind, wt = "CONV_2D", w.transpose(0, 2, 3, 1)  # [O, kh, kw, I]
        else:
            raise ExportError(
                f"{name}: grouped convolution (groups={cbn.groups}) has no TFLM builtin; "
                "use depthwise or dense"
            )
        wi = self.g.add_tensor(f"{name}/weights", wt.shape, wt)
        self.g.tensors[wi].bits = getattr(cbn, "weight_bits", 8)
        bi = self.g.add_tensor(f"{name}/bias", b.shape, b)
        out = self.g.add_tensor(name, (1, oh, ow, oc))
        self.g.ops.append(
            Op(kind, [x, wi, bi], [out], {"stride": cbn.stride_hw, "act": act, "kernel": cbn.kernel_hw}, name)
        )
        if cbn.act_name == "hswish":
            hs = self.g.add_tensor(f"{name}/hswish", (1, oh, ow, oc))
            self.g.ops.append(Op("HARD_SWISH", [out], [hs], {}, f"{name}/hswish"))
            out = hs
        return out

    def block(self, m, x: int, name: str) -> int:
        if isinstance(m, UIBBlock):
            y = x
            for part, sub in (
                ("start_dw", m.start_dw),
                ("expand", m.expand),
                ("mid_dw", m.mid_dw),
                ("project", m.project),
            ):
                if sub is not None:
                    y = self.conv(sub, y, f"{name}.{part}")
            return self.add(x, y, f"{name}.add") if m.residual else y
        if isinstance(m, DSBlock):
            return self.conv(m.pw, self.conv(m.dw, x, f"{name}.dw"), f"{name}.pw")
        if isinstance(m, ConvBlock):
            return self.conv(m.conv, x, f"{name}.conv")
        if isinstance(m, MQABlock):
            return self.mqa(m, x, name)
        raise ExportError(f"{name}: {type(m).__name__} has no TFLite lowering")

    def mqa(self, m: MQABlock, x: int, name: str) -> int:
        """q/k/v 1x1 convs (1/sqrt(d) folded into q), RESHAPEs, BATCH_MATMUL(Q, K^T), SOFTMAX,
        BATCH_MATMUL(P, V), RESHAPE back, output 1x1 conv, ADD."""
        _, h, w, c = self.g.shape(x)
        d, heads = m.key_dim, m.heads
        q = self.conv(m.query, x, f"{name}.query", scale=m.scale)
        kv = self.conv(m.kv_down, x, f"{name}.kv_down") if m.kv_down is not None else x
        k = self.conv(m.key, kv, f"{name}.key")
        v = self.conv(m.value, kv, f"{name}.value")
        _, hk, wk, _ = self.g.shape(k)
        n, mm = h * w * heads, hk * wk
        q2 = self.reshape(q, (1, n, d), f"{name}.q_reshape")
        k2 = self.reshape(k, (1, mm, d), f"{name}.k_reshape")
        v2 = self.reshape(v, (1, mm, d), f"{name}.v_reshape")
        s = self.g.add_tensor(f"{name}.qk", (1, n, mm))
        self.g.ops.append(Op("BATCH_MATMUL", [q2, k2], [s], {"adj_y": True}, f"{name}.qk"))
        p = self.g.add_tensor(f"{name}.softmax", (1, n, mm))
        self.g.ops.append(Op("SOFTMAX", [s], [p], {}, f"{name}.softmax"))
        o = self.g.add_tensor(f"{name}.pv", (1, n, d))
        self.g.ops.append(Op("BATCH_MATMUL", [p, v2], [o], {"adj_y": False}, f"{name}.pv"))
        o = self.reshape(o, (1, h, w, heads * d), f"{name}.o_reshape")
        o = self.conv(m.out, o, f"{name}.out")
        return self.add(x, o, f"{name}.add")

    def add(self, a: int, b: int, name: str) -> int:
        out = self.g.add_tensor(name, self.g.shape(a))
        self.g.ops.append(Op("ADD", [a, b], [out], {"act": "none"}, name))
        return out

    def reshape(self, x: int, shape, name: str) -> int:
        out = self.g.add_tensor(name, shape)
        self.g.ops.append(Op("RESHAPE", [x], [out], {"shape": tuple(shape)}, name))
        return out

    def lower(self) -> Graph:
        m, spec = self.model, self.model.spec
        t, f = spec.input_shape
        x = self.g.add_tensor("input", (1, t, f, 1))
        self.g.input = x
        if spec.is_1d:
            x = self.reshape(x, (1, t, 1, f), "input_reshape")
        x = self.conv(m.stem, x, "stem")
        for i, blk in enumerate(m.blocks):
            x = self.block(blk, x, f"blocks.{i}")
        if m.head_conv is not None:
            x = self.conv(m.head_conv, x, "head_conv")
        _, h, w, c = self.g.shape(x)
        if isinstance(m.pool, GlobalAvgPool):
            p = self.g.add_tensor("pool", (1, 1, 1, c))
            self.g.ops.append(Op("AVERAGE_POOL_2D", [x], [p], {"filter": (h, w)}, "pool"))
            x = self.reshape(p, (1, c), "pool_reshape")
        elif isinstance(m.pool, Flatten):
            x = self.reshape(x, (1, h * w * c), "flatten")
        fc: Classifier = m.classifier
        wt = fc.fc.weight.detach().double().numpy()
        wi = self.g.add_tensor("classifier/weights", wt.shape, wt)
        self.g.tensors[wi].bits = getattr(fc, "weight_bits", 8)
        bi = self.g.add_tensor("classifier/bias", (wt.shape[0],), fc.fc.bias.detach().double().numpy())
        out = self.g.add_tensor("logits", (1, wt.shape[0]))
        self.g.ops.append(Op("FULLY_CONNECTED", [x, wi, bi], [out], {"act": "none"}, "classifier"))
        self.g.output = out
        return self.g


def lower_model(model) -> Graph:
    model.eval()
    return Lowering(model).lower()


# ---------------------------------------------------------------------------- float reference


def _act(y, act: str):
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, 6)
    return y


def conv_nhwc(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride, depthwise: bool) -> np.ndarray:
    """NHWC conv with TFLite SAME padding of zeros; w in TFLite layout. Exact in float64."""
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).double()
    if depthwise:
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 0, 1, 2))).double()  # [O,1,kh,kw]
        groups = wt.shape[0]
    else:
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2))).double()
        groups = 1
    kh, kw = wt.shape[2], wt.shape[3]
    pt, pb = same_pads(xt.shape[2], kh, stride[0])
    pl, pr = same_pads(xt.shape[3], kw, stride[1])
    xt = F.pad(xt, (pl, pr, pt, pb))
    y = F.conv2d(
        xt, wt, None if b is None else torch.from_numpy(b).double(), stride=tuple(stride), groups=groups
    )
    return y.numpy().transpose(0, 2, 3, 1)


def run_float(g: Graph, x: np.ndarray, record: dict[int, list] | None = None) -> np.ndarray:
    """x: [N, T, F] features -> logits [N, K], and optionally every tensor's values into ``record``."""
    vals: dict[int, np.ndarray] = {g.input: np.asarray(x, np.float64)[..., None]}
    for op in g.ops:
        a = vals[op.inputs[0]]
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, b = g.tensors[op.inputs[1]].data, g.tensors[op.inputs[2]].data
            y = _act(
                conv_nhwc(a, w, b, op.options["stride"], op.kind == "DEPTHWISE_CONV_2D"), op.options["act"]
            )
        elif op.kind == "HARD_SWISH":
            y = a * np.clip(a + 3, 0, 6) / 6
        elif op.kind == "ADD":
            y = a + vals[op.inputs[1]]
        elif op.kind == "AVERAGE_POOL_2D":
            y = a.mean(axis=(1, 2), keepdims=True)
        elif op.kind == "RESHAPE":
            y = a.reshape((a.shape[0], *g.shape(op.outputs[0])[1:]))
        elif op.kind == "FULLY_CONNECTED":
            w, b = g.tensors[op.inputs[1]].data, g.tensors[op.inputs[2]].data
            y = a.reshape(a.shape[0], -1) @ w.T + b
        elif op.kind == "BATCH_MATMUL":
            rhs = vals[op.inputs[1]]
            y = a @ (np.swapaxes(rhs, -1, -2) if op.options["adj_y"] else rhs)
        elif op.kind == "SOFTMAX":
            e = np.exp(a - a.max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
        else:
            raise ExportError(f"op {op.kind} has no float reference")
        vals[op.outputs[0]] = y
    if record is not None:
        for t, v in vals.items():
            record.setdefault(t, []).append((float(v.min()), float(v.max()), v))
    return vals[g.output]
