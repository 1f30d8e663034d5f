"""Space-level checks of the layer plan from a spec and of the TFLM arena model (no TFLM needed here;
tests/export/test_arena_exact.py compares with the interpreter)."""

from __future__ import annotations

import numpy as np
import pytest

from audio_nas.space import PRESETS, ArchSpec, arch_costs, build_model, resolve_arch, sample_spec
from audio_nas.space.plan import plan_layers
from audio_nas.space.tflm_arena import (
    CORTEX_M_LAYOUT,
    HOST_LAYOUT,
    buffer_lifetimes,
    greedy_plan,
    tflite_graph,
    tflm_arena,
)

HAND_SPECS = (
    "fe:pcen_w30_h20_m40|stem:c2d_k3_s2_c16_relu|conv_k3_s2_c24_r2_relu6|head:c0_flatten|n12",
    "fe:logmel_w30_h20_m40|stem:c1d_k5_s2_c24_hswish|uib_a3_k5_e2_s1_c24_r2_hswish|uib_a0_k0_e2_s1_c32_r1_relu"
    "|mqa_h2_d8_kv2|head:c32_relu|n10",
    "fe:mfcc_w40_h20_m40_c10|stem:c2d_k3_s1_c8_relu|uib_a5_k0_e3_s2_c16_r1_relu|mqa_h1_d16_kv1|n12",
)


def test_plan_from_the_spec_equals_the_built_modules_plan():
    rng = np.random.default_rng(7)
    specs = [resolve_arch(p) for p in PRESETS] + [ArchSpec.from_str(s) for s in HAND_SPECS]
    specs += [sample_spec(rng) for _ in range(60)]
    for spec in specs:
        assert plan_layers(spec) == build_model(spec).layer_plan(), spec.to_str()


def test_costs_build_no_torch_module(monkeypatch):
    import audio_nas.space.builder as builder

    monkeypatch.setattr(builder, "AudioNet", None)  # arch_costs would fail if it built one
    c = arch_costs(resolve_arch("ds_cnn_s"))
    assert c.macs > 0 and c.arena_bytes > c.peak_ram_bytes


def test_greedy_planner_by_hand():
    # sizes 32, 16, 48; a lives 0-1, b 1-2, c 2-3. Largest first: c at 0; a does not overlap c -> 0;
    # b overlaps a (at 0..32) and c (at 0..48) -> 48
    head, offsets = greedy_plan([(32, 0, 1), (16, 1, 2), (48, 2, 3)])
    assert offsets == [0, 48, 0] and head == 64
    # equal sizes: the later buffer is placed first
    head, offsets = greedy_plan([(16, 0, 1), (16, 0, 1)])
    assert offsets == [16, 0] and head == 32


def test_lifetimes_follow_op_order_and_keep_the_output_to_the_end():
    g = tflite_graph(resolve_arch("ds_cnn_s"))
    life = buffer_lifetimes(g)
    assert life[0][1:] == (0, 1)  # the input: read by op 1 only
    assert life[-1][1:] == (len(g.ops), len(g.ops))  # the logits
    assert all(size % 16 == 0 for size, _, _ in life)


def test_board_layout_is_the_32_bit_build():
    spec = resolve_arch("ds_cnn_s")
    board, host = tflm_arena(spec, pointer_bytes=4), tflm_arena(spec, pointer_bytes=8)
    assert board.head_bytes == host.head_bytes  # the plan does not depend on the build
    assert board.tail_bytes < host.tail_bytes  # 4-byte pointers, smaller structs
    assert CORTEX_M_LAYOUT.pointer_bytes == 4 and HOST_LAYOUT.pointer_bytes == 8
    assert arch_costs(spec).arena_bytes == board.arena_bytes and arch_costs(spec).arena_pointer_bytes == 4
    with pytest.raises(ValueError, match="pointer_bytes"):
        arch_costs(spec, pointer_bytes=2)


# arena_used_bytes() of TFLM (the pinned source, reference kernels, the firmware's arm-none-eabi flags) after
# AllocateTensors on the emulated Cortex-M4 (QEMU mps2-an386, firmware/tools/op_profiler), for models exported
# with export_random; `AUDIO_NAS_ARENA_ELF=... audio-nas bench arena` re-measures them
CORTEX_M4_ARENA_USED = {
    "ds_cnn_s": 22756,
    "micro_speech_tiny_conv": 8804,
    HAND_SPECS[0]: 12692,
    HAND_SPECS[1]: 13172,
    HAND_SPECS[2]: 41060,
    "fe:mfcc_w40_h20_m40_c10|stem:c1d_k5_s2_c48_hswish|uib_a3_k0_e2_s1_c48_r1_relu6|mqa_h2_d32_kv2"
    "|ds_k5_s1_c12_r2_relu6|uib_a3_k0_e4_s1_c16_r3_relu6|ds_k5_s2x1_c32_r3_hswish|head:c64_relu|n12": 22020,
}


@pytest.mark.parametrize("arch", list(CORTEX_M4_ARENA_USED))
def test_cortex_m_layout_matches_tflm_measured_on_the_emulated_cortex_m4(arch):
    a = tflm_arena(resolve_arch(arch), pointer_bytes=4)
    assert a.used_bytes == CORTEX_M4_ARENA_USED[arch]
    assert a.arena_bytes == -(-a.used_bytes // 16) * 16
