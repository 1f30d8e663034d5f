"""The per-op instruction model fitted on measured TFLM + CMSIS-NN counts (audio_nas/energy/op_model.py).

Offline: everything here reads the committed table (datasets/op-counts/) and coefficients; only the last test
needs a TFLM tree (TFLM_DIR, marker ``tflm``) to build and run the op profiler on QEMU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from audio_nas.energy import load_board, make_energy_model, op_model
from audio_nas.energy.op_model import (
    COEFFICIENTS_PATH,
    TERMS,
    OpModel,
    OpShape,
    OpTable,
    design_terms,
    fit_committed,
    heldout_evaluation,
    kernel_path,
    op_row,
    ops_from_plan,
    ops_from_tflite,
    table_paths,
)
from audio_nas.errors import DeviceError, EnergyModelError
from audio_nas.firmware_bridge.op_profile import parse_profile, write_table
from audio_nas.space import arch_costs, resolve_arch

pytestmark = pytest.mark.xdist_group("energy")


@pytest.fixture(scope="module")
def table() -> OpTable:
    return OpTable.load()


def test_committed_table_has_enough_architectures_and_a_manifest(table):
    sources = {m["source"] for m in table.models}
    assert sum(m["source"] == "sampled" for m in table.models) >= 200
    assert "ds_cnn_s" in sources and "misaligned" in sources
    assert len(table.ops) > 5000
    manifest = json.loads(table_paths()[2].read_text())
    for key in ("tflm_revision", "cmsis_nn_revision", "compiler", "qemu", "command", "date"):
        assert manifest[key], key
    # whole-Invoke counts are deterministic under -icount (two timed Invokes agree to a tick)
    assert all(np.isfinite(table.instructions)) and (table.instructions >= 0).all()


def test_fit_reproduces_the_committed_coefficients():
    committed = OpModel.load()
    refit = fit_committed()
    assert refit.coefficients.keys() == committed.coefficients.keys()
    for path, coef in committed.coefficients.items():
        for term, v in coef.items():
            assert refit.coefficients[path][term] == pytest.approx(v, rel=1e-6, abs=1e-9), (path, term)
    for k, v in committed.invoke_overhead.items():
        assert refit.invoke_overhead[k] == pytest.approx(v, rel=1e-6, abs=1e-9)
    assert refit.boards["nucleo-l4r5zi"]["cpi"] == pytest.approx(
        committed.boards["nucleo-l4r5zi"]["cpi"], 1e-6
    )
    assert committed.meta["tflm_revision"]
    for path in TERMS:  # every coefficient is a physical cost
        assert all(v >= 0 for v in committed.coefficients.get(path, {}).values()), path


def test_heldout_mape_by_architecture():
    """Split by architecture: no op of a held-out model was seen in the fit (docs/benchmarks.md has them)."""
    table = OpTable.load_all()
    res = heldout_evaluation(table, folds=5, seed=0, plan_specs=False)
    assert res["archs"] == len(table.models)
    # the figures the report and README quote (op_model.HELDOUT_MODEL_APE_PCT, HELDOUT_INT4_MODEL_APE_PCT)
    # are this evaluation's, for the int8 table's architectures and the int4 table's
    for name, quoted in (
        (op_model.TABLE_NAME, op_model.HELDOUT_MODEL_APE_PCT),
        (op_model.INT4_TABLE_NAME, op_model.HELDOUT_INT4_MODEL_APE_PCT),
    ):
        got = res["model_ape_by_table"][name]
        assert got["median"] == pytest.approx(quoted["median"], abs=0.01), name
        assert got["p90"] == pytest.approx(quoted["p90"], abs=0.01), name
        assert got["max"] == pytest.approx(quoted["max"], abs=0.05), name
        assert got["median"] <= 5.0 and got["q75"] <= 10.0
    big = {p: v for p, v in res["per_kernel_path"].items() if v["share_of_instructions"] > 0.05}
    assert big and all(v["weighted_ape"] < 15 for v in big.values()), big


def test_predictions_for_presets_match_their_measured_counts(table):
    model = OpModel.load()
    by_source = {m["source"]: m for m in table.models}
    for name in ("ds_cnn_s", "mobilenet_v1_x0.25", "mobilenet_v2_x0.35", "micro_speech_tiny_conv"):
        m = by_source[name]
        from_file = model.predict_model(table.ops_of(m["arch"]))
        from_plan = model.predict_model(ops_from_plan(arch_costs(resolve_arch(name)).layers))
        assert abs(from_file - m["total"]) / m["total"] < 0.10, name
        assert abs(from_plan - m["total"]) / m["total"] < 0.12, name


def test_plan_ops_are_the_exported_ops():
    from audio_nas.export import export_random

    for name in ("ds_cnn_s", "micro_speech_tiny_conv"):
        spec = resolve_arch(name)
        plan = ops_from_plan(arch_costs(spec).layers)
        real = ops_from_tflite(export_random(spec))
        assert [o.op for o in plan] == [o.op for o in real]
        for p, r in zip(plan, real, strict=True):
            assert p.in_shape == r.in_shape and p.out_shape == r.out_shape, (p, r)
            assert p.macs == r.macs and p.weight_bytes == r.weight_bytes
            assert kernel_path(p) == kernel_path(r) and design_terms(p) == design_terms(r)


def test_kernel_paths_follow_cmsis_nn_dispatch():
    conv = OpShape("CONV_2D", (1, 10, 10, 8), (1, 10, 10, 16), kernel=(1, 1), macs=12800)
    assert kernel_path(conv) == "conv_1x1"
    assert kernel_path(OpShape("CONV_2D", (1, 10, 10, 8), (1, 5, 5, 16), stride=(2, 2))) == "conv_1x1_strided"
    assert kernel_path(OpShape("CONV_2D", (1, 10, 10, 8), (1, 10, 10, 16), kernel=(3, 3))) == "conv"
    assert (
        kernel_path(OpShape("DEPTHWISE_CONV_2D", (1, 10, 10, 8), (1, 10, 10, 8), kernel=(3, 3))) == "dw_3x3"
    )
    assert kernel_path(OpShape("DEPTHWISE_CONV_2D", (1, 10, 10, 8), (1, 10, 10, 8), kernel=(5, 5))) == "dw"
    # channel tails: a reduction of 9 (not a multiple of 4) leaves 1 scalar MAC per output
    t = design_terms(OpShape("CONV_2D", (1, 4, 4, 9), (1, 4, 4, 2), kernel=(1, 1)))
    assert t["k_tail"] == 16 * 2 * 1 and t["n_tail"] == 0
    with pytest.raises(EnergyModelError, match="no per-op model"):
        OpShape("LSTM", (1,), (1,))


def test_emulated_energy_uses_the_fitted_model_and_the_calibration_point():
    em = make_energy_model("emulated")
    nucleo = load_board("nucleo-l4r5zi")
    ds = em.estimate(resolve_arch("ds_cnn_s"), nucleo)
    assert ds.latency_ms == pytest.approx(181.9, rel=1e-3)  # the one allowed calibration point
    assert ds.energy_uj == pytest.approx(7374, rel=1e-2)
    # a board without a published point: CPI from its core; the emulated board: 1.6 ticks per instruction
    m4 = em.estimate(resolve_arch("ds_cnn_s"), load_board("nano33ble"))
    m0 = em.estimate(resolve_arch("ds_cnn_s"), load_board("pico"))
    assert m0.cycles > m4.cycles
    emu = em.estimate(resolve_arch("ds_cnn_s"), load_board("mps2-an386-cmsis"))
    measured_ticks = 12_312_918  # DS-CNN on the op profiler (datasets/op-counts), whole Invoke
    assert abs(emu.cycles - measured_ticks) / measured_ticks < 0.10


def test_unfitted_kernel_path_names_the_campaign(tmp_path):
    m = OpModel({"fc": {t: 1.0 for t in TERMS["fc"]}}, {"const": 0.0, "per_op": 0.0})
    with pytest.raises(EnergyModelError, match="op-count campaign"):
        m.predict_op(OpShape("ADD", (1, 4), (1, 4), in2_shape=(1, 4)))
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"coefficients": {}, "invoke_overhead": {}, "terms": {"fc": ["const"]}}))
    with pytest.raises(EnergyModelError, match="refit"):
        OpModel.load(bad)
    assert COEFFICIENTS_PATH.exists()


@pytest.mark.tflm
@pytest.mark.qemu
def test_op_profiler_on_qemu_counts_every_op():
    tflm_dir = os.environ.get("TFLM_DIR")
    if not tflm_dir or not (Path(tflm_dir) / "third_party" / "cmsis_nn").is_dir():
        pytest.skip("needs TFLM_DIR pointing at a TFLM tree made with OPTIMIZED_KERNEL_DIR=cmsis_nn")
    from audio_nas.export import export_random
    from audio_nas.firmware_bridge.op_profile import build_profiler, run_profiler

    # incremental between runs (TFLM takes minutes to compile on 2 cores); OP_PROFILER_BUILD_DIR overrides
    build = (
        os.environ.get("OP_PROFILER_BUILD_DIR")
        or Path(__file__).resolve().parents[2] / "build" / "op-profiler"
    )
    elf = build_profiler(tflm_dir, build)
    tflite = export_random(resolve_arch("ds_cnn_s"))
    prof = run_profiler(elf, tflite)
    assert [t for _, t, _ in prof["ops"]] == [o.op for o in ops_from_tflite(tflite)]
    assert abs(prof["invoke_ticks"] - prof["invoke_ticks_repeat"]) <= 1  # deterministic under -icount
    op_sum = sum(t - prof["empty_event_ticks"] for _, _, t in prof["ops"])
    assert 0 < prof["invoke_ticks"] - op_sum < 0.01 * prof["invoke_ticks"]


def test_profile_output_becomes_a_loadable_table(tmp_path):
    """The driver's pieces without QEMU: profiler text -> results.jsonl record -> CSV tables -> OpTable."""
    text = (
        "op_profiler 1\nkernels cmsis-nn\ntflm abc\nmodel_bytes 100\narena_used 2000\n"
        "invoke_ticks 1600 1601\nprofiled_invoke_ticks 1700\nempty_event_ticks 10\nops 2\n"
        "op 0 FULLY_CONNECTED 810\nop 1 SOFTMAX 650\nend\n"
    )
    prof = parse_profile(text)
    assert prof["invoke_ticks"] == 1600 and prof["ops"][1] == (1, "SOFTMAX", 650)
    with pytest.raises(DeviceError, match="incomplete"):
        parse_profile(text.replace("end\n", ""))
    ops = [
        OpShape("FULLY_CONNECTED", (1, 16), (1, 4), weight_shape=(4, 16), macs=64, weight_bytes=80),
        OpShape("SOFTMAX", (1, 4), (1, 4)),
    ]
    rec = {
        "arch": "a1",
        "source": "sampled",
        "spec": "x",
        "model_bytes": 100,
        "profile": prof,
        "op_rows": [op_row("a1", i, o, t, k) for (i, t, k), o in zip(prof["ops"], ops, strict=True)],
    }
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(rec) + "\n")
    paths = write_table(results, tmp_path / "table", {"tflm_revision": "abc"})
    first = [p.read_bytes() for p in paths[:2]]
    write_table(results, tmp_path / "table", {"tflm_revision": "abc"})
    assert [p.read_bytes() for p in paths[:2]] == first  # deterministic gzip
    t = OpTable.load(tmp_path / "table")
    assert t.ops == ops
    assert t.instructions.tolist() == [(810 - 10) * 40 / 64, (650 - 10) * 40 / 64]
    assert t.models[0]["total"] == 1600 * 40 / 64
