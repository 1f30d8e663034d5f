"""``export_model``: trained model -> int8 .tflite + C sources + summary, verified on TFLM."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from audio_nas.errors import ExportError
from audio_nas.export.c_array import write_c_sources
from audio_nas.export.graph import SUPPORTED_OPS, lower_model
from audio_nas.export.quantize import quantize_graph, quantize_input, run_int8, weight_bits_of
from audio_nas.export.tflite_writer import write_tflite
from audio_nas.export.verify import check_structure, run_tflm, tflm_arena_bytes
from audio_nas.space import arch_costs, build_model

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    tflite_path: Path
    tflite_bytes: int
    arena_bytes: int  # from the TFLM host interpreter
    analytic_ram_bytes: int
    flash_bytes: int
    ops: list[str]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    per_op_macs: list[tuple[str, str, int]] = field(default_factory=list)
    parity_exact: float = float(
        "nan"
    )  # fraction of TFLM outputs equal to the simulation on the calibration set
    parity_within_1: float = float("nan")
    weight_bits: dict[str, int] = field(default_factory=dict)  # op name -> 8 or 4 as written
    int4_fallbacks: dict[str, str] = field(default_factory=dict)  # asked for int4, kept int8: the reason

    def to_json(self) -> dict:
        d = asdict(self)
        d["tflite_path"] = str(self.tflite_path)
        return d


def export_model(
    spec,
    model,
    calib_x: np.ndarray,
    out_dir: str | Path,
    *,
    calibration: str = "minmax",
    verify_samples: int = 32,
    weight_bits: dict[str, int] | None = None,
) -> ExportResult:
    """Quantise ``model`` (built from ``spec``) on ``calib_x`` [N, T, F], write everything to ``out_dir``.

    Weights are int8, or int4 for the layers of ``_w4`` blocks (``weight_bits``: op name -> 4|8 overrides);
    summary.json lists every op's weight bits and any int4 request that had to stay int8, with the reason.
    """
    out_dir = Path(out_dir)
    calib_x = np.asarray(calib_x, np.float32)
    if calib_x.ndim != 3 or calib_x.shape[1:] != tuple(spec.input_shape):
        raise ExportError(
            f"calibration features must be [N, {spec.input_shape[0]}, {spec.input_shape[1]}], "
            f"got {calib_x.shape}; compute them with the spec's front-end"
        )
    g = lower_model(model)  # raises ExportError naming an unsupported op before anything is written
    quantize_graph(g, calib_x, calibration=calibration, weight_bits=weight_bits)
    model_bytes = write_tflite(g, description=f"audio-nas {spec.to_str()}")
    arena = tflm_arena_bytes(model_bytes)
    xq = quantize_input(g, calib_x[:verify_samples])
    sim = run_int8(g, xq)
    tflm = run_tflm(model_bytes, xq, arena_bytes=arena)
    diff = np.abs(tflm.astype(int) - sim.astype(int))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.tflite"
    path.write_bytes(model_bytes)
    ops = g.op_kinds
    write_c_sources(model_bytes, ops, out_dir)
    costs = arch_costs(spec)
    tin, tout = g.tensors[g.input], g.tensors[g.output]
    res = ExportResult(
        tflite_path=path,
        tflite_bytes=len(model_bytes),
        arena_bytes=arena,
        analytic_ram_bytes=costs.peak_ram_bytes,
        flash_bytes=len(model_bytes),
        ops=ops,
        input_scale=float(tin.scale[0]),
        input_zero_point=int(tin.zero_point[0]),
        output_scale=float(tout.scale[0]),
        output_zero_point=int(tout.zero_point[0]),
        per_op_macs=[(l.name, l.op, l.macs) for l in costs.layers],
        parity_exact=float((diff == 0).mean()),
        parity_within_1=float((diff <= 1).mean()),
        weight_bits=weight_bits_of(g),
        int4_fallbacks=dict(g.int4_fallbacks),
    )
    summary = {
        **res.to_json(),
        "spec": spec.to_str(),
        "arena_vs_analytic_bytes": arena - costs.peak_ram_bytes,
        "supported_ops": list(SUPPORTED_OPS),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "ops.txt").write_text("\n".join(ops) + "\n")
    log.info(
        "exported %s: %d B flatbuffer, TFLM arena %d B (analytic %d B), parity %.3f exact",
        path,
        len(model_bytes),
        arena,
        costs.peak_ram_bytes,
        res.parity_exact,
    )
    return res


def parse_tflite_ops(model_bytes: bytes) -> list[dict]:
    """Per-op records of a .tflite, with what the energy models read: ``op`` (builtin name), ``inputs`` /
    ``outputs`` (shapes), and per op type ``kernel``, ``stride``, ``padding``, ``weight_shape``,
    ``weight_bytes`` (the weight and bias buffers as stored: int4 weights count packed), ``macs``,
    ``in2_shape`` (second operand of ADD / BATCH_MATMUL), ``pool_kernel`` (AVERAGE_POOL_2D)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

    m = check_structure(model_bytes)
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.subgraphs[0]

    def stored_bytes(tensor_ids) -> int:
        total = 0
        for i in tensor_ids:
            data = m.buffers[sg.tensors[i].buffer].data
            total += 0 if data is None else len(data)
        return total

    out = []
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
        in_ids = [i for i in op.inputs if i >= 0]
        ins = [[int(d) for d in sg.tensors[i].shape] for i in in_ids]
        outs = [[int(d) for d in sg.tensors[i].shape] for i in op.outputs]
        rec: dict = {"op": name, "inputs": ins, "outputs": outs}
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            opts = op.builtinOptions
            w = ins[1]
            oh, ow, oc = outs[0][1:]
            cin = ins[0][3] if name == "CONV_2D" else 1
            rec.update(
                kernel=(w[1], w[2]),
                stride=(int(opts.strideH), int(opts.strideW)),
                padding="same" if opts.padding == S.Padding.SAME else "valid",
                weight_shape=tuple(w),
                weight_bytes=stored_bytes(in_ids[1:]),
                macs=oh * ow * oc * cin * w[1] * w[2],
            )
        elif name == "FULLY_CONNECTED":
            w = ins[1]
            rec.update(weight_shape=tuple(w), weight_bytes=stored_bytes(in_ids[1:]), macs=w[0] * w[1])
        elif name == "BATCH_MATMUL":
            rec.update(in2_shape=tuple(ins[1]), macs=int(np.prod(outs[0])) * ins[0][-1])
        elif name == "ADD":
            rec["in2_shape"] = tuple(ins[1])
        elif name == "AVERAGE_POOL_2D":
            opts = op.builtinOptions
            rec["pool_kernel"] = (int(opts.filterHeight), int(opts.filterWidth))
        out.append(rec)
    return out


def export_random_with_input(spec, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """The int8 .tflite of ``spec`` with random weights, and one quantised random input for it.

    Latency, arena and flash do not depend on the weight values, so measurement campaigns and cost checks
    use this instead of a trained model. Deterministic in ``seed``.
    """
    with torch.random.fork_rng(devices=[]):  # the caller's global torch RNG stays as it was
        torch.manual_seed(seed)
        model = build_model(spec).eval()
    calib = np.random.default_rng(seed).normal(-5, 2, size=(8, *spec.input_shape)).astype(np.float32)
    graph = quantize_graph(lower_model(model), calib)
    return write_tflite(graph), quantize_input(graph, calib[:1])[0]


def export_random(spec, seed: int = 0) -> bytes:
    """The int8 .tflite of ``spec`` with random weights (see ``export_random_with_input``)."""
    return export_random_with_input(spec, seed)[0]
