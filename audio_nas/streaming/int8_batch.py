"""A batched integer simulation of an exported int8 model, for scoring hours of stream windows.

The TFLM host interpreter runs one window per call (about 15 ms for DS-CNN on this machine's shared cores)
and ``export.quantize.run_int8`` convolves in float64 (about 30 ms a window, batched): an hour of audio at a
100 ms stride is 36 000 windows, minutes per model either way. This runner computes the same integers:

- convolutions in float32 when that is exact (every partial sum is an integer below 2**24: checked per op
  from the weights, 255 * max over output channels of sum |w|), else float64 as ``run_int8``;
- per-channel requantisation vectorised over channels (``mbqm`` with arrays of multipliers and shifts);
- the other ops exactly as ``run_int8`` (it is the reference; tests compare the two bit for bit).

``graph_for_export`` rebuilds the quantised graph of an exported model from its checkpoint and refuses it
unless the rebuilt flatbuffer is byte-identical to the exported ``model.tflite``, so the posteriors are
those of the deployed model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audio_nas.errors import StreamingError
from audio_nas.export.graph import Graph, lower_model, same_pads
from audio_nas.export.quantize import (
    INT8_MAX,
    INT8_MIN,
    _clamp,
    hard_swish_int8,
    mbqm,
    quantize_graph,
    quantize_multiplier,
)
from audio_nas.export.tflite_writer import write_tflite
from audio_nas.training import load_checkpoint

FLOAT32_EXACT = 2**24


def checkpoint_of(model_dir: str | Path) -> Path | None:
    """The checkpoint an exported model came from: ``DIR/checkpoint`` (a search's pareto/trial-*) or the
    parent (``CKPT/exported`` from the demo), else None."""
    model_dir = Path(model_dir)
    for c in (model_dir / "checkpoint", model_dir.parent):
        if (c / "checkpoint.json").exists():
            return c
    return None


def graph_for_export(model_dir: str | Path, calib_x: np.ndarray) -> Graph:
    """The quantised graph of ``model_dir`` (model.tflite + checkpoint/), rebuilt with the exporter's
    calibration features ``calib_x``; raises StreamingError when it does not reproduce model.tflite."""
    model_dir = Path(model_dir)
    ckpt = checkpoint_of(model_dir)
    if ckpt is None:
        raise StreamingError(f"{model_dir} has no checkpoint to rebuild its graph from")
    spec, model, meta = load_checkpoint(ckpt)
    g = lower_model(model.eval())
    quantize_graph(g, np.asarray(calib_x, np.float32))
    want = (model_dir / "model.tflite").read_bytes()
    if write_tflite(g, description=f"audio-nas {spec.to_str()}") != want:
        raise StreamingError(
            f"{model_dir}: the graph rebuilt from {ckpt} does not reproduce model.tflite (other calibration "
            "data or export options); score it with the TFLM interpreter instead"
        )
    return g


def _requant(acc: np.ndarray, si: float, w_scale: np.ndarray, so: float) -> np.ndarray:
    """Per-channel requantisation of integer accumulators [..., C] (float64 holding integers)."""
    c = acc.shape[-1]
    pairs = [quantize_multiplier(si * float(w_scale[i if len(w_scale) > 1 else 0]) / so) for i in range(c)]
    return _mbqm_fast(
        acc, np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)
    )


def _mbqm_fast(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """MultiplyByQuantizedMultiplier of integers held in float64, with m / shift per last-axis channel
    (length C) or shared (length 1); bit-exact, without int64 work on every element.

    ``mbqm`` rounds x * m * 2**(shift - 31) to nearest twice (SRDHM, then RDBPOT by ``right`` bits), so the
    result is the nearest integer to that product v unless v lies within 0.5 / 2**right (plus float64
    round-off) of a half: only those few elements are recomputed with the integer reference.
    """
    real = m.astype(np.float64) * np.exp2(shift.astype(np.float64) - 31)  # exact: m < 2**31
    right = np.where(shift < 0, -shift, 0)
    margin = np.where(right > 0, 0.5 * np.exp2(-right.astype(np.float64)), 0.0) + 1e-6
    x = np.ascontiguousarray(x, dtype=np.float64)  # C order: y.reshape(-1) below must be a view of y
    v = x * real
    y = np.rint(v)
    d = np.subtract(v, y, out=v)
    near = np.abs(d, out=d) >= 0.5 - margin
    if near.any():
        flat = np.flatnonzero(near)  # flat indices: ten times faster than np.nonzero's one array per axis
        ch = flat % len(m) if len(m) > 1 else np.zeros(len(flat), np.int64)  # m per last-axis channel
        exact = _mbqm_per_element(np.ravel(x)[flat].astype(np.int64), m[ch], shift[ch])
        y.reshape(-1)[flat] = exact.astype(np.float64)
    return y


def _mbqm_per_element(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``mbqm`` with a multiplier and shift per element (int64; m > 0, as quantize_multiplier gives for
    positive scales)."""
    left = np.where(shift > 0, shift, 0)
    right = np.where(shift < 0, -shift, 0)
    ab = (x << left) * m
    num = ab + np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    hi = np.where(num >= 0, num >> 31, -((-num) >> 31))  # C++ truncating division by 2**31
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (hi < 0).astype(np.int64)
    return (hi >> right) + ((hi & mask) > threshold).astype(np.int64)


def _conv(a: np.ndarray, zi: int, w: np.ndarray, stride, depthwise: bool) -> np.ndarray:
    """Integer conv of int8-valued activations [N, H, W, C] minus their zero point ``zi`` with int8 weights
    (TFLite layout), SAME padding of zeros; float32 where exact, float64 otherwise; float64 integers out."""
    k_axes = (0, 1, 2) if depthwise else (1, 2, 3)
    bound = 255 * float(np.abs(w.astype(np.int64)).sum(axis=k_axes).max())
    dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
    npt = np.float32 if dtype == torch.float32 else np.float64
    xt = torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=npt) - npt(zi))
    if depthwise:
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 0, 1, 2))).to(dtype)
        groups = wt.shape[0]
    else:
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2))).to(dtype)
        groups = 1
    pt, pb = same_pads(xt.shape[2], wt.shape[2], stride[0])
    pl, pr = same_pads(xt.shape[3], wt.shape[3], stride[1])
    with torch.no_grad():
        y = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, None, stride=tuple(stride), groups=groups)
    out = np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy(), dtype=np.float64)
    return np.rint(out, out=out)  # already integers unless the conv algorithm rounds differently


def run_int8_batched(g: Graph, xq: np.ndarray) -> np.ndarray:
    """``run_int8`` (int8 input [N, T, F, 1] -> int8 logits [N, K]) with the fast paths above."""
    vals: dict[int, np.ndarray] = {g.input: xq.astype(np.float64)}  # integer values; exact
    T = g.tensors
    for op in g.ops:
        a = vals[op.inputs[0]]
        ti, to = T[op.inputs[0]], T[op.outputs[0]]
        zi, si = int(ti.zero_point[0]), float(ti.scale[0])
        zo, so = int(to.zero_point[0]), float(to.scale[0])
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = T[op.inputs[1]], T[op.inputs[2]]
            if op.kind == "FULLY_CONNECTED":  # float64 matmul of integers < 2**53: exact
                acc = (a.reshape(a.shape[0], -1).astype(np.float64) - zi) @ w.q.astype(np.float64).T
            else:
                acc = _conv(a, zi, w.q, op.options["stride"], op.kind == "DEPTHWISE_CONV_2D")
            acc = acc + b.q.astype(np.float64)
            y = _clamp(_requant(acc, si, w.scale, so) + zo, op.options["act"], so, zo)
        elif op.kind == "ADD":
            tb = T[op.inputs[1]]
            b_ = np.asarray(vals[op.inputs[1]], np.float64)
            sb, zb = float(tb.scale[0]), int(tb.zero_point[0])
            twice_max = 2 * max(si, sb)
            q = [
                quantize_multiplier(r) for r in (si / twice_max, sb / twice_max, twice_max / ((1 << 20) * so))
            ]
            m_, sh = (np.array([[p[k]] for p in q], np.int64) for k in (0, 1))
            x1 = _mbqm_fast((np.asarray(a, np.float64) - zi) * (1 << 20), m_[0], sh[0])
            x2 = _mbqm_fast((b_ - zb) * (1 << 20), m_[1], sh[1])
            y = _clamp(_mbqm_fast(x1 + x2, m_[2], sh[2]) + zo, op.options["act"], so, zo)
        elif op.kind == "AVERAGE_POOL_2D":
            count = a.shape[1] * a.shape[2]
            acc = a.astype(np.int64).sum(axis=(1, 2), keepdims=True)
            half = count // 2
            num = np.where(acc > 0, acc + half, acc - half)
            y = np.clip(np.where(num >= 0, num // count, -((-num) // count)), INT8_MIN, INT8_MAX)
        elif op.kind == "RESHAPE":
            y = a.reshape((a.shape[0], *g.shape(op.outputs[0])[1:]))
        elif op.kind == "BATCH_MATMUL":
            tb = T[op.inputs[1]]
            a = a.astype(np.int64)
            rhs = vals[op.inputs[1]].astype(np.int64) - int(tb.zero_point[0])
            if op.options["adj_y"]:
                rhs = np.swapaxes(rhs, -1, -2)
            m_, sh = quantize_multiplier(si * float(tb.scale[0]) / so)
            y = np.clip(mbqm(np.matmul(a - zi, rhs), m_, sh) + zo, INT8_MIN, INT8_MAX)
        elif op.kind == "SOFTMAX":  # as run_int8: float, TFLM's fixed-point exp can differ by 1 LSB
            r = (a.astype(np.int64) - zi) * si
            e = np.exp(r - r.max(axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
            y = np.clip(np.round(p / so) + zo, INT8_MIN, INT8_MAX).astype(np.int64)
        elif op.kind == "HARD_SWISH":
            y = hard_swish_int8(a.astype(np.int64), si, zi, so, zo)
        else:
            raise StreamingError(f"op {op.kind} has no batched int8 simulation")
        vals[op.outputs[0]] = y
    return vals[g.output].astype(np.int8)


def probabilities(g: Graph, features: np.ndarray, batch: int = 512) -> np.ndarray:
    """Float features [N, T, F] -> softmax posteriors [N, K] (float32) of the int8 model, as
    ``TflmModel.probabilities`` computes them from the int8 output."""
    ti, to = g.tensors[g.input], g.tensors[g.output]
    in_scale, in_zp = float(ti.scale[0]), int(ti.zero_point[0])
    out = []
    for i in range(0, len(features), batch):
        x = np.asarray(features[i : i + batch])
        xq = np.clip(np.round(x / in_scale) + in_zp, -128, 127).astype(np.int8)  # as TflmModel does
        q = run_int8_batched(g, xq[..., None])
        logits = (q.astype(np.float64) - float(to.zero_point[0])) * float(to.scale[0])
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        out.append((e / e.sum(axis=1, keepdims=True)).astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, g.shape(g.output)[-1]), np.float32)
