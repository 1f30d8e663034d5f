"""int8 quantisation following TFLite/TFLM conventions, and an integer simulation of TFLM's kernels.

- weights: per-channel symmetric int8 in [-127, 127] (conv: channel axis 0, depthwise: axis 3),
  FULLY_CONNECTED per-tensor symmetric; a weight tensor marked 4-bit (a block's ``_w4``) is quantised the
  same way to int4 in [-7, 7] (scale = absmax / 7: TFLM's SignedSymmetricPerChannelQuantize clamps int4 to
  [qmin + 1, qmax] = [-7, 7], the narrow range TFLite's converter also uses) and written packed; the
  kernels unpack it to int8 before the int8 arithmetic, so ``run_int8`` needs no change for int4;
- activations: per-tensor asymmetric int8, range from calibration (min/max, or a percentile) widened
  to include 0; RESHAPE and AVERAGE_POOL_2D outputs share their input's parameters (as TFLite requires);
- biases: int32 with scale input_scale x weight_scale and zero point 0.
``run_int8`` reproduces TFLM's reference integer kernels: QuantizeMultiplier (frexp to a Q31 multiplier
and shift), MultiplyByQuantizedMultiplier (saturating rounding doubling high multiply, then rounding
right shift), ADD with a 20-bit left shift and three multipliers, AVERAGE_POOL_2D with rounding
division, BATCH_MATMUL with both operands' zero points, HARD_SWISH with its int16 fixed-point "reluish"
multiplier. SOFTMAX is simulated through float (dequantise, apply, requantise): TFLM's fixed-point exp
can differ by 1 LSB there, which the parity test tolerates (it is the last op, so nothing amplifies it).
"""

from __future__ import annotations

import math

import numpy as np

from audio_nas.errors import ExportError
from audio_nas.export.graph import Graph, conv_nhwc, run_float

INT8_MIN, INT8_MAX = -128, 127
# Symmetric (narrow-range) weight limits per bit-width: int8 [-127, 127], int4 [-7, 7].
WEIGHT_QMAX: dict[int, int] = {8: 127, 4: 7}
# Ops whose TFLM reference (and CMSIS-NN) kernels take int4 weights with int8 activations
# (kernels/conv_common.cc, depthwise_conv_common.cc, fully_connected.cc: kTfLiteInt4 + a scratch buffer).
INT4_WEIGHT_OPS: frozenset[str] = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
# A tensor that is (almost) constant gets this minimum range: a tinier output scale makes
# input_scale * weight_scale / output_scale overflow TFLM's multiplier
# ("no_integer_overflow_from_quantization").
MIN_ACT_RANGE = 1e-2


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = m * 2^(shift - 31), m in [2^30, 2^31)."""
    if real == 0:
        return 0, 0
    mant, shift = math.frexp(real)
    q = int(math.copysign(math.floor(abs(mant) * (1 << 31) + 0.5), mant))  # TfLiteRound: half away from zero
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def _trunc_div(x: np.ndarray, d: int) -> np.ndarray:
    """C++ integer division (truncates toward zero)."""
    return np.where(x >= 0, x // d, -((-x) // d))


def _srdhm(a: np.ndarray, b: int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul for int32 a and scalar b (int64 arithmetic, no overflow)."""
    a = a.astype(np.int64)
    ab = a * np.int64(b)
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    res = _trunc_div(ab + nudge, 1 << 31)
    overflow = (a == np.iinfo(np.int32).min) & (b == np.iinfo(np.int32).min)
    return np.where(overflow, np.iinfo(np.int32).max, res)


def _rdbpot(x: np.ndarray, exponent: int) -> np.ndarray:
    """RoundingDivideByPOT."""
    if exponent == 0:
        return x
    mask = np.int64((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def mbqm(x: np.ndarray, m: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (TFLM reference, non-double-rounding variant)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return _rdbpot(_srdhm(np.asarray(x, np.int64) * (1 << left), m), right)


def _srdhm16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16 (SQRDMULH)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    res = _trunc_div(ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14)), 1 << 15)
    return np.where((a == b) & (a == -32768), 32767, res)


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's SaturatingDoublingHighMul on int16 (SQDMULH: truncating, not rounding)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    return np.where((a == b) & (a == -32768), 32767, _trunc_div(a * b, 1 << 15))


def _sat_left_shift16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(x * (1 << amount), -32768, 32767)


def _int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier, then DownScaleInt32ToInt16Multiplier (round the Q31 mantissa to Q15)."""
    m32, exponent = quantize_multiplier(real)
    m16 = 32767 if m32 >= (1 << 31) - 1 - (1 << 15) else (m32 + (1 << 15)) >> 16
    return m16, exponent


def hard_swish_int8(
    a: np.ndarray, input_scale: float, input_zp: int, output_scale: float, output_zp: int
) -> np.ndarray:
    """TFLM's int8 HARD_SWISH, bit for bit (reference_ops::HardSwish with HardSwishPrepare's parameters).

    Written out here because the float approximation differs by 1 LSB on a fraction of values, and those
    differences grow through the following layers (a hard-swish model's outputs agreed within 1 LSB on only
    82% of test clips before this). Scales are float32 on the device, so the parameters are computed in
    float32.
    """
    f32 = np.float32
    hires_input_scale = f32(1.0 / 128.0) * f32(input_scale)
    out_m, out_exp = _int16_multiplier(float(f32(hires_input_scale / f32(output_scale))))
    relu_m, relu_exp = _int16_multiplier(float(f32(hires_input_scale / f32(3.0 / 32768.0))))
    if out_exp > 0:
        raise ExportError(
            f"HARD_SWISH output scale {output_scale:g} is below input scale / 128: TFLM rejects it"
        )
    x_hires = (np.asarray(a, np.int64) - input_zp) * (1 << 7)
    x_preshift = _srdhm16(x_hires, out_m)
    reluish = x_hires
    if relu_exp > 0:
        reluish = _sat_left_shift16(reluish, relu_exp - 1)
    reluish = _srdhm16(reluish, relu_m)
    if relu_exp > 0:
        reluish = _sat_left_shift16(reluish, 1)
    if relu_exp < 0:
        reluish = _rdbpot(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    out = _rdbpot(_sdhm16(reluish, x_preshift), -out_exp) + output_zp
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int64)


def act_qparams(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < MIN_ACT_RANGE:
        hi = lo + MIN_ACT_RANGE
    # float32 like the flatbuffer (TFLM derives every multiplier from the stored float32 scales)
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return scale, zp


def int4_fallbacks(g: Graph) -> dict[str, str]:
    """Ops whose weights ask for 4 bits but must stay int8 in TFLM: op name -> the reason."""
    out = {}
    for op in g.ops:
        if len(op.inputs) > 1 and g.tensors[op.inputs[1]].bits == 4 and op.kind not in INT4_WEIGHT_OPS:
            out[op.name] = (
                f"TFLM has no int4-weight kernel for {op.kind} (only {', '.join(sorted(INT4_WEIGHT_OPS))})"
            )
    return out


def weight_bits_of(g: Graph) -> dict[str, int]:
    """Op name -> the bit-width its weights are written with (ops with weights only)."""
    return {
        op.name: g.tensors[op.inputs[1]].bits
        for op in g.ops
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    }


def quantize_graph(
    g: Graph,
    calib_x: np.ndarray,
    *,
    calibration: str = "minmax",
    percentile: float = 99.99,
    weight_bits: dict[str, int] | None = None,
) -> Graph:
    """Calibrate activation ranges on ``calib_x`` and quantise every tensor in place.

    ``weight_bits``: op name -> 4 or 8, overriding what the model's layers ask for (by default a block's
    ``_w4``); a 4-bit request on an op TFLM cannot run with int4 weights falls back to int8
    (``int4_fallbacks`` says why; the exporter writes the reasons into summary.json).
    """
    if calibration not in ("minmax", "percentile"):
        raise ExportError(f"calibration {calibration!r} is unknown; choose minmax or percentile")
    if len(calib_x) == 0:
        raise ExportError("calibration needs at least one example (calib_x is empty)")
    record: dict[int, list] = {}
    run_float(g, calib_x, record)
    ranges = {}
    for t, entries in record.items():
        v = np.concatenate([e[2].ravel() for e in entries])
        if calibration == "percentile":
            ranges[t] = (float(np.percentile(v, 100 - percentile)), float(np.percentile(v, percentile)))
        else:
            ranges[t] = (float(v.min()), float(v.max()))
    # shared-parameter ops: RESHAPE and AVERAGE_POOL_2D outputs use their input's parameters
    for op in g.ops:
        if op.kind in ("RESHAPE", "AVERAGE_POOL_2D"):
            ranges[op.outputs[0]] = ranges[op.inputs[0]]
    for t, (lo, hi) in ranges.items():
        s, z = act_qparams(lo, hi)
        g.tensors[t].scale, g.tensors[t].zero_point = np.array([s]), np.array([z])
    for op in g.ops:  # TFLM's int8 SOFTMAX requires output scale 1/256 and zero point -128
        if op.kind == "SOFTMAX":
            g.tensors[op.outputs[0]].scale, g.tensors[op.outputs[0]].zero_point = (
                np.array([1 / 256]),
                np.array([-128]),
            )
    for op in g.ops:
        if weight_bits and op.name in weight_bits and len(op.inputs) > 1:
            g.tensors[op.inputs[1]].bits = int(weight_bits[op.name])
    g.int4_fallbacks = int4_fallbacks(g)
    for name in g.int4_fallbacks:
        op = next(o for o in g.ops if o.name == name)
        g.tensors[op.inputs[1]].bits = 8
    for op in g.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
            if w.bits not in WEIGHT_QMAX:
                raise ExportError(f"{op.name}: {w.bits}-bit weights are not supported; choose 8 or 4")
            qmax = WEIGHT_QMAX[w.bits]
            axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
            absmax = np.abs(w.data).max(axis=tuple(i for i in range(w.data.ndim) if i != axis))
            if op.kind == "FULLY_CONNECTED":
                absmax = np.full_like(absmax, absmax.max())
            ws = np.where(absmax > 0, absmax / qmax, 1e-8).astype(np.float32).astype(np.float64)
            if op.kind == "FULLY_CONNECTED" and w.bits == 4:
                ws = ws[:1]  # TFLM's int4 FULLY_CONNECTED is per-tensor only: one scale, or Prepare fails
            shape = [1] * w.data.ndim
            shape[axis] = -1
            w.q = np.clip(np.round(w.data / ws.reshape(shape)), -qmax, qmax).astype(np.int8)
            w.scale, w.zero_point = ws, np.zeros(len(ws), np.int64)
            in_s = g.tensors[op.inputs[0]].scale[0]
            b.scale, b.zero_point = in_s * ws, np.zeros(len(ws), np.int64)
            b.q = np.clip(np.round(b.data / b.scale), -(2**31), 2**31 - 1).astype(np.int32)
    return g


def _clamp(y: np.ndarray, act: str, s: float, z: int) -> np.ndarray:
    lo, hi = INT8_MIN, INT8_MAX
    if act in ("relu", "relu6"):
        lo = max(lo, z)
    if act == "relu6":  # CalculateActivationRangeQuantized: TfLiteRound(6.0f / scale) in float32
        q = np.float32(6.0) / np.float32(s)
        hi = min(hi, z + int(np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))))
    return np.clip(y, lo, hi)


def quantize_input(g: Graph, x: np.ndarray) -> np.ndarray:
    t = g.tensors[g.input]
    return np.clip(
        np.round(np.asarray(x, np.float64)[..., None] / t.scale[0]) + t.zero_point[0], -128, 127
    ).astype(np.int8)


def run_int8(g: Graph, xq: np.ndarray) -> np.ndarray:
    """Integer simulation of TFLM on int8 input [N, T, F, 1]; returns int8 logits [N, K]."""
    vals: dict[int, np.ndarray] = {g.input: xq.astype(np.int64)}
    T = g.tensors
    for op in g.ops:
        a = vals[op.inputs[0]]
        ti, to = T[op.inputs[0]], T[op.outputs[0]]
        zi, si = int(ti.zero_point[0]), float(ti.scale[0])
        zo, so = int(to.zero_point[0]), float(to.scale[0])
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = T[op.inputs[1]], T[op.inputs[2]]
            if op.kind == "FULLY_CONNECTED":
                acc = (a.reshape(a.shape[0], -1) - zi) @ w.q.astype(np.int64).T + b.q.astype(np.int64)
            else:  # integer values in float64 are exact for these sizes (< 2^53)
                acc = np.rint(
                    conv_nhwc(
                        (a - zi).astype(np.float64),
                        w.q.astype(np.float64),
                        None,
                        op.options["stride"],
                        op.kind == "DEPTHWISE_CONV_2D",
                    )
                ).astype(np.int64)
                acc = acc + b.q.astype(np.int64)
            out = np.empty_like(acc)
            for c in range(acc.shape[-1]):
                m, sh = quantize_multiplier(si * float(w.scale[c if len(w.scale) > 1 else 0]) / so)
                out[..., c] = mbqm(acc[..., c], m, sh)
            y = _clamp(out + zo, op.options["act"], so, zo)
        elif op.kind == "ADD":
            tb = T[op.inputs[1]]
            b_ = vals[op.inputs[1]]
            sb, zb = float(tb.scale[0]), int(tb.zero_point[0])
            twice_max = 2 * max(si, sb)
            m1, s1 = quantize_multiplier(si / twice_max)
            m2, s2 = quantize_multiplier(sb / twice_max)
            mo, s_o = quantize_multiplier(twice_max / ((1 << 20) * so))
            x1 = mbqm((a - zi) * (1 << 20), m1, s1)
            x2 = mbqm((b_ - zb) * (1 << 20), m2, s2)
            y = _clamp(mbqm(x1 + x2, mo, s_o) + zo, op.options["act"], so, zo)
        elif op.kind == "AVERAGE_POOL_2D":
            count = a.shape[1] * a.shape[2]
            acc = a.sum(axis=(1, 2), keepdims=True)
            half = count // 2
            num = np.where(acc > 0, acc + half, acc - half)
            y = np.clip(np.where(num >= 0, num // count, -((-num) // count)), INT8_MIN, INT8_MAX)
        elif op.kind == "RESHAPE":
            y = a.reshape((a.shape[0], *g.shape(op.outputs[0])[1:]))
        elif op.kind == "BATCH_MATMUL":  # reference_ops::BatchMatMul int8: exact integer accumulation
            tb = T[op.inputs[1]]
            rhs = vals[op.inputs[1]] - int(tb.zero_point[0])
            if op.options["adj_y"]:
                rhs = np.swapaxes(rhs, -1, -2)
            acc = np.matmul(a - zi, rhs)
            m_, sh = quantize_multiplier(si * float(tb.scale[0]) / so)
            y = np.clip(mbqm(acc, m_, sh) + zo, INT8_MIN, INT8_MAX)
        elif op.kind == "SOFTMAX":  # simulated in float; TFLM's fixed-point exp can differ by 1 LSB
            r = (a - zi) * si
            e = np.exp(r - r.max(axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
            y = np.clip(np.round(p / so) + zo, INT8_MIN, INT8_MAX).astype(np.int64)
        elif op.kind == "HARD_SWISH":
            y = hard_swish_int8(a, si, zi, so, zo)
        else:
            raise ExportError(f"op {op.kind} has no int8 simulation")
        vals[op.outputs[0]] = y
    return vals[g.output].astype(np.int8)
