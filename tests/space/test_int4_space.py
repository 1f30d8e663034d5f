"""The weight-bits gene: grammar, hashes, sampling / mutation / encoding behind SearchSpace's flag, costs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from audio_nas.errors import SpecError
from audio_nas.space import PRESETS, ArchSpec, SearchSpace, arch_costs, build_model, resolve_arch
from audio_nas.space.plan import plan_layers
from audio_nas.space.sampling import (
    DEFAULT_SPACE,
    ENCODING_DIM,
    crossover,
    decode,
    encode,
    encoding_dim,
    mutate,
    sample_spec,
)

MIXED = SearchSpace(weight_bits_choices=(4, 8))


def test_w4_suffix_round_trips_and_8_bits_is_never_written():
    text = (
        "fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|uib_a3_k5_e2_s1_c16_r1_relu_w4|mqa_h2_d8_kv2_w4"
        "|ds_k3_s2_c24_r2_relu_w4|conv_k3_s1_c8_r1_relu|head:c32_relu_w4|n12"
    )
    spec = ArchSpec.from_str(text)
    assert spec.to_str() == text and ArchSpec.from_str(spec.to_str()) == spec
    assert [b.weight_bits for b in spec.blocks] == [4, 4, 4, 8] and spec.head.weight_bits == 4
    assert ArchSpec.from_str(text.replace("_w4", "_w8")).to_str() == text.replace("_w4", "")
    flat = "fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|head:c0_w4_flatten|n12"
    assert ArchSpec.from_str(flat).to_str() == flat and ArchSpec.from_str(flat).head.pool == "flatten"
    with pytest.raises(SpecError, match="weight bits 3"):
        ArchSpec.from_str(text.replace("conv_k3_s1_c8_r1_relu", "conv_k3_s1_c8_r1_relu_w3"))


def test_existing_spec_strings_keep_their_hash():
    # ds_cnn_s's hash before the weight-bits gene existed
    assert resolve_arch("ds_cnn_s").spec_hash == "0752c78fd8b6b0c5"
    for name, text in PRESETS.items():
        assert resolve_arch(name).to_str() == text


def test_layer_bits_follow_the_blocks_in_plan_and_module():
    spec = ArchSpec.from_str(
        "fe:logmel_w30_h20_m40|stem:c1d_k5_s2_c16_relu|uib_a3_k5_e2_s1_c16_r2_relu_w4|mqa_h2_d8_kv2_w4"
        "|ds_k3_s2x1_c24_r1_relu|head:c0_w4|n12"
    )
    plan = plan_layers(spec)
    assert plan == build_model(spec).layer_plan()
    bits = {l.name: l.weight_bits for l in plan if l.op in ("conv2d", "depthwise_conv2d", "fully_connected")}
    assert bits["stem"] == 8 and bits["blocks.0.mid_dw"] == 4 and bits["blocks.1.project"] == 4
    assert bits["blocks.2.query"] == 4 and bits["blocks.3.pw"] == 8 and bits["classifier"] == 4


def test_default_space_is_unchanged_and_samples_no_int4():
    assert DEFAULT_SPACE.weight_bits_choices == (8,) and encoding_dim(DEFAULT_SPACE) == ENCODING_DIM == 61
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = sample_spec(rng)
        assert all(b.weight_bits == 8 for b in s.blocks) and s.head.weight_bits == 8
    spec = sample_spec(rng)
    w4 = dataclasses.replace(spec, head=dataclasses.replace(spec.head, weight_bits=4))
    with pytest.raises(SpecError, match="weight_bits"):  # an int4 spec is outside the default space
        encode(w4, DEFAULT_SPACE)
    assert decode(encode(w4, MIXED), MIXED) == w4


def test_mixed_space_samples_encodes_mutates_and_crosses_bits():
    rng = np.random.default_rng(1)
    assert encoding_dim(MIXED) == ENCODING_DIM + MIXED.max_blocks + 1
    specs = [sample_spec(rng, MIXED) for _ in range(200)]
    share = np.mean([b.weight_bits == 4 for s in specs for b in s.blocks])
    assert 0.35 < share < 0.65 and {s.head.weight_bits for s in specs} == {4, 8}
    for s in specs:
        assert decode(encode(s, MIXED), MIXED) == s
    changed_bits = 0
    for s in specs[:100]:
        child = mutate(s, rng, MIXED)
        assert child != s
        same_shape = [type(b) for b in child.blocks] == [type(b) for b in s.blocks]
        if same_shape and [b.weight_bits for b in child.blocks] != [b.weight_bits for b in s.blocks]:
            changed_bits += 1
    assert changed_bits > 0
    kids = [crossover(a, b, rng, MIXED) for a, b in zip(specs[:50], specs[50:100], strict=True)]
    assert all(decode(encode(k, MIXED), MIXED) == k for k in kids)
    with pytest.raises(SpecError, match="weight_bits_choices"):
        SearchSpace(weight_bits_choices=(2, 8))


def test_costs_of_int4_layers():
    base = resolve_arch("ds_cnn_s")
    w4 = ArchSpec.from_str(base.to_str().replace("r4_relu", "r4_relu_w4"))
    c8, c4 = arch_costs(base), arch_costs(w4)
    blk = [l for l in c4.layers if l.name.startswith("blocks.")]
    blk_weights = sum(l.params - l.out_shape[-1] for l in blk)
    blk_macs = sum(l.macs for l in blk)
    assert c8.flash_bytes - c4.flash_bytes == blk_weights // 2
    assert c8.ace - c4.ace == blk_macs * 4 * 8
    # ACEv2: the same elementwise work plus unpacking every int4 weight on each inference
    assert (c4.ace_v2 - c4.ace) - (c8.ace_v2 - c8.ace) == 2 * 8 * 8 * blk_weights
    assert c4.arena_bytes > c8.arena_bytes  # TFLM unpacks each int4 filter into an int8 scratch buffer
    assert c4.macs == c8.macs and c4.params == c8.params
