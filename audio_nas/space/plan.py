"""Layer plan: the op-level view of a built model, in execution order.

Every primitive in ``layers.py`` appends the ops it will become in TFLite to a
``PlanBuilder``. Shapes are NHWC with batch 1 (H = time, W = frequency), so the
same records serve the analytic costs, the TFLM-like memory plan and the energy
model. Tensor ids let the memory planner see residual connections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    weight_bits: int = 8
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
