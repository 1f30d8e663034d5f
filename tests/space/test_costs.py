from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from audio_nas.space import ArchSpec, arch_costs, build_model, resolve_arch, sample_spec
from audio_nas.space.costs import peak_activation_bytes
from audio_nas.space.plan import LayerCost


def torch_macs(spec) -> int:
    model = build_model(spec).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, *spec.input_shape))
    return counter.get_total_flops() // 2  # conv / linear / bmm: flops = 2 * MACs


def test_params_and_macs_match_torch_on_hundreds_of_random_specs():
    rng = np.random.default_rng(2024)
    for _ in range(200):
        spec = sample_spec(rng)
        c = arch_costs(spec)
        model = build_model(spec)
        assert c.params == sum(p.numel() for p in model.parameters())
        assert c.macs == torch_macs(spec), spec.to_str()


def test_baseline_costs_match_torch_and_published_sizes():
    ds = arch_costs(resolve_arch("ds_cnn_s"))
    assert ds.macs == torch_macs(resolve_arch("ds_cnn_s"))
    # MLPerf Tiny DS-CNN: ~2.7 M MACs, ~23-25 k parameters
    assert 2.5e6 < ds.macs < 2.9e6 and 20_000 < ds.params < 26_000
    mv2 = arch_costs(resolve_arch("mobilenet_v2_x1.0"))
    assert mv2.params > 20 * ds.params


def test_mqa_macs_include_both_matmuls():
    spec = ArchSpec.from_str("fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|mqa_h2_d8_kv2|n12")
    c = arch_costs(spec)
    # 25x20 map, 2 heads -> 1000 query rows; K/V on 13x10 = 130 positions; d = 8; two matmuls
    assert c.macs_by_op["batch_matmul"] == 2 * 1000 * 130 * 8
    assert c.macs == torch_macs(spec)


def test_peak_ram_hand_computed():
    # input 10 -> a (20) -> b (5) -> add(a-held residual) : peak when a and b and input... computed by hand
    layers = [
        LayerCost("a", "conv2d", (1, 10), (1, 20), inputs=(0,), output=1),
        LayerCost("b", "conv2d", (1, 20), (1, 5), inputs=(1,), output=2),
        LayerCost("c", "add", (1, 20), (1, 20), inputs=(1, 2), output=3, extra_in_shapes=((1, 5),)),
    ]
    peak, where = peak_activation_bytes(layers, (1, 10))
    # op a: 10 + 20 = 30; op b: 20 + 5 = 25; op c: 20 + 5 + 20 = 45
    assert (peak, where) == (45, "c")


def test_ace_and_ace_v2():
    c = arch_costs(resolve_arch("ds_cnn_s"))
    assert c.ace == c.macs * 64
    assert c.ace_v2 > c.ace
    c4 = arch_costs(resolve_arch("ds_cnn_s"), weight_bits=4)
    assert c4.ace == c.ace // 2 and c4.flash_bytes < c.flash_bytes


def test_expansion_raises_peak_ram():
    small = ArchSpec.from_str("fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|uib_a0_k3_e1_s1_c16_r1_relu|n12")
    big = ArchSpec.from_str("fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|uib_a0_k3_e6_s1_c16_r1_relu|n12")
    assert arch_costs(big).peak_ram_bytes > arch_costs(small).peak_ram_bytes
    assert arch_costs(big).peak_ram_bytes >= 25 * 20 * 16 * 6 * 2  # expanded tensor in and out of the dw conv
