from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from audio_nas.errors import SpecError
from audio_nas.space import (
    ENCODING_DIM,
    PRESETS,
    ArchSpec,
    arch_costs,
    build_model,
    crossover,
    decode,
    encode,
    mutate,
    resolve_arch,
    sample_spec,
)


def test_string_round_trip_over_thousands_of_samples():
    rng = np.random.default_rng(123)
    seen = set()
    for _ in range(3000):
        s = sample_spec(rng)
        text = s.to_str()
        assert ArchSpec.from_str(text) == s
        assert ArchSpec.from_str(text).spec_hash == s.spec_hash
        seen.add(text)
    assert len(seen) > 2900  # the space is large: samples rarely repeat


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=ENCODING_DIM, max_size=ENCODING_DIM))
def test_any_vector_decodes_to_a_valid_canonical_spec(values):
    spec = decode(np.array(values))
    assert decode(encode(spec)) == spec
    assert ArchSpec.from_str(spec.to_str()) == spec


def test_presets_round_trip_and_build():
    for name, text in PRESETS.items():
        spec = resolve_arch(name)
        assert spec.to_str() == text
        y = build_model(spec).eval()(torch.randn(2, *spec.input_shape))
        assert y.shape == (2, spec.n_classes)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty spec"),
        ("fe:logmel_w30_h20_m40|uib_a3_k3_e2_s1_c16_r1_relu|n12", "no stem"),
        ("stem:c2d_k3_s2_c16_relu|foo_k3|n12", "unknown block 'foo'"),
        ("stem:c2d_k3_s2_c16_relu|uib_a3_k3_e2_s1_c16_r1_gelu|n12", "unknown field 'gelu'"),
        ("stem:c2d_k3_s2_c16_relu|uib_a4_k3_e2_s1_c16|n12", "start_k"),
        ("stem:c2d_k3_s2_c16_relu|uib_a0_k0_e2_s2_c16|n12", "FFN"),
        ("stem:c2d_k3_s2_c16_relu|uib_a3_k3_e2_s3_c16|n12", "stride"),
        ("stem:c2d_k3_s2_c16_relu|ds_k3_s1_c16_rx|n12", "'r'"),
        ("stem:c2d_kq_s2_c16_relu|n12", "unknown field .kq."),
        ("stem:c2d_k3x_s2_c16_relu|n12", "stem kernel"),
        ("stem:c3d_k3_s2_c16_relu|n12", "stem kind"),
        ("fe:wavelet_w30_h20_m40|stem:c2d_k3_s2_c16_relu|n12", "front-end kind"),
        ("fe:logmel_w30_h40_m40|stem:c2d_k3_s2_c16_relu|n12", "hop_ms"),
        ("fe:logmel_w30_h20_m40|stem:c2d_k60_s2_c16_relu|n12", "larger than the input"),
        ("stem:c1d_k5_s2_c16_relu|ds_k3_s2_c16_r1_relu|n12", "time only"),
        ("stem:c2d_k3_s2_c16_relu|mqa_h2_d16_kv3|n12", "kv_stride"),
        ("stem:c2d_k3_s2_c16_relu|n1", "n_classes"),
    ],
)
def test_bad_spec_strings_name_the_field(text, fragment):
    with pytest.raises(SpecError, match=fragment):
        ArchSpec.from_str(text)


def test_stride_collapse_is_detected_with_the_block_named():
    # 49x10 MFCC -> stem s2 -> 25x5 -> four stride-2 blocks collapse the frequency axis (5->3->2->1->x)
    text = "fe:mfcc_w40_h20_m40_c10|stem:c2d_k3_s2_c8_relu|" + "|".join(["ds_k3_s2_c8_r1_relu"] * 4) + "|n12"
    with pytest.raises(SpecError, match=r"blocks\[3\].*collapses"):
        ArchSpec.from_str(text)


def test_unknown_preset_lists_presets():
    with pytest.raises(SpecError, match="ds_cnn_s"):
        resolve_arch("resnet50")


def test_uib_variants_build_and_are_named():
    base = "fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|{}|head:c0|n12"
    for a, k, name in [(3, 3, "ExtraDW"), (0, 3, "IB"), (3, 0, "ConvNext"), (0, 0, "FFN")]:
        s = 1 if name == "FFN" else 2
        spec = ArchSpec.from_str(base.format(f"uib_a{a}_k{k}_e2_s{s}_c16_r2_hswish"))
        assert spec.blocks[0].variant == name
        assert build_model(spec)(torch.randn(1, 49, 40)).shape == (1, 12)


def test_one_d_stem_treats_bins_as_channels():
    spec = ArchSpec.from_str(
        "fe:logmel_w30_h20_m40|stem:c1d_k5_s2_c32_relu|ds_k3_s2x1_c32_r1_relu|mqa_h2_d8_kv2|n12"
    )
    model = build_model(spec)
    assert model.stem.conv.in_channels == 40 and model.stem.conv.kernel_size == (5, 1)
    assert model(torch.randn(3, 49, 40)).shape == (3, 12)
    plan = model.layer_plan()
    assert plan[0].op == "reshape" and plan[0].out_shape == (1, 49, 1, 40)


def test_tflite_same_padding_output_sizes():
    # TFLite SAME: out = ceil(in / stride) on every axis, whatever the kernel
    spec = ArchSpec.from_str("fe:logmel_w30_h20_m40|stem:c2d_k10x4_s2_c8_relu|uib_a5_k3_e2_s2_c8_r1_relu|n12")
    model = build_model(spec)
    x = model.stem(model.to_nchw(torch.randn(1, 49, 40)))
    assert tuple(x.shape[2:]) == (25, 20)
    assert tuple(model.blocks[0](x).shape[2:]) == (13, 10)


def test_mutate_and_crossover_are_valid_different_and_seeded():
    rng = np.random.default_rng(5)
    a, b = sample_spec(rng), sample_spec(rng)
    kids = [mutate(a, np.random.default_rng(i)) for i in range(50)]
    assert all(k != a for k in kids)
    assert len({k.to_str() for k in kids}) > 20
    assert mutate(a, np.random.default_rng(7)) == mutate(a, np.random.default_rng(7))
    for i in range(50):
        c = crossover(a, b, np.random.default_rng(i))
        ea, eb, ec = encode(a), encode(b), encode(c)
        # every coordinate of the child comes from one of the parents (or a repair)
        assert np.mean((ec == ea) | (ec == eb)) > 0.9


def test_sampling_is_deterministic_per_seed():
    s1 = [sample_spec(np.random.default_rng(9)).to_str() for _ in range(3)]
    assert len(set(s1)) == 1
    assert sample_spec(np.random.default_rng(10)) != sample_spec(np.random.default_rng(9))


def test_presets_are_outside_the_encoded_space_with_a_clear_error():
    with pytest.raises(SpecError, match="outside the search space"):
        encode(resolve_arch("mobilenet_v2_x0.35"))


def test_sampled_models_are_mcu_sized():
    rng = np.random.default_rng(0)
    params = [arch_costs(sample_spec(rng)).params for _ in range(200)]
    assert 3_000 < np.median(params) < 150_000
