"""Latency/energy/arena/flash of a .tflite file: an exported model, and a hand-made one with an op the cycle
model does not cover."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

from audio_nas.energy import load_board
from audio_nas.energy.tflite_file import estimate_tflite
from audio_nas.errors import EnergyModelError, VerificationError
from audio_nas.export import export_random, tflm_arena_bytes
from audio_nas.space import arch_costs, resolve_arch


def logistic_model() -> bytes:
    """A one-op int8 LOGISTIC model, written with the schema's object API."""
    model = S.ModelT()
    model.version = 3
    model.buffers = [S.BufferT()]
    code = S.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = S.BuiltinOperator.LOGISTIC
    code.version = 1
    model.operatorCodes = [code]
    sub = S.SubGraphT()
    sub.tensors = []
    for name, (scale, zp) in (("x", (0.1, 0)), ("y", (1 / 256, -128))):
        t = S.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, 8], S.TensorType.INT8, 0
        t.quantization = S.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [zp]
        sub.tensors.append(t)
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sub.operators = [op]
    sub.inputs, sub.outputs = [0], [1]
    model.subgraphs = [sub]
    b = flatbuffers.Builder(256)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_exported_model_gets_latency_energy_arena_and_flash():
    spec = resolve_arch("ds_cnn_s")
    model = export_random(spec)
    board = load_board("nucleo-l4r5zi")
    est = estimate_tflite(model, board)
    assert est.flash_bytes == len(model) and est.ops == 12
    assert est.arena_bytes == tflm_arena_bytes(model) == arch_costs(spec, pointer_bytes=8).arena_bytes
    assert est.latency_ms > 0 and est.energy_uj == pytest.approx(est.latency_ms * board.active_power_mw)
    assert est.to_json()["source"] == "emulated"


def test_an_unsupported_op_is_named_with_the_supported_list():
    model = logistic_model()
    from tflite_micro.python.tflite_micro import runtime

    runtime.Interpreter.from_bytes(model, arena_size=16 * 1024)  # a valid model TFLM itself runs
    with pytest.raises(
        EnergyModelError, match=r"op LOGISTIC has no energy model; supported ops: CONV_2D, .*BATCH_MATMUL"
    ):
        estimate_tflite(model, load_board("nucleo-l4r5zi"))


def test_a_file_that_is_not_a_model_is_refused():
    with pytest.raises(VerificationError, match="TFL3"):
        estimate_tflite(np.zeros(64, np.uint8).tobytes(), load_board("nucleo-l4r5zi"))


def test_cli_energy_on_a_tflite_file(tmp_path):
    import json

    from typer.testing import CliRunner

    from audio_nas.cli import app

    spec = resolve_arch("micro_speech_tiny_conv")
    path = tmp_path / "m.tflite"
    path.write_bytes(export_random(spec))
    r = CliRunner().invoke(app, ["energy", "--tflite", str(path), "--board", "nucleo-l4r5zi", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["arena_bytes"] == arch_costs(spec, pointer_bytes=8).arena_bytes
    assert out["flash_bytes"] == path.stat().st_size and out["latency_ms"] > 0 and out["energy_uj"] > 0
    r = CliRunner().invoke(app, ["energy", "--tflite", str(path)])
    assert r.exit_code == 0 and "latency_ms" in r.output and "arena_bytes" in r.output
    bad = tmp_path / "logistic.tflite"
    bad.write_bytes(logistic_model())
    r = CliRunner().invoke(app, ["energy", "--tflite", str(bad)])
    assert isinstance(r.exception, EnergyModelError) and "LOGISTIC" in str(r.exception)
    r = CliRunner().invoke(app, ["energy"])
    assert r.exit_code != 0 and "exactly one of --arch and --tflite" in r.output
