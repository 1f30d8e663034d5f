"""Per-op instruction model of int8 TFLM + CMSIS-NN inference on a Cortex-M4, FITTED on measured counts.

The data: ``datasets/op-counts/`` holds the retired instructions of every op of 300 sampled architectures,
60 with channel counts off multiples of 4, and the presets (``cmsis-nn-m4``, int8 weights), and of 166
mixed-precision architectures with int4 weights in ``_w4`` layers (``cmsis-nn-m4-int4``: the presets at
int4, samples of the 4/8 space, networks of int4 conv blocks), measured on the emulated Cortex-M4 (QEMU
mps2-an386, ``-icount shift=6``; CMSDK timer ticks x 40/64) running real TFLM + CMSIS-NN kernels with a
MicroProfilerInterface around each op's Invoke (``firmware/tools/op_profiler``, driven by
``audio_nas.firmware_bridge.op_profile``). Its manifest names the TFLM / CMSIS-NN revisions, compiler, QEMU
version and command.

The model. Each op is assigned the CMSIS-NN (or TFLM reference) kernel that the pinned revisions dispatch it
to (``kernel_path``: e.g. a 1x1 stride-1 CONV_2D runs arm_convolve_1x1_s8_fast, any other conv im2col +
arm_convolve_s8, a 3x3 depthwise arm_depthwise_conv_3x3_s8; int4 weights the s4 kernel of the same shape:
arm_convolve_1x1_s4_fast, arm_convolve_s4, arm_depthwise_conv_s4_opt, arm_fully_connected_s4, which read the
packed weights and unpack each pair in the inner loop, so int4 has its own per-MAC and per-weight
coefficients: on the M4 about 2x the int8 instructions per MAC, see docs/benchmarks.md). Per kernel path the
instruction count is a NON-NEGATIVE linear combination of a few physically meaningful terms (``TERMS``): a
fixed overhead (TFLM's Invoke dispatch, the kernel's set-up), MACs (the SIMD inner loop: SMLAD does 2 MACs per
instruction), output elements (per-output requantisation: multiply, rounding shift, offset, clamp), output
pixels and channels (loop set-up), input elements (im2col / copies), and the *tails* where channel counts are
not multiples of 4 (or rows not multiples of 2), which CMSIS-NN's kernels finish in a scalar loop: MicroNets
report 138 -> 140 channels taking a conv from 37.5 to 21.5 ms. Why this and not a forest or a neural
predictor: the kernels' cost IS a sum of loop trip counts times per-iteration instruction counts, so a linear
model in the trip counts is the right functional form; non-negativity keeps every coefficient a physical cost
(no term can buy accuracy by going negative and then extrapolate to absurd values on shapes outside the
sample); it extrapolates to larger models the way the kernels do (linearly in MACs), which trees cannot; and
it has a handful of coefficients per kernel, so a few thousand measured ops pin it down and the fit is
reproducible to the last digit (scipy's NNLS, no randomness). Rows are weighted by 1/(the measured total of
their model): each op's error counts as a fraction of its own model's latency, which is the quantity the
search ranks (otherwise the largest models dominate the fit). The interpreter's own per-Invoke cost (the op
loop, outside the profiled scopes) is a second NNLS fit of ``total - sum(ops)`` on ``[1, n_ops]``.

Boards. Instructions become cycles with a per-board cycles-per-instruction (CPI) and a flash term (cycles
per weight byte read once from flash, where the board has wait states): ``cycles = CPI x instructions +
flash_cycles_per_byte x weight_bytes``; energy = latency x active power. The only calibration point allowed
is MLPerf Tiny v0.5's DS-CNN on the Nucleo-L4R5ZI (181.9 ms, 7,374 uJ, TFLM v2.3.1 + 2020 CMSIS-NN; see
``calibrate_l4r5``); other boards take CPI from their core type, with the assumption stated.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from audio_nas.errors import EnergyModelError
from audio_nas.export import parse_tflite_ops
from audio_nas.space import ArchSpec, arch_costs, resolve_arch

COEFFICIENTS_PATH = Path(__file__).resolve().parent / "op_model_coefficients.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
TABLE_DIR = Path("datasets") / "op-counts"
TABLE_NAME = "cmsis-nn-m4"
INT4_TABLE_NAME = "cmsis-nn-m4-int4"  # mixed-precision architectures (int4 weights in `_w4` layers)
# instructions per CMSDK timer tick under `-icount shift=6` (64 ns an instruction; 25 MHz timer: 40 ns a tick)
INSTRUCTIONS_PER_TICK = 40 / 64

TFLITE_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "AVERAGE_POOL_2D",
    "MEAN",
    "RESHAPE",
    "HARD_SWISH",
    "SOFTMAX",
    "BATCH_MATMUL",
)
INT4_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# plan op (audio_nas.space LayerCost.op) -> the TFLite op the exporter lowers it to
PLAN_TO_TFLITE = {
    "conv2d": "CONV_2D",
    "depthwise_conv2d": "DEPTHWISE_CONV_2D",
    "fully_connected": "FULLY_CONNECTED",
    "add": "ADD",
    "mean": "AVERAGE_POOL_2D",
    "reshape": "RESHAPE",
    "hard_swish": "HARD_SWISH",
    "softmax": "SOFTMAX",
    "batch_matmul": "BATCH_MATMUL",
}

# Terms per kernel path (see the module docstring). Names are documented in ``design_terms``.
TERMS: dict[str, tuple[str, ...]] = {
    "conv_1x1": (
        "const",
        "macs",
        "weights",
        "out_elems",
        "out_pixels",
        "cout",
        "k_tail",
        "k_tail16",
        "n_tail",
        "col_tail",
    ),
    "conv_1x1_strided": (
        "const",
        "macs",
        "weights",
        "out_elems",
        "out_pixels",
        "cout",
        "k_tail",
        "n_tail",
        "col_tail",
    ),
    "conv": (
        "const",
        "macs",
        "out_elems",
        "out_pixels",
        "cout",
        "k_tail",
        "n_tail",
        "im2col",
        "col_tail",
        "taps",
        "pad_taps",
    ),
    "dw_3x3": ("const", "macs", "out_elems", "out_pixels", "c_tail", "taps", "im2col", "pixel_rows", "rows"),
    "dw": ("const", "macs", "out_elems", "out_pixels", "c_tail", "taps", "im2col", "pixel_rows", "rows"),
    "fc": ("const", "macs", "cout", "k_tail", "n_tail"),
    "add": ("const", "out_elems"),
    "avgpool": ("const", "in_elems", "out_elems"),
    "mean": ("const", "in_elems", "out_elems"),
    "reshape": ("const", "out_elems"),
    "hard_swish": ("const", "out_elems"),
    "softmax": ("const", "out_elems", "rows"),
    "batch_matmul": ("const", "macs", "out_elems", "k_tail", "rows"),
    # int4 weights (CMSIS-NN s4 kernels; see ``kernel_path``): the packed weights are unpacked (shift pairs,
    # sign extension) inside the inner loops, so the per-MAC and per-weight coefficients carry that work;
    # n_tail4 / k_odd / c_odd are the s4 kernels' remainders (4 output channels at a time; a reduction of odd
    # length starts every other row in the middle of a byte)
    "conv_1x1_s4": (
        "const",
        "macs",
        "weights",
        "out_elems",
        "out_pixels",
        "cout",
        "k_tail",
        "k_tail16",
        "k_odd",
        "n_tail4",
        "col_tail",
    ),
    "conv_1x1_strided_s4": (
        "const",
        "macs",
        "weights",
        "out_elems",
        "out_pixels",
        "cout",
        "k_tail",
        "k_odd",
        "n_tail4",
    ),
    "conv_s4": (
        "const",
        "macs",
        "weights",
        "out_elems",
        "out_pixels",
        "cout",
        "k_tail",
        "k_odd",
        "n_tail",
        "im2col",
        "col_tail",
        "taps",
        "pad_taps",
    ),
    "dw_s4": ("const", "macs", "out_elems", "out_pixels", "c_tail", "c_odd", "taps", "im2col", "pixel_rows"),
    "fc_s4": ("const", "macs", "cout", "k_tail", "k_odd", "n_tail4"),
}
# kernel path with int8 weights -> the CMSIS-NN s4 kernel TFLM's cmsis_nn kernels call for int4 weights
# (arm_convolve_wrapper_s4: 1x1 -> arm_convolve_1x1_s4_fast / arm_convolve_1x1_s4, else arm_convolve_s4 on a
# DSP core without MVE; arm_depthwise_conv_wrapper_s4: arm_depthwise_conv_s4_opt for every kernel size;
# arm_fully_connected_s4)
S4_PATHS = {
    "conv_1x1": "conv_1x1_s4",
    "conv_1x1_strided": "conv_1x1_strided_s4",
    "conv": "conv_s4",
    "dw_3x3": "dw_s4",
    "dw": "dw_s4",
    "fc": "fc_s4",
}


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


@dataclass(frozen=True)
class OpShape:
    """One TFLite op in the fields its kernel's cost depends on (batch 1, NHWC)."""

    op: str  # TFLite builtin name
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: str = "same"  # "same" | "valid"
    weight_shape: tuple[int, ...] = ()
    in2_shape: tuple[int, ...] = ()  # second operand (ADD, BATCH_MATMUL)
    macs: int = 0
    # weights as stored (int8, or int4 packed two per byte) + int32 biases: what a kernel reads from flash at
    # least once per Invoke
    weight_bytes: int = 0
    weight_bits: int = 8  # 4: int4 weights (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED only)

    def __post_init__(self) -> None:
        if self.op not in TFLITE_OPS:
            raise EnergyModelError(f"op {self.op} has no per-op model; ops: {', '.join(TFLITE_OPS)}")
        if self.weight_bits not in (4, 8) or (self.weight_bits == 4 and self.op not in INT4_OPS):
            raise EnergyModelError(
                f"{self.op} with {self.weight_bits}-bit weights has no kernel; int4 weights exist for "
                f"{', '.join(INT4_OPS)}"
            )


def _pad_amount(in_len: int, out_len: int, k: int, s: int, padding: str) -> int:
    if padding != "same":
        return 0
    return max((out_len - 1) * s + k - in_len, 0)


def _inside_taps(in_len: int, out_len: int, k: int, s: int, padding: str) -> int:
    """(output position, kernel offset) pairs along one axis that read the input, not the padding."""
    before = _pad_amount(in_len, out_len, k, s, padding) // 2
    return sum(1 for o in range(out_len) for j in range(k) if 0 <= o * s - before + j < in_len)


def kernel_path(op: OpShape) -> str:
    """The kernel the pinned TFLM + CMSIS-NN revisions run for this op on a DSP Cortex-M (no MVE).

    From CMSIS-NN's arm_convolve_wrapper_s8.c / arm_depthwise_conv_wrapper_s8.c: a 1x1 conv without padding
    runs arm_convolve_1x1_s8_fast at stride 1 and arm_convolve_1x1_s8 otherwise; other convs arm_convolve_s8
    (im2col + matrix multiply; arm_convolve_1_x_n_s8 needs input height 1, which our NHWC layouts never
    have); a depthwise conv with channel multiplier 1 runs arm_depthwise_conv_3x3_s8 for 3x3 kernels with
    padding <= 1, else arm_depthwise_conv_s8_opt. int4 weights take the s4 kernel of the same shape class
    (``S4_PATHS``).
    """
    path = _int8_kernel_path(op)
    return S4_PATHS[path] if op.weight_bits == 4 else path


def _int8_kernel_path(op: OpShape) -> str:
    if op.op == "CONV_2D":
        if tuple(op.kernel) == (1, 1):
            return "conv_1x1" if tuple(op.stride) == (1, 1) else "conv_1x1_strided"
        return "conv"
    if op.op == "DEPTHWISE_CONV_2D":
        ih, iw = op.in_shape[1], op.in_shape[2]
        oh, ow = op.out_shape[1], op.out_shape[2]
        ph = _pad_amount(ih, oh, op.kernel[0], op.stride[0], op.padding) // 2
        pw = _pad_amount(iw, ow, op.kernel[1], op.stride[1], op.padding) // 2
        return "dw_3x3" if tuple(op.kernel) == (3, 3) and ph <= 1 and pw <= 1 else "dw"
    return {
        "FULLY_CONNECTED": "fc",
        "ADD": "add",
        "AVERAGE_POOL_2D": "avgpool",
        "MEAN": "mean",
        "RESHAPE": "reshape",
        "HARD_SWISH": "hard_swish",
        "SOFTMAX": "softmax",
        "BATCH_MATMUL": "batch_matmul",
    }[op.op]


def design_terms(op: OpShape) -> dict[str, float]:
    """The trip counts the kernels' cost is linear in.

    - macs: multiply-accumulates; weights: weight elements (the 1x1 kernel sums every weight row once per
      call for the input offset, which matters when there are few output pixels);
    - out_elems / in_elems: tensor sizes; out_pixels: output H x W (per-pixel loop); cout: output channels
      (per-channel set-up: bias, multiplier, shift);
    - k_tail: MACs of the reduction remainder (K mod 4, done scalar; K = kh x kw x cin for convs, cin for FC
      and 1x1); k_tail16: MACs of the K mod 16 remainder the 1x1 kernel does 4 at a time instead of 16;
      n_tail: MACs of the odd output channel (the kernels do two at a time); col_tail: MACs of the last
      output pixel when the pixel count is odd (two pixels at a time; the odd one takes a slower loop);
    - im2col: elements the generic conv widens into its int16 column buffer (depthwise: input elements
      copied, taps inside the input x channels); taps: output pixels x kernel taps (im2col calls memcpy or
      memset once per tap, so a 1-channel input pays per tap); pad_taps: taps that fall in the padding;
      pixel_rows: kernel rows per output pixel (depthwise copies one kernel row at a time);
    - c_tail (depthwise): MACs of channels beyond the last multiple of 4; rows: outer rows (depthwise output
      rows, softmax rows, batch-matmul output rows);
    - int4 (s4) kernels only: k_odd: MACs of rows whose reduction length is odd (every other packed row starts
      mid-byte); n_tail4: MACs of the output channels beyond the last multiple of 4; c_odd (depthwise): MACs
      of an odd channel count's last channel.
    """
    out_elems = _numel(op.out_shape)
    in_elems = _numel(op.in_shape)
    path = kernel_path(op)
    t: dict[str, float] = {"const": 1.0, "out_elems": out_elems, "in_elems": in_elems, "macs": op.macs}
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _, oh, ow, cout = op.out_shape
        ih, iw, cin = op.in_shape[1], op.in_shape[2], op.in_shape[3]
        kh, kw = op.kernel
        pixels = oh * ow
        t["out_pixels"] = pixels
        t["cout"] = cout
        t["rows"] = oh
        t["taps"] = pixels * kh * kw
        inside = _inside_taps(ih, oh, kh, op.stride[0], op.padding) * _inside_taps(
            iw, ow, kw, op.stride[1], op.padding
        )
        t["pad_taps"] = t["taps"] - inside
        if op.op == "CONV_2D":
            k = kh * kw * cin
            t["weights"] = k * cout
            t["k_tail"] = pixels * cout * (k % 4)
            t["k_tail16"] = pixels * cout * (k % 16 - k % 4)
            t["n_tail"] = pixels * k * (cout % 2)
            t["im2col"] = pixels * k
            t["col_tail"] = (pixels % 2) * cout * k
            t["k_odd"] = pixels * cout * (k % 2)
            t["n_tail4"] = pixels * k * (cout % 4)
        else:
            t["c_tail"] = pixels * kh * kw * (cout % 4)
            t["c_odd"] = pixels * kh * kw * (cout % 2)
            t["im2col"] = inside * cout
            t["pixel_rows"] = pixels * kh
    elif op.op == "FULLY_CONNECTED":
        k = op.in_shape[-1]
        cout = op.out_shape[-1]
        t["cout"] = cout
        t["k_tail"] = cout * (k % 4)
        t["n_tail"] = k * (cout % 2)
        t["k_odd"] = cout * (k % 2)
        t["n_tail4"] = k * (cout % 4)
    elif op.op == "SOFTMAX":
        t["rows"] = out_elems // max(op.out_shape[-1], 1)
    elif op.op == "BATCH_MATMUL":
        k = op.in_shape[-1]
        t["k_tail"] = out_elems * (k % 4)
        t["rows"] = out_elems // max(op.out_shape[-1], 1)
    return {name: float(t.get(name, 0.0)) for name in TERMS[path]}


# ---------------------------------------------------------------------------------------------------------
# op lists from a .tflite or from the spec's layer plan
# ---------------------------------------------------------------------------------------------------------


_OPSHAPE_FIELDS = ("kernel", "stride", "padding", "weight_shape", "in2_shape", "macs", "weight_bytes")


def stored_weight_bits(op: str, weight_shape: Sequence[int], weight_bytes: int) -> int:
    """4 where the stored weight + bias bytes are those of packed int4 weights, else 8: an int8 weight
    tensor stores one byte per element, an int4 one half a byte (rounded up), and the int32 bias 4 per
    output channel."""
    if op not in INT4_OPS or not weight_shape:
        return 8
    n = _numel(weight_shape)
    cout = weight_shape[-1] if op == "DEPTHWISE_CONV_2D" else weight_shape[0]
    return 4 if weight_bytes < n + 4 * cout else 8


def ops_from_tflite(model_bytes: bytes) -> list[OpShape]:
    """The ops of an int8-activation .tflite (int8 or packed int4 weights) with the options their kernels
    depend on (strides, padding, weights), from ``export.parse_tflite_ops`` (the one flatbuffer reader)."""
    out = []
    for r in parse_tflite_ops(model_bytes):
        kw = {k: r[k] for k in _OPSHAPE_FIELDS if k in r}
        if "pool_kernel" in r:
            kw["kernel"] = r["pool_kernel"]
        kw["weight_bits"] = stored_weight_bits(r["op"], r.get("weight_shape", ()), r.get("weight_bytes", 0))
        out.append(OpShape(r["op"], tuple(r["inputs"][0]), tuple(r["outputs"][0]), **kw))
    return out


def _stride_of(layer) -> tuple[int, int]:
    stride = getattr(layer, "stride_hw", None)
    if stride:
        return tuple(stride)
    ins, outs = layer.in_shape, layer.out_shape  # an op record without options: SAME padding, so ceil(in/out)
    return (max(1, round(ins[1] / outs[1])), max(1, round(ins[2] / outs[2])))


def _stored(weights: int, bits: int) -> int:
    """Bytes of ``weights`` elements at ``bits`` (int4 packed two per byte, rounded up)."""
    return -(-int(weights) * bits // 8)


def ops_from_plan(layers: Iterable) -> list[OpShape]:
    """Op records in the plan's vocabulary (``arch_costs(spec).layers``, or ``energy.op_records.OpRecord``
    parsed from a .tflite) as the ops the exporter writes for them. ``OpShape`` items pass through.

    The exporter lowers a global ``mean`` to AVERAGE_POOL_2D (output 1x1x1xC) followed by a RESHAPE to (1, C)
    when the plan's mean is 2-D; padding is SAME (the exporter's); records without strides or parameter counts
    get them from the shapes.
    """
    out = []
    for layer in layers:
        if isinstance(layer, OpShape):
            out.append(layer)
            continue
        if layer.op not in PLAN_TO_TFLITE:
            raise EnergyModelError(
                f"plan op {layer.op} has no per-op model; ops: {', '.join(PLAN_TO_TFLITE)}"
            )
        name = PLAN_TO_TFLITE[layer.op]
        ins, outs = tuple(layer.in_shape), tuple(layer.out_shape)
        params = getattr(layer, "params", 0)
        bits = getattr(layer, "weight_bits", 8) if name in INT4_OPS else 8
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            cout = outs[-1]
            kh, kw = tuple(layer.kernel_hw)
            weights = params - cout if params else kh * kw * cout * (ins[-1] if name == "CONV_2D" else 1)
            out.append(
                OpShape(
                    name,
                    ins,
                    outs,
                    kernel=(kh, kw),
                    stride=_stride_of(layer),
                    padding="same",
                    macs=int(layer.macs),
                    weight_bytes=_stored(weights, bits) + 4 * cout,
                    weight_bits=bits,
                )
            )
        elif name == "FULLY_CONNECTED":
            cout = outs[-1]
            weights = params - cout if params else layer.macs
            out.append(
                OpShape(
                    name,
                    ins,
                    outs,
                    macs=int(layer.macs),
                    weight_bytes=_stored(weights, bits) + 4 * cout,
                    weight_bits=bits,
                )
            )
        elif name == "AVERAGE_POOL_2D":
            c = ins[-1]
            out.append(OpShape(name, ins, (1, 1, 1, c), kernel=(ins[1], ins[2])))
            if len(outs) == 2:
                out.append(OpShape("RESHAPE", (1, 1, 1, c), outs))
        elif name in ("ADD", "BATCH_MATMUL"):
            extra = getattr(layer, "extra_in_shapes", ())
            out.append(
                OpShape(name, ins, outs, in2_shape=tuple(extra[0]) if extra else ins, macs=int(layer.macs))
            )
        else:
            out.append(OpShape(name, ins, outs))
    return out


# ---------------------------------------------------------------------------------------------------------
# the fitted model
# ---------------------------------------------------------------------------------------------------------


@dataclass
class OpModel:
    """Fitted coefficients (instructions per term) per kernel path, plus the interpreter's per-Invoke cost."""

    coefficients: dict[str, dict[str, float]]
    invoke_overhead: dict[str, float]  # {"const": ..., "per_op": ...}
    meta: dict = field(default_factory=dict)
    boards: dict[str, dict] = field(default_factory=dict)

    def predict_op(self, op: OpShape) -> float:
        path = kernel_path(op)
        if path not in self.coefficients:
            raise EnergyModelError(
                f"the op model has no coefficients for {path} ({op.op}): the measured table had no such op; "
                f"re-run the op-count campaign (audio_nas.firmware_bridge.op_profile)"
            )
        coef = self.coefficients[path]
        return float(sum(coef[k] * v for k, v in design_terms(op).items()))

    def predict_ops(self, ops: Sequence[OpShape]) -> np.ndarray:
        return np.array([self.predict_op(o) for o in ops], dtype=float)

    def predict_model(self, ops: Sequence[OpShape]) -> float:
        """Instructions of one Invoke: the ops plus the interpreter's loop."""
        return float(
            self.predict_ops(ops).sum()
            + self.invoke_overhead["const"]
            + self.invoke_overhead["per_op"] * len(ops)
        )

    def to_json(self) -> dict:
        return {
            "meta": self.meta,
            "invoke_overhead": self.invoke_overhead,
            "coefficients": self.coefficients,
            "terms": {p: list(t) for p, t in TERMS.items()},
            "boards": self.boards,
        }

    def save(self, path: str | Path = COEFFICIENTS_PATH) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path = COEFFICIENTS_PATH) -> OpModel:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EnergyModelError(f"op-model coefficients {path} cannot be read: {exc}") from exc
        for p, terms in data.get("terms", {}).items():
            if p in TERMS and tuple(terms) != TERMS[p]:
                raise EnergyModelError(
                    f"{path}: kernel path {p} was fitted on terms {terms}, this code has {list(TERMS[p])}; "
                    f"refit with `python -m audio_nas.energy.op_model fit`"
                )
        return cls(
            data["coefficients"], data["invoke_overhead"], data.get("meta", {}), data.get("boards", {})
        )


_DEFAULT: OpModel | None = None


def default_model() -> OpModel:
    """The committed coefficients (audio_nas/energy/op_model_coefficients.json), loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = OpModel.load()
    return _DEFAULT


# ---------------------------------------------------------------------------------------------------------
# the measured table
# ---------------------------------------------------------------------------------------------------------

OP_COLUMNS = (
    "arch",
    "op_index",
    "op",
    "tag",
    "in_shape",
    "out_shape",
    "in2_shape",
    "weight_shape",
    "kernel_h",
    "kernel_w",
    "stride_h",
    "stride_w",
    "padding",
    "macs",
    "weight_bytes",
    "ticks",
)
MODEL_COLUMNS = (
    "arch",
    "source",
    "spec",
    "n_ops",
    "invoke_ticks",
    "invoke_ticks_repeat",
    "profiled_ticks",
    "empty_event_ticks",
    "arena_used",
    "model_bytes",
)


def shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split("x")) if text else ()


def op_row(arch: str, index: int, op: OpShape, tag: str, ticks: int) -> dict:
    return {
        "arch": arch,
        "op_index": index,
        "op": op.op,
        "tag": tag,
        "in_shape": shape_str(op.in_shape),
        "out_shape": shape_str(op.out_shape),
        "in2_shape": shape_str(op.in2_shape),
        "weight_shape": shape_str(op.weight_shape),
        "kernel_h": op.kernel[0],
        "kernel_w": op.kernel[1],
        "stride_h": op.stride[0],
        "stride_w": op.stride[1],
        "padding": op.padding,
        "macs": op.macs,
        "weight_bytes": op.weight_bytes,
        "ticks": ticks,
    }


def op_from_row(r: dict) -> OpShape:
    weight_shape = parse_shape(r["weight_shape"])
    return OpShape(
        r["op"],
        parse_shape(r["in_shape"]),
        parse_shape(r["out_shape"]),
        kernel=(int(r["kernel_h"]), int(r["kernel_w"])),
        stride=(int(r["stride_h"]), int(r["stride_w"])),
        padding=r["padding"],
        weight_shape=weight_shape,
        in2_shape=parse_shape(r["in2_shape"]),
        macs=int(r["macs"]),
        weight_bytes=int(r["weight_bytes"]),
        weight_bits=stored_weight_bits(r["op"], weight_shape, int(r["weight_bytes"])),
    )


def table_paths(root: str | Path | None = None, name: str = TABLE_NAME) -> tuple[Path, Path, Path]:
    d = Path(root) if root is not None else REPO_ROOT / TABLE_DIR
    return d / f"{name}-ops.csv.gz", d / f"{name}-models.csv.gz", d / f"{name}-manifest.json"


def read_csv_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def write_csv_gz(path: Path, columns: Sequence[str], rows: Iterable[dict]) -> None:
    """Deterministic gzip (mtime 0), so the same rows give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        text = io.TextIOWrapper(gz, encoding="utf-8", newline="")
        w = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in columns})
        text.flush()
        text.detach()


@dataclass
class OpTable:
    """The measured table: per-op instructions (profiler cost removed) and per-model Invoke totals."""

    arch: list[str]  # per op
    ops: list[OpShape]
    instructions: np.ndarray  # per op
    models: list[dict]  # per model: arch, source, spec, total (instructions), n_ops

    @classmethod
    def load(cls, root: str | Path | None = None, name: str = TABLE_NAME) -> OpTable:
        ops_path, models_path, _ = table_paths(root, name)
        if not ops_path.exists() or not models_path.exists():
            raise EnergyModelError(
                f"no measured op table at {ops_path.parent} ({ops_path.name}, {models_path.name}); "
                f"run `python -m audio_nas.firmware_bridge.op_profile` with a TFLM tree"
            )
        model_rows = read_csv_gz(models_path)
        empty = {r["arch"]: int(r["empty_event_ticks"]) for r in model_rows}
        op_rows = read_csv_gz(ops_path)
        instr = np.array(
            [max(int(r["ticks"]) - empty[r["arch"]], 0) * INSTRUCTIONS_PER_TICK for r in op_rows], float
        )
        models = [
            {
                "arch": r["arch"],
                "source": r["source"],
                "spec": r["spec"],
                "n_ops": int(r["n_ops"]),
                "total": int(r["invoke_ticks"]) * INSTRUCTIONS_PER_TICK,
                "table": name,
            }
            for r in model_rows
        ]
        return cls([r["arch"] for r in op_rows], [op_from_row(r) for r in op_rows], instr, models)

    @classmethod
    def load_all(cls, root: str | Path | None = None) -> OpTable:
        """The int8 table and, where committed, the int4 (mixed-precision) table, as one: what the committed
        coefficients are fitted on."""
        tables = [cls.load(root, TABLE_NAME)]
        if table_paths(root, INT4_TABLE_NAME)[0].exists():
            tables.append(cls.load(root, INT4_TABLE_NAME))
        return cls.concat(tables)

    @classmethod
    def concat(cls, tables: Sequence[OpTable]) -> OpTable:
        archs = [m["arch"] for t in tables for m in t.models]
        if len(set(archs)) != len(archs):
            raise EnergyModelError("op tables share an architecture; each must be measured once")
        return cls(
            [a for t in tables for a in t.arch],
            [o for t in tables for o in t.ops],
            np.concatenate([t.instructions for t in tables]),
            [m for t in tables for m in t.models],
        )

    def subset(self, archs: set[str]) -> OpTable:
        keep = [i for i, a in enumerate(self.arch) if a in archs]
        return OpTable(
            [self.arch[i] for i in keep],
            [self.ops[i] for i in keep],
            self.instructions[keep],
            [m for m in self.models if m["arch"] in archs],
        )

    def ops_of(self, arch: str) -> list[OpShape]:
        return [o for a, o in zip(self.arch, self.ops, strict=True) if a == arch]


def fit(table: OpTable, meta: dict | None = None) -> OpModel:
    """NNLS per kernel path on the table's ops, weighted by 1 / their model's measured total; then the
    interpreter's per-Invoke cost on ``total - sum(measured ops)``."""
    totals = {m["arch"]: m["total"] for m in table.models}
    paths = [kernel_path(o) for o in table.ops]
    coefficients: dict[str, dict[str, float]] = {}
    for path, terms in TERMS.items():
        idx = [i for i, p in enumerate(paths) if p == path]
        if not idx:
            continue
        X = np.array([[design_terms(table.ops[i])[t] for t in terms] for i in idx], float)
        y = table.instructions[idx]
        w = np.array([1.0 / totals[table.arch[i]] for i in idx])
        # scale columns to unit norm so NNLS is well conditioned, then undo the scaling
        Xw = X * w[:, None]
        norms = np.linalg.norm(Xw, axis=0)
        norms[norms == 0] = 1.0
        beta, _ = nnls(Xw / norms, y * w, maxiter=50 * len(terms))
        coefficients[path] = {t: float(b / n) for t, b, n in zip(terms, beta, norms, strict=True)}
    # interpreter overhead: measured Invoke total minus the measured ops
    op_sum: dict[str, float] = {}
    for a, v in zip(table.arch, table.instructions, strict=True):
        op_sum[a] = op_sum.get(a, 0.0) + v
    X = np.array([[1.0, m["n_ops"]] for m in table.models])
    y = np.array([m["total"] - op_sum.get(m["arch"], 0.0) for m in table.models])
    w = np.array([1.0 / m["total"] for m in table.models])
    beta, _ = nnls(X * w[:, None], y * w)
    return OpModel(
        coefficients,
        {"const": float(beta[0]), "per_op": float(beta[1])},
        meta=dict(meta or {}, fitted_on_archs=len(table.models), fitted_on_ops=len(table.ops)),
    )


def _quantiles(x: np.ndarray) -> dict:
    x = np.asarray(x, float)
    return {
        "median": float(np.median(x)),
        "q25": float(np.percentile(x, 25)),
        "q75": float(np.percentile(x, 75)),
        "mean": float(np.mean(x)),
        "p90": float(np.percentile(x, 90)),
        "max": float(np.max(x)),
    }


def heldout_evaluation(table: OpTable, folds: int = 5, seed: int = 0, plan_specs: bool = True) -> dict:
    """K-fold cross-validation split by ARCHITECTURE: the model is fitted on the ops of the other folds'
    architectures and predicts each held-out architecture's whole Invoke from its op list (as parsed from its
    .tflite; with ``plan_specs`` also from the spec's layer plan, which is what the search uses). Returns the
    per-architecture absolute percentage errors (median, IQR, ...) and per-kernel-path op errors."""
    archs = [m["arch"] for m in table.models]
    order = np.random.default_rng(seed).permutation(len(archs))
    fold_of = {archs[j]: k % folds for k, j in enumerate(order)}
    ape, ape_plan, per_arch = [], [], []
    path_true: dict[str, list[float]] = {}
    path_pred: dict[str, list[float]] = {}
    for k in range(folds):
        train = {a for a in archs if fold_of[a] != k}
        test = [m for m in table.models if fold_of[m["arch"]] == k]
        model = fit(table.subset(train))
        for m in test:
            ops = table.ops_of(m["arch"])
            pred = model.predict_model(ops)
            e = abs(pred - m["total"]) / m["total"] * 100
            ape.append(e)
            row = {
                "arch": m["arch"],
                "source": m["source"],
                "measured": m["total"],
                "predicted": pred,
                "ape": e,
            }
            if plan_specs:
                plan_ops = ops_from_plan(arch_costs(ArchSpec.from_str(m["spec"])).layers)
                pp = model.predict_model(plan_ops)
                row["predicted_plan"] = pp
                row["ape_plan"] = abs(pp - m["total"]) / m["total"] * 100
                ape_plan.append(row["ape_plan"])
            per_arch.append(row)
        for a, o, y in zip(table.arch, table.ops, table.instructions, strict=True):
            if fold_of[a] == k:
                p = kernel_path(o)
                path_true.setdefault(p, []).append(float(y))
                path_pred.setdefault(p, []).append(model.predict_op(o))
    per_path = {}
    for p in path_true:
        yt, yp = np.array(path_true[p]), np.array(path_pred[p])
        rel = np.abs(yp - yt) / np.maximum(yt, 1.0) * 100
        per_path[p] = {
            "n": len(yt),
            "share_of_instructions": float(yt.sum()),
            "median_ape": float(np.median(rel)),
            "weighted_ape": float(np.abs(yp - yt).sum() / yt.sum() * 100),
        }
    total = sum(v["share_of_instructions"] for v in per_path.values())
    for v in per_path.values():
        v["share_of_instructions"] = v["share_of_instructions"] / total
    table_of = {m["arch"]: m.get("table", TABLE_NAME) for m in table.models}
    by_table: dict[str, list[float]] = {}
    for row in per_arch:
        by_table.setdefault(table_of[row["arch"]], []).append(row["ape"])
    out = {
        "archs": len(archs),
        "ops": len(table.ops),
        "folds": folds,
        "seed": seed,
        "model_ape": _quantiles(np.array(ape)),
        "model_ape_by_table": {t: dict(_quantiles(np.array(v)), archs=len(v)) for t, v in by_table.items()},
        "per_kernel_path": dict(sorted(per_path.items(), key=lambda kv: -kv[1]["share_of_instructions"])),
        "per_arch": per_arch,
    }
    if plan_specs:
        out["model_ape_plan"] = _quantiles(np.array(ape_plan))
    return out


def extrapolation_evaluation(table: OpTable, test_fraction: float = 0.2) -> dict:
    """Fit on the architectures with the smallest measured totals, predict the largest ``test_fraction``:
    how the model extrapolates to models bigger than any it was fitted on."""
    models = sorted(table.models, key=lambda m: m["total"])
    n_test = max(1, round(test_fraction * len(models)))
    train, test = models[:-n_test], models[-n_test:]
    model = fit(table.subset({m["arch"] for m in train}))
    ape = np.array(
        [abs(model.predict_model(table.ops_of(m["arch"])) - m["total"]) / m["total"] * 100 for m in test]
    )
    return {
        "train": len(train),
        "test": len(test),
        "train_max_instructions": train[-1]["total"],
        "test_min_instructions": test[0]["total"],
        "test_max_instructions": test[-1]["total"],
        "model_ape": _quantiles(ape),
    }


# ---------------------------------------------------------------------------------------------------------
# boards: instructions -> cycles -> latency, energy
# ---------------------------------------------------------------------------------------------------------

# Cycles per instruction by core when no published point calibrates the board (assumptions, stated):
# - cortex-m4f 1.25: the M4 retires ALU/MAC ops (SMLAD included) in 1 cycle, a load 2 (1 when pipelined after
#   another), a taken branch 2-4; CMSIS-NN's inner loops are ~1/3 loads, so ~1.2-1.3 from zero-wait memory.
# - cortex-m33 1.25: same pipeline depth and DSP extension as the M4 (Armv8-M Mainline).
# - cortex-m7 0.7: dual issue of loads with ALU/MAC ops; 0.6-0.8 on CMSIS-NN loops from TCM.
# - cortex-m0plus 3.3: no DSP extension, so CMSIS-NN runs its scalar C paths: about 2.6x the M4's instructions
#   (no SMLAD; 8-bit loads and sign extension per MAC) at ~1.25 cycles each. Expressed per M4 instruction.
CORE_CPI = {"cortex-m4f": 1.25, "cortex-m33": 1.25, "cortex-m7": 0.7, "cortex-m0plus": 3.3}
# Emulated boards: QEMU's -icount shift=6 runs one instruction per 64 ns of virtual time, i.e. 1.6 cycles of
# the 25 MHz system clock; the firmware reports those timer ticks as cycles.
EMULATED_CPI = 64e-9 * 25e6
# The calibration point (the project's anchors: MLPerf Tiny v0.5 reference submission, Nucleo-L4R5ZI,
# TFLM v2.3.1 with the 2020 CMSIS-NN, KWS DS-CNN): 181.9 ms at 120 MHz, 7,374 uJ.
DS_CNN_L4R5_MS = 181.9
DS_CNN_L4R5_UJ = 7374.0
L4R5_CLOCK_HZ = 120e6
# STM32L4R5 at 120 MHz: 5 flash wait states per 128-bit (16-byte) line read (RM0432); the ART accelerator
# prefetches sequential lines, so an upper bound of 5/16 cycle per weight byte read once per Invoke.
L4R5_FLASH_CYCLES_PER_BYTE = 5 / 16
# Flash wait cycles per weight byte (read once per Invoke) for boards without a calibration of their stack.
# Assumed 0 where not listed: nRF52840 runs from flash through its cache; RP2040 reads XIP flash through a
# 16 KB cache (weights larger than that miss on every pass: not modelled, stated as a limitation).
FLASH_CYCLES_PER_BYTE = {"nucleo-l4r5zi": L4R5_FLASH_CYCLES_PER_BYTE}


@dataclass(frozen=True)
class BoardTiming:
    cpi: float
    flash_cycles_per_byte: float
    basis: str


def calibrate_l4r5(model: OpModel) -> dict:
    """The Nucleo-L4R5ZI's CPI from the one allowed point, given the fitted instruction model.

    cycles(DS-CNN) = 181.9 ms x 120 MHz = CPI x predicted instructions + 5/16 x weight bytes. The point was
    measured with TFLM v2.3.1 and the 2020 CMSIS-NN, while the instructions are today's kernels': the fitted
    "CPI" therefore also carries the 2020 software's extra instructions and is an *effective* cycles per
    today's-instruction for that board and stack, not the core's CPI.
    """
    ops = ops_from_plan(arch_costs(resolve_arch("ds_cnn_s")).layers)
    instr = model.predict_model(ops)
    wbytes = sum(o.weight_bytes for o in ops)
    cycles = DS_CNN_L4R5_MS * 1e-3 * L4R5_CLOCK_HZ
    cpi = (cycles - L4R5_FLASH_CYCLES_PER_BYTE * wbytes) / instr
    return {
        "kernels": "tflm-reference",
        "cpi": cpi,
        "flash_cycles_per_byte": L4R5_FLASH_CYCLES_PER_BYTE,
        "active_power_mw": DS_CNN_L4R5_UJ / DS_CNN_L4R5_MS,
        "ds_cnn_predicted_instructions": instr,
        "ds_cnn_weight_bytes": wbytes,
        "basis": (
            "MLPerf Tiny v0.5 reference, KWS DS-CNN on Nucleo-L4R5ZI: 181.9 ms / 7,374 uJ "
            "(TFLM v2.3.1 + 2020 "
            "CMSIS-NN); effective CPI over today's CMSIS-NN instruction counts, flash 5 WS per 16-byte line"
        ),
    }


# Held-out error of the fitted model on whole-Invoke instruction counts: 5 folds split by architecture over
# the committed tables (366 int8 + 166 mixed-precision architectures, fitted together), percent per model,
# for the int8 table's architectures and for the int4 table's (at least one int4 layer). Measured by
# `python -m audio_nas.energy.op_model eval` (docs/benchmarks.md, "per-op instruction model" and "int4
# kernels"); tests/energy/test_op_model.py recomputes both.
HELDOUT_MODEL_APE_PCT = {"median": 0.51, "p90": 2.25, "max": 9.6}
HELDOUT_INT4_MODEL_APE_PCT = {"median": 0.44, "p90": 2.00, "max": 4.8}


def expected_error_note(board, model: OpModel | None = None) -> str:
    """What the ``emulated`` source's latency/energy on ``board`` is expected to miss by, and why."""
    e, e4 = HELDOUT_MODEL_APE_PCT, HELDOUT_INT4_MODEL_APE_PCT
    counts = (
        f"instruction counts held out by architecture: median {e['median']:.1f}%, 90th percentile "
        f"{e['p90']:.1f}%, max {e['max']:.1f}% (int8 weights; with int4 layers: median {e4['median']:.1f}%, "
        f"90th percentile {e4['p90']:.1f}%, max {e4['max']:.1f}%; emulated Cortex-M4, TFLM + CMSIS-NN)"
    )
    return f"{counts}; board timing: {board_timing(board, model).basis}"


def board_timing(board, model: OpModel | None = None) -> BoardTiming:
    """CPI and flash term of a board: calibrated (the coefficients' ``boards`` section, for the software stack
    of its calibration point), emulated (1.6 ticks per instruction), or from its core type (CORE_CPI, an
    assumption) with the board's flash wait states (FLASH_CYCLES_PER_BYTE; 0 where flash is cached or
    zero-wait)."""
    model = model or default_model()
    b = model.boards.get(board.name)
    if b is not None and b.get("kernels", board.kernels) == board.kernels:
        return BoardTiming(b["cpi"], b["flash_cycles_per_byte"], b["basis"])
    if board.emulated:
        return BoardTiming(
            EMULATED_CPI, 0.0, "emulated: QEMU -icount shift=6, 1.6 ticks of 25 MHz an instruction"
        )
    if board.core not in CORE_CPI:
        raise EnergyModelError(
            f"board {board.name}: no CPI for core {board.core}; cores: {', '.join(CORE_CPI)}"
        )
    return BoardTiming(
        CORE_CPI[board.core],
        FLASH_CYCLES_PER_BYTE.get(board.name, 0.0),
        f"assumed CPI of a {board.core} (energy/op_model.py CORE_CPI), no published point for this stack",
    )


def model_cycles(ops: Sequence[OpShape], board, model: OpModel | None = None) -> tuple[float, float]:
    """(cycles, instructions) of one Invoke of ``ops`` on ``board``."""
    model = model or default_model()
    timing = board_timing(board, model)
    instr = model.predict_model(ops)
    wbytes = sum(o.weight_bytes for o in ops)
    return timing.cpi * instr + timing.flash_cycles_per_byte * wbytes, instr


def fit_committed(root: str | Path | None = None) -> OpModel:
    """Fit on the committed table and calibrate the boards: what ``op_model_coefficients.json`` holds."""
    _, _, manifest_path = table_paths(root)
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    table = OpTable.load_all(root)
    meta = {
        "table": ", ".join(sorted({str(TABLE_DIR / m["table"]) for m in table.models})),
        "tflm_revision": manifest.get("tflm_revision"),
        "cmsis_nn_revision": manifest.get("cmsis_nn_revision"),
        "command": "python -m audio_nas.energy.op_model fit",
        "weighting": "rows weighted by 1 / the measured total of their model",
    }
    model = fit(table, meta)
    model.boards = {"nucleo-l4r5zi": calibrate_l4r5(model)}
    return model


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m audio_nas.energy.op_model", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit on the committed table and write op_model_coefficients.json")
    f.add_argument("--table", default=None, help="directory of the table (default datasets/op-counts)")
    f.add_argument("--out", default=str(COEFFICIENTS_PATH))
    e = sub.add_parser("eval", help="held-out (by architecture) MAPE on the committed table")
    e.add_argument("--table", default=None)
    e.add_argument("--folds", type=int, default=5)
    args = ap.parse_args(argv)
    if args.cmd == "fit":
        print(fit_committed(args.table).save(args.out))
    else:
        res = heldout_evaluation(OpTable.load_all(args.table), folds=args.folds)
        res.pop("per_arch")
        print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
