"""Layer plan: the op-level view of a built model, in execution order.

Every primitive in ``layers.py`` appends the ops it will become in TFLite to a
``PlanBuilder``. Shapes are NHWC with batch 1 (H = time, W = frequency), so the
same records serve the analytic costs, the TFLM-like memory plan and the energy
model. Tensor ids let the memory planner see residual connections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from audio_nas.space.spec import ArchSpec, ConvSpec, DSSpec, MQASpec, UIBSpec

OPS: tuple[str, ...] = (
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "add",
    "mean",
    "softmax",
    "reshape",
    "batch_matmul",
    "mul",
    "hard_swish",
    "relu",
    "relu6",
    "pad",
    "transpose",
)
MAC_OPS: frozenset[str] = frozenset({"conv2d", "depthwise_conv2d", "fully_connected", "batch_matmul"})
# Ops that TFLM runs in place / as a view: RESHAPE aliases its input buffer.
ALIAS_OPS: frozenset[str] = frozenset({"reshape"})

Shape = tuple[int, ...]


def numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@dataclass(frozen=True)
class LayerCost:
    """One TFLite op of the deployed model (batch 1, NHWC)."""

    name: str
    op: str
    in_shape: Shape
    out_shape: Shape
    kernel_hw: tuple[int, int] = (1, 1)
    stride_hw: tuple[int, int] = (1, 1)
    groups: int = 1
    macs: int = 0
    params: int = 0  # deployed parameters: weights + biases (BN folded)
    weight_bits: int = 8  # of the op's weights (conv, depthwise, fully connected); a block's ``_w4`` sets 4
    act_bits: int = 8
    elementwise_ops: int = 0  # per-output-element work besides MACs (requantisation, activation, add)
    activation: str = "none"  # fused activation
    inputs: tuple[int, ...] = ()  # tensor ids
    output: int = -1
    extra_in_shapes: tuple[Shape, ...] = ()  # second operand of add / batch_matmul

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; ops: {OPS}")


@dataclass
class PlanBuilder:
    layers: list[LayerCost] = field(default_factory=list)
    tensor_shapes: dict[int, Shape] = field(default_factory=dict)
    _next: int = 0

    def tensor(self, shape: Shape) -> int:
        tid = self._next
        self._next += 1
        self.tensor_shapes[tid] = tuple(shape)
        return tid

    def add(self, name: str, op: str, inputs: tuple[int, ...], out_shape: Shape, **kw) -> int:
        out = self.tensor(out_shape)
        in_shape = self.tensor_shapes[inputs[0]]
        extra = tuple(self.tensor_shapes[t] for t in inputs[1:])
        n_out = numel(out_shape)
        if "elementwise_ops" not in kw:
            kw["elementwise_ops"] = _default_elementwise(op, n_out, kw.get("activation", "none"))
        self.layers.append(
            LayerCost(
                name=name,
                op=op,
                in_shape=in_shape,
                out_shape=tuple(out_shape),
                inputs=inputs,
                output=out,
                extra_in_shapes=extra,
                **kw,
            )
        )
        return out


def _default_elementwise(op: str, n_out: int, activation: str) -> int:
    """Per-output work of int8 inference besides the MACs (see costs.ace_v2 for the weights)."""
    if op in MAC_OPS:
        # bias add + fixed-point requantisation (multiply, shift, add zero point) + clamp per output
        return n_out * (4 + (1 if activation != "none" else 0))
    if op in ("add",):
        return n_out * 8  # two input rescales + add + output requantisation
    if op in ("hard_swish", "softmax"):
        return n_out * 8
    if op in ("mean",):
        return n_out * 4
    if op in ("relu", "relu6", "mul"):
        return n_out * 2
    return 0


# --------------------------------------------------------------------------------------
# The layer plan straight from a spec (no torch module): what ``AudioNet.layer_plan()`` returns
# --------------------------------------------------------------------------------------


def _conv(
    pb: PlanBuilder,
    tid: int,
    name: str,
    out_ch: int,
    kernel_hw: tuple[int, int],
    stride_hw: tuple[int, int],
    act: str,
    depthwise: bool = False,
    bits: int = 8,
) -> int:
    """One ``layers.ConvBnAct``: CONV_2D or DEPTHWISE_CONV_2D (RELU/RELU6 fused), then HARD_SWISH if any."""
    h, w, c = pb.tensor_shapes[tid][1:]
    oh, ow = -(-h // stride_hw[0]), -(-w // stride_hw[1])
    groups = c if depthwise else 1
    per_out = (c // groups) * kernel_hw[0] * kernel_hw[1]
    out = pb.add(
        name,
        "depthwise_conv2d" if groups > 1 else "conv2d",
        (tid,),
        (1, oh, ow, out_ch),
        kernel_hw=tuple(kernel_hw),
        stride_hw=tuple(stride_hw),
        groups=groups,
        macs=oh * ow * out_ch * per_out,
        params=out_ch * per_out + out_ch,  # BN folded into one bias per output channel
        activation=act if act in ("relu", "relu6") else "none",
        weight_bits=bits,
    )
    if act == "hswish":
        out = pb.add(f"{name}.hswish", "hard_swish", (out,), (1, oh, ow, out_ch))
    return out


def _uib(pb: PlanBuilder, tid: int, name: str, b: UIBSpec, stride: tuple[int, int], one_d: bool) -> int:
    c = pb.tensor_shapes[tid][3]
    mid = c * b.expand
    k2 = (lambda k: (k, 1)) if one_d else (lambda k: (k, k))
    y, w = tid, b.weight_bits
    if b.start_k:  # the stride goes to the start dw only when there is no middle dw (MobileNetV4)
        s0 = stride if not b.mid_k else (1, 1)
        y = _conv(pb, y, f"{name}.start_dw", c, k2(b.start_k), s0, "none", True, bits=w)
    y = _conv(pb, y, f"{name}.expand", mid, (1, 1), (1, 1), b.act, bits=w)
    if b.mid_k:
        y = _conv(pb, y, f"{name}.mid_dw", mid, k2(b.mid_k), stride, b.act, True, bits=w)
    y = _conv(pb, y, f"{name}.project", b.channels, (1, 1), (1, 1), "none", bits=w)
    if tuple(stride) == (1, 1) and c == b.channels:
        y = pb.add(f"{name}.add", "add", (tid, y), pb.tensor_shapes[y])
    return y


def _mqa(pb: PlanBuilder, tid: int, name: str, b: MQASpec, one_d: bool) -> int:
    _, h, w, c = pb.tensor_shapes[tid]
    d, wb = b.key_dim, b.weight_bits
    q = _conv(pb, tid, f"{name}.query", b.heads * d, (1, 1), (1, 1), "none", bits=wb)
    kv = tid
    if b.kv_stride > 1:
        k, s = ((3, 1), (b.kv_stride, 1)) if one_d else ((3, 3), (b.kv_stride, b.kv_stride))
        kv = _conv(pb, tid, f"{name}.kv_down", c, k, s, "none", True, bits=wb)
    k = _conv(pb, kv, f"{name}.key", d, (1, 1), (1, 1), "none", bits=wb)
    v = _conv(pb, kv, f"{name}.value", d, (1, 1), (1, 1), "none", bits=wb)
    m = numel(pb.tensor_shapes[k][1:3])
    n = h * w * b.heads
    q2 = pb.add(f"{name}.q_reshape", "reshape", (q,), (1, n, d))
    k2 = pb.add(f"{name}.k_reshape", "reshape", (k,), (1, m, d))
    v2 = pb.add(f"{name}.v_reshape", "reshape", (v,), (1, m, d))
    s_ = pb.add(f"{name}.qk", "batch_matmul", (q2, k2), (1, n, m), macs=n * m * d)
    p = pb.add(f"{name}.softmax", "softmax", (s_,), (1, n, m))
    o = pb.add(f"{name}.pv", "batch_matmul", (p, v2), (1, n, d), macs=n * m * d)
    o = pb.add(f"{name}.o_reshape", "reshape", (o,), (1, h, w, b.heads * d))
    o = _conv(pb, o, f"{name}.out", c, (1, 1), (1, 1), "none", bits=wb)
    return pb.add(f"{name}.add", "add", (tid, o), (1, h, w, c))


def plan_layers(spec: ArchSpec) -> list[LayerCost]:
    """The TFLite ops of ``spec``'s model in execution order, computed from the spec alone.

    Equal to ``build_model(spec).layer_plan()`` (tests/space/test_plan.py checks it on sampled specs), but
    needs no torch module, so costs of thousands of candidates take milliseconds.
    """
    pb = PlanBuilder()
    t, f = spec.input_shape
    one_d = spec.is_1d
    x = pb.tensor((1, t, f, 1))
    if one_d:
        x = pb.add("input_reshape", "reshape", (x,), (1, t, 1, f))
    st = spec.stem
    x = _conv(pb, x, "stem", st.channels, st.kernel, st.stride, st.act)
    i = 0
    for b in spec.blocks:
        if isinstance(b, MQASpec):
            x = _mqa(pb, x, f"blocks.{i}", b, one_d)
            i += 1
            continue
        for r in range(b.repeats):
            stride = b.stride if r == 0 else (1, 1)
            name = f"blocks.{i}"
            if isinstance(b, UIBSpec):
                x = _uib(pb, x, name, b, stride, one_d)
            elif isinstance(b, DSSpec):
                k = (b.kernel, 1) if one_d else (b.kernel, b.kernel)
                ch = pb.tensor_shapes[x][3]
                x = _conv(pb, x, f"{name}.dw", ch, k, stride, b.act, True, bits=b.weight_bits)
                x = _conv(pb, x, f"{name}.pw", b.channels, (1, 1), (1, 1), b.act, bits=b.weight_bits)
            elif isinstance(b, ConvSpec):
                x = _conv(pb, x, f"{name}.conv", b.channels, b.kernel, stride, b.act, bits=b.weight_bits)
            else:
                raise TypeError(f"unknown block spec {type(b).__name__}")
            i += 1
    hb = spec.head.weight_bits
    if spec.head.channels:
        x = _conv(pb, x, "head_conv", spec.head.channels, (1, 1), (1, 1), spec.head.act, bits=hb)
    if spec.head.pool == "flatten":
        x = pb.add("pool", "reshape", (x,), (1, numel(pb.tensor_shapes[x][1:])))
    else:
        x = pb.add("pool", "mean", (x,), (1, pb.tensor_shapes[x][3]))
    n_in, n_out = pb.tensor_shapes[x][1], spec.n_classes
    pb.add(
        "classifier",
        "fully_connected",
        (x,),
        (1, n_out),
        macs=n_in * n_out,
        params=n_in * n_out + n_out,
        weight_bits=hb,
    )
    return pb.layers
