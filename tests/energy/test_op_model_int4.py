"""int4 weights in the per-op instruction model: the measured mixed-precision table, the s4 kernel paths and
what the search's costs make of ``_w4`` blocks (issue 15)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from audio_nas.energy import load_board, make_energy_model
from audio_nas.energy.op_model import (
    INT4_TABLE_NAME,
    OpModel,
    OpShape,
    OpTable,
    design_terms,
    kernel_path,
    ops_from_plan,
    ops_from_tflite,
    stored_weight_bits,
    table_paths,
)
from audio_nas.errors import EnergyModelError
from audio_nas.space import PRESETS, ArchSpec, arch_costs

pytestmark = pytest.mark.xdist_group("energy")

MIXED = (
    "fe:logmel_w40_h20_m40|stem:c1d_k3_s1_c8_relu6|uib_a5_k0_e4_s1_c16_r2_relu6"
    "|uib_a3_k5_e3_s2x1_c12_r2_relu6_w4|ds_k3_s1_c20_r1_relu_w4|head:c64_relu_w4|n12"
)


def all_w4(spec: ArchSpec) -> ArchSpec:
    return dataclasses.replace(
        spec,
        blocks=tuple(dataclasses.replace(b, weight_bits=4) for b in spec.blocks),
        head=dataclasses.replace(spec.head, weight_bits=4),
    )


@pytest.fixture(scope="module")
def int4_table() -> OpTable:
    return OpTable.load(name=INT4_TABLE_NAME)


def test_int4_table_is_committed_with_every_s4_kernel(int4_table):
    manifest = json.loads(table_paths(name=INT4_TABLE_NAME)[2].read_text())
    assert manifest["weight_bits"] == "4,8" and manifest["cmsis_nn_revision"]
    sources = {m["source"] for m in int4_table.models}
    assert {"ds_cnn_s_w4", "sampled_w4", "misaligned_w4", "conv_w4"} <= sources
    paths = {kernel_path(o) for o in int4_table.ops}
    assert {"conv_1x1_s4", "conv_1x1_strided_s4", "conv_s4", "dw_s4", "fc_s4"} <= paths
    assert all(any(o.weight_bits == 4 for o in int4_table.ops_of(m["arch"])) for m in int4_table.models)
    s4 = {p: c for p, c in OpModel.load().coefficients.items() if p.endswith("_s4")}
    assert len(s4) == 5 and all(v >= 0 for c in s4.values() for v in c.values())


def test_s4_kernel_paths_and_stored_bits():
    dw = OpShape("DEPTHWISE_CONV_2D", (1, 10, 10, 8), (1, 10, 10, 8), kernel=(3, 3), weight_bits=4)
    assert kernel_path(dw) == "dw_s4"  # no 3x3 special case for int4 in CMSIS-NN
    assert kernel_path(OpShape("FULLY_CONNECTED", (1, 16), (1, 4), weight_bits=4)) == "fc_s4"
    conv = OpShape("CONV_2D", (1, 4, 4, 9), (1, 4, 4, 3), kernel=(1, 1), weight_bits=4)
    t = design_terms(conv)
    assert t["k_odd"] == 16 * 3 * 1 and t["n_tail4"] == 16 * 9 * 3
    with pytest.raises(EnergyModelError, match="int4 weights exist for"):
        OpShape("ADD", (1, 4), (1, 4), weight_bits=4)
    # an int8 FC of 12x64 stores 768 + 48 bytes; packed int4 384 + 48
    assert stored_weight_bits("FULLY_CONNECTED", (12, 64), 816) == 8
    assert stored_weight_bits("FULLY_CONNECTED", (12, 64), 432) == 4
    assert stored_weight_bits("DEPTHWISE_CONV_2D", (1, 3, 3, 65), 33 * 9 + 4 * 65) == 4


def test_plan_ops_of_a_mixed_spec_are_the_exported_ops():
    from audio_nas.export import export_random

    spec = ArchSpec.from_str(MIXED)
    plan = ops_from_plan(arch_costs(spec).layers)
    real = ops_from_tflite(export_random(spec))
    assert any(o.weight_bits == 4 for o in real)
    for p, r in zip(plan, real, strict=True):
        assert (p.op, p.weight_bits, p.weight_bytes, p.macs) == (r.op, r.weight_bits, r.weight_bytes, r.macs)
        assert kernel_path(p) == kernel_path(r) and design_terms(p) == design_terms(r)


def test_int4_presets_are_predicted_from_the_plan(int4_table):
    model = OpModel.load()
    by_source = {m["source"]: m for m in int4_table.models}
    for name in ("ds_cnn_s", "mobilenet_v1_x0.25"):
        m = by_source[f"{name}_w4"]
        plan = ops_from_plan(arch_costs(all_w4(ArchSpec.from_str(PRESETS[name]))).layers)
        assert abs(model.predict_model(plan) - m["total"]) / m["total"] < 0.05, name


def test_w4_blocks_cost_less_flash_but_more_time_on_a_cortex_m4():
    """Measured: CMSIS-NN's s4 kernels unpack the weights in the inner loop (~2x int8's instructions per
    MAC on a DSP Cortex-M without MVE), so int4 saves flash and costs latency and energy."""
    spec = ArchSpec.from_str(PRESETS["ds_cnn_s"])
    w4 = all_w4(spec)
    em = make_energy_model("emulated")
    for board in ("nucleo-l4r5zi", "mps2-an386-cmsis"):
        b = load_board(board)
        e8, e4 = em.estimate(spec, b), em.estimate(w4, b)
        assert e4.energy_uj > 1.3 * e8.energy_uj, board
    assert arch_costs(w4).flash_bytes < 0.8 * arch_costs(spec).flash_bytes
    # measured on the emulated M4 (datasets/op-counts): 7.70 M int8 vs 13.54 M instructions all-int4
    emu = em.estimate(w4, load_board("mps2-an386-cmsis"))
    assert abs(emu.cycles / 1.6 - 13.54e6) / 13.54e6 < 0.05
