"""Hand-set per-op cycle model of int8 inference on Cortex-M cores, for TFLM reference or CMSIS-NN kernels.

Superseded for CMSIS-NN (and for the Nucleo-L4R5ZI's TFLM + 2020 CMSIS-NN stack) by the per-op instruction
model FITTED on measured counts, ``energy/op_model.py``, which the ``emulated`` source uses. This model is
kept for the emulated board running TFLM's portable reference kernels (``mps2-an386``: nothing was measured
per op there), for the analytic source's core factors, and as the baseline the benchmarks compare against.

cycles(op) = OP_OVERHEAD + macs x cycles_per_mac(op, kernels, shape) + outputs x per-output cost
             + inputs x per-input cost (elementwise ops)
then x CALIBRATION[core, kernels], one scale per (core, kernel library) fitted on a published
measurement. Terms MAC counts miss, with where they come from:
- per-op invoke overhead (TFLM's interpreter loop, Prepare-time data looked up per Eval);
- per-output requantisation (MultiplyByQuantizedMultiplier: 64-bit multiply, rounding shift, offset,
  clamp): ~15-25 cycles per output in the reference kernels;
- CMSIS-NN's fast paths: 1x1 convs and convs whose input channels are a multiple of 4 use the SIMD
  (SMLAD, 2 MACs/cycle) path; other shapes pay im2col and a slower loop;
- depthwise convs are memory-bound (few MACs per loaded weight), so they cost more per MAC;
- elementwise ops (ADD with two rescales, HARD_SWISH, SOFTMAX with exp LUT, MEAN) cost per element.
The relative constants are engineering estimates from the kernels' inner loops; the absolute level comes
from CALIBRATION. This is an estimate and is labelled so (source "emulated"/"analytic").
Calibration (Nucleo-L4R5ZI, Cortex-M4F @ 120 MHz, MLPerf Tiny v0.5, KWS DS-CNN):
  MLPerf Tiny reference submission: 181.9 ms -> 21.83 M cycles;  X-CUBE-AI: 63.0 ms -> 7.56 M cycles.

What the "tflm-reference" key really models: the MLPerf Tiny reference submission was built from
TensorFlow v2.3.1 with ``TAGS="cmsis-nn"`` (mlcommons/tiny, v0.1/reference_submissions/keyword_spotting/
setup_example.sh, "enable CMSIS-NN"), so 181.9 ms is TFLM *with the 2020 CMSIS-NN kernels*, not TFLM's
portable reference kernels. Those are far slower: our firmware's reference-kernel build retires 198.6 M
instructions for DS-CNN on the emulated Cortex-M4 (QEMU icount, docs/benchmarks.md firmware section),
about 9x the 21.8 M cycles above; built with today's CMSIS-NN it retires 7.7 M, near X-CUBE-AI's 7.56 M
cycles. The key keeps its name so that stored profiles and runs stay readable; "cmsis-nn" is calibrated on
X-CUBE-AI's figure, the best published code for this board.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from audio_nas.space import arch_costs, resolve_arch

OP_OVERHEAD = 1_500
# cycles per MAC before calibration
REF_CPM = {"conv2d": 6.0, "depthwise_conv2d": 9.0, "fully_connected": 5.0, "batch_matmul": 6.0}
CMSIS_CPM_FAST = {"conv2d": 0.9, "depthwise_conv2d": 2.2, "fully_connected": 0.8, "batch_matmul": 1.5}
CMSIS_SLOW_FACTOR = 2.5  # conv whose input channels are not a multiple of 4: im2col + scalar loop
REQUANT_PER_OUTPUT = {"tflm-reference": 20.0, "cmsis-nn": 6.0}
ELEMENTWISE_PER_ELEMENT = {
    "add": 18.0,
    "hard_swish": 25.0,
    "softmax": 60.0,
    "mean": 4.0,
    "relu": 3.0,
    "relu6": 3.0,
    "mul": 12.0,
    "reshape": 0.0,
    "transpose": 4.0,
    "pad": 2.0,
}
# The M0+ has no DSP extension: no SIMD MACs, 1-cycle 32x32 multiply on RP2040 but more loads/shifts.
CORE_FACTOR = {"cortex-m4f": 1.0, "cortex-m33": 0.95, "cortex-m7": 0.55, "cortex-m0plus": 2.6}

DS_CNN_REF_CYCLES = 181.9e-3 * 120e6
DS_CNN_CMSIS_CYCLES = 63.0e-3 * 120e6
# Scales so that ds_cnn_s (audio_nas.space.presets) lands on the published points; recomputed by
# `calibrate()` and checked by tests/energy/test_energy.py.
CALIBRATION = {"tflm-reference": 1.1932, "cmsis-nn": 2.0553}


@dataclass(frozen=True)
class OpCycles:
    name: str
    op: str
    cycles: float


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def op_cycles(layer, kernels: str) -> float:
    """Uncalibrated cycles of one op record (LayerCost or a parsed TFLite op with the same fields)."""
    out_n = _numel(layer.out_shape)
    if layer.op in REF_CPM:
        if kernels == "tflm-reference":
            cpm = REF_CPM[layer.op]
        else:
            cpm = CMSIS_CPM_FAST[layer.op]
            in_ch = layer.in_shape[-1]
            if layer.op == "conv2d" and tuple(layer.kernel_hw) != (1, 1) and in_ch % 4 != 0:
                cpm *= CMSIS_SLOW_FACTOR
        return OP_OVERHEAD + layer.macs * cpm + out_n * REQUANT_PER_OUTPUT[kernels]
    per = ELEMENTWISE_PER_ELEMENT.get(layer.op, 5.0)
    if layer.op == "mean":
        return OP_OVERHEAD + _numel(layer.in_shape) * per + out_n * REQUANT_PER_OUTPUT[kernels]
    return OP_OVERHEAD * (0.2 if layer.op == "reshape" else 1.0) + out_n * per


def model_cycles(layers: Iterable, kernels: str, core: str = "cortex-m4f") -> tuple[float, list[OpCycles]]:
    per_op = [
        OpCycles(l.name, l.op, op_cycles(l, kernels) * CALIBRATION[kernels] * CORE_FACTOR[core])
        for l in layers
    ]
    return sum(o.cycles for o in per_op), per_op


def calibrate() -> dict[str, float]:
    """Scales that put ds_cnn_s on the published L4R5ZI cycle counts (one point per kernel library)."""

    layers = arch_costs(resolve_arch("ds_cnn_s")).layers
    raw_ref = sum(op_cycles(l, "tflm-reference") for l in layers)
    raw_cmsis = sum(op_cycles(l, "cmsis-nn") for l in layers)
    return {"tflm-reference": DS_CNN_REF_CYCLES / raw_ref, "cmsis-nn": DS_CNN_CMSIS_CYCLES / raw_cmsis}
