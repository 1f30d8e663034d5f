"""int4 weights: packing, the integer simulation against the TFLM host interpreter per op and per block
type, mixed-precision models, the arena model, the summary and QAT's fake-quantiser."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from export_helpers import trained_like

from audio_nas.export import export_model, run_tflm, tflm_arena_bytes
from audio_nas.export.graph import Graph, Op, Tensor, fold_bn, lower_model
from audio_nas.export.qat import fake_quant_weights, prepare_qat
from audio_nas.export.quantize import int4_fallbacks, quantize_graph, quantize_input, run_int8
from audio_nas.export.tflite_writer import pack_int4, unpack_int4, write_tflite
from audio_nas.features import make_frontend
from audio_nas.space import ArchSpec, arch_costs
from audio_nas.space.tflm_arena import tflm_arena

pytestmark = pytest.mark.xdist_group("export")

FE = "fe:logmel_w30_h20_m20"
STEM = "stem:c2d_k3_s2_c8_relu"
# one spec per op that takes int4 weights, then one per block type (all tiny)
PER_OP = {
    "CONV_2D": (f"{FE}|{STEM}|conv_k3_s1_c7_r1_relu_w4|n12", "blocks.0.conv", "CONV_2D"),
    "DEPTHWISE_CONV_2D": (f"{FE}|{STEM}|ds_k5_s2_c16_r1_relu_w4|n12", "blocks.0.dw", "DEPTHWISE_CONV_2D"),
    "FULLY_CONNECTED": (f"{FE}|{STEM}|ds_k3_s1_c16_r1_relu|head:c0_w4|n12", "classifier", "FULLY_CONNECTED"),
}
PER_BLOCK = {
    "uib-IB": f"{FE}|{STEM}|uib_a0_k3_e2_s2_c16_r2_relu6_w4|n12",
    "uib-ExtraDW": f"{FE}|{STEM}|uib_a3_k5_e2_s1_c8_r1_hswish_w4|n12",
    "uib-ConvNext": f"{FE}|{STEM}|uib_a5_k0_e3_s2_c16_r1_relu_w4|n12",
    "uib-FFN": f"{FE}|{STEM}|uib_a0_k0_e2_s1_c8_r1_relu_w4|n12",
    "ds": f"{FE}|{STEM}|ds_k3_s2_c16_r2_relu_w4|n12",
    "conv": f"{FE}|{STEM}|conv_k3_s2_c12_r1_relu6_w4|n12",
    "mqa": f"{FE}|{STEM}|ds_k3_s2_c16_r1_relu|mqa_h2_d8_kv2_w4|n12",
    "head": f"{FE}|{STEM}|ds_k3_s1_c16_r1_relu|head:c24_relu_w4|n12",
    "stem-1d": f"{FE}|stem:c1d_k5_s2_c16_relu|ds_k3_s2x1_c16_r1_relu_w4|uib_a3_k5_e2_s1_c16_r1_relu6_w4|n12",
}
MIXED = (
    f"{FE}|{STEM}|ds_k3_s2_c16_r1_relu_w4|uib_a3_k3_e2_s1_c16_r1_relu|ds_k3_s1_c24_r1_relu6_w4"
    "|head:c32_relu|n12"
)


def realish_features(spec: ArchSpec, n: int = 24, seed: int = 0) -> np.ndarray:
    """Features of tone sweeps, harmonics and noise bursts through the spec's own front-end."""
    rng = np.random.default_rng(seed)
    fe = spec.frontend
    t = np.arange(fe.clip_samples) / fe.sample_rate_hz
    waves = []
    for _ in range(n):
        f0, f1 = rng.uniform(150, 3000, 2)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / 2)
        env = np.exp(-(((t - rng.uniform(0.2, 0.8)) / rng.uniform(0.05, 0.3)) ** 2))
        w = env * (np.sin(phase) + 0.4 * np.sin(2 * phase)) + rng.normal(
            0, 10 ** rng.uniform(-3, -1.5), t.size
        )
        waves.append(0.5 * w / np.abs(w).max())
    return np.asarray(make_frontend(fe)(np.asarray(waves, np.float32)), np.float32)


def _parity(spec: ArchSpec, seed: int = 0):
    x = realish_features(spec, seed=seed)
    g = quantize_graph(lower_model(trained_like(spec, seed)), x)
    b = write_tflite(g)
    xq = quantize_input(g, x)
    return g, b, run_int8(g, xq), run_tflm(b, xq)


def test_pack_int4_is_low_nibble_first_and_round_trips():
    # TFLM's UnpackDenseInt4IntoInt8: element 2i is the low nibble of byte i (sign-extended), 2i+1 the high
    assert pack_int4(np.array([1, -2, 7], np.int8)).tolist() == [0xE1, 0x07]
    assert pack_int4(np.array([-8, 3], np.int8)).tolist() == [0x38]
    v = np.random.default_rng(0).integers(-8, 8, 101).astype(np.int8)
    assert np.array_equal(unpack_int4(pack_int4(v), v.size), v)
    with pytest.raises(Exception, match="int4 values"):
        pack_int4(np.array([9], np.int8))


@pytest.mark.parametrize("name", sorted(PER_OP))
def test_int4_weights_per_op_equal_tflm_bit_for_bit(name):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

    text, op_name, kind = PER_OP[name]
    g, b, sim, tflm = _parity(ArchSpec.from_str(text))
    op = next(o for o in g.ops if o.name == op_name)
    assert op.kind == kind
    w = g.tensors[op.inputs[1]]
    assert w.bits == 4 and -7 <= w.q.min() and w.q.max() <= 7 and np.abs(w.q).max() == 7
    if kind == "FULLY_CONNECTED":
        assert len(w.scale) == 1  # TFLM's int4 FULLY_CONNECTED is per-tensor
    model = S.ModelT.InitFromPackedBuf(bytearray(b), 0)
    tensors = {
        t.name.decode() if isinstance(t.name, bytes) else t.name: t for t in model.subgraphs[0].tensors
    }
    tt = tensors[f"{op_name}/weights"]
    assert tt.type == S.TensorType.INT4
    assert len(model.buffers[tt.buffer].data) == -(-w.q.size // 2)  # two per byte
    assert np.array_equal(sim, tflm), f"{name}: {np.mean(sim == tflm):.3f} exact"


@pytest.mark.parametrize("name", sorted(PER_BLOCK))
def test_int4_blocks_equal_tflm_bit_for_bit(name):
    spec = ArchSpec.from_str(PER_BLOCK[name])
    g, _, sim, tflm = _parity(spec)
    assert any(t.bits == 4 for t in g.tensors)
    assert np.array_equal(sim, tflm), f"{name}: {np.mean(sim == tflm):.3f} exact"


def test_mixed_precision_model_exports_with_exact_parity_and_summary(tmp_path):
    spec = ArchSpec.from_str(MIXED)
    model = trained_like(spec, seed=3)
    x = realish_features(spec, n=32, seed=3)
    res = export_model(spec, model, x, tmp_path / "w4", verify_samples=32)
    assert res.parity_exact == 1.0
    bits = res.weight_bits
    assert bits["stem"] == 8 and bits["blocks.0.dw"] == 4 and bits["blocks.1.expand"] == 8
    assert bits["blocks.2.pw"] == 4 and bits["classifier"] == 8 and res.int4_fallbacks == {}
    summary = json.loads((tmp_path / "w4" / "summary.json").read_text())
    assert summary["weight_bits"] == bits and summary["int4_fallbacks"] == {}
    # the same network at 8 bits: a larger flatbuffer, by about half the int4 layers' weights
    spec8 = ArchSpec.from_str(MIXED.replace("_w4", ""))
    res8 = export_model(spec8, trained_like(spec8, seed=3), x, tmp_path / "w8", verify_samples=4)
    int4_weights = sum(l.params - l.out_shape[-1] for l in arch_costs(spec).layers if l.weight_bits == 4)
    assert res8.tflite_bytes - res.tflite_bytes >= int4_weights // 2 - 16
    assert (tmp_path / "w4" / "model_data.cc").exists() and (tmp_path / "w4" / "ops.h").exists()


def test_arena_model_counts_the_int4_scratch_buffers():
    for text in (PER_OP["FULLY_CONNECTED"][0], PER_BLOCK["uib-IB"], PER_BLOCK["mqa"], MIXED):
        spec = ArchSpec.from_str(text)
        from audio_nas.export import export_random

        assert tflm_arena(spec, pointer_bytes=8).arena_bytes == tflm_arena_bytes(export_random(spec)), text
    # int4 weights cost arena: the unpacked filter of the op being run
    w4, w8 = ArchSpec.from_str(MIXED), ArchSpec.from_str(MIXED.replace("_w4", ""))
    assert tflm_arena(w4).arena_bytes > tflm_arena(w8).arena_bytes


def test_unsupported_int4_request_falls_back_to_int8_with_a_reason():
    g = Graph()
    g.tensors = [Tensor("x", (1, 4)), Tensor("w", (4, 4), bits=4), Tensor("y", (1, 4))]
    g.ops = [Op("BATCH_MATMUL", [0, 1], [2], {"adj_y": False}, "bmm")]
    assert "no int4-weight kernel for BATCH_MATMUL" in int4_fallbacks(g)["bmm"]


def test_qat_fake_quantiser_is_the_exporters_int4_quantiser():
    spec = ArchSpec.from_str(PER_BLOCK["ds"].replace("n12", "head:c0_w4|n12"))
    model = trained_like(spec)
    x = realish_features(spec, n=8)
    g = quantize_graph(lower_model(model), x)
    cbn = model.blocks[0].dw
    w, _ = fold_bn(cbn)
    fq = fake_quant_weights(torch.from_numpy(w).float(), 4).double().numpy()  # [O, 1, kh, kw]
    wt = g.tensors[next(o for o in g.ops if o.name == "blocks.0.dw").inputs[1]]
    deq = (wt.q.astype(np.float64) * wt.scale).transpose(3, 0, 1, 2)  # [1, kh, kw, O] -> [O, 1, kh, kw]
    np.testing.assert_allclose(fq, deq, rtol=1e-5, atol=1e-7)
    fc = g.tensors[next(o for o in g.ops if o.name == "classifier").inputs[1]]
    fq_fc = fake_quant_weights(model.classifier.fc.weight.detach(), 4, per_tensor=True).double().numpy()
    np.testing.assert_allclose(fq_fc, fc.q * fc.scale[0], rtol=1e-5, atol=1e-7)
    # prepare_qat routes int4 layers through the 4-bit fake-quantiser (and 8-bit ones through int8)
    prepare_qat(model)
    model.train()
    model(torch.from_numpy(x))
    model.eval()
    assert model.blocks[0].dw.weight_bits == 4 and model.stem.weight_bits == 8
    assert torch.isfinite(model(torch.from_numpy(x))).all()


def test_int4_model_uploads_and_runs_on_the_emulated_board():
    """The bridge's upload path (chunked, CRC-checked) takes an int4 model unchanged."""
    from audio_nas.firmware_bridge.client import DeviceClient
    from audio_nas.firmware_bridge.emulator import EmulatedDevice

    spec = ArchSpec.from_str(PER_OP["FULLY_CONNECTED"][0].replace("_relu|head", "_relu_w4|head"))
    x = realish_features(spec, n=4)
    g = quantize_graph(lower_model(trained_like(spec)), x)
    xq = quantize_input(g, x)
    expected = run_int8(g, xq[:1])[0]
    with EmulatedDevice("mps2-an386") as dev, DeviceClient(f"socket://127.0.0.1:{dev.port}") as c:
        m = c.measure(write_tflite(g), xq[0], repeats=1)
    t = g.tensors[g.output]
    np.testing.assert_allclose(m.outputs, (expected - t.zero_point[0]) * t.scale[0], atol=1e-5)
