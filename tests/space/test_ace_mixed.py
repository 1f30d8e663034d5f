"""ACE and ACEv2 of mixed-precision specs (issue 15): every layer at its own weight bit-width, the elementwise
work (requantisation, activations, residual rescales) and the int4 unpacking counted once each."""

from __future__ import annotations

from audio_nas.space import ArchSpec, arch_costs
from audio_nas.space.costs import ELEMENTWISE_BITOPS, INT4_UNPACK_BITOPS_PER_WEIGHT, WEIGHT_OPS
from audio_nas.space.plan import MAC_OPS

MIXED = (
    "fe:logmel_w40_h20_m40|stem:c1d_k3_s1_c8_relu6|uib_a5_k0_e4_s1_c16_r2_relu6"
    "|uib_a3_k5_e3_s2x1_c12_r2_hswish_w4|mqa_h2_d16_kv1|ds_k3_s1_c20_r1_relu_w4|head:c64_relu_w4|n12"
)


def test_ace_and_ace_v2_follow_each_layers_bits():
    c = arch_costs(ArchSpec.from_str(MIXED))
    bits = {layer.name: (layer.weight_bits if layer.op in WEIGHT_OPS else 8) for layer in c.layers}
    assert 4 in bits.values() and 8 in bits.values()
    ace = sum(layer.macs * bits[layer.name] * 8 for layer in c.layers if layer.op in MAC_OPS)
    assert c.ace == ace
    elementwise = sum(layer.elementwise_ops for layer in c.layers)
    unpacked = sum(
        layer.params - layer.out_shape[-1]
        for layer in c.layers
        if layer.op in WEIGHT_OPS and bits[layer.name] == 4
    )
    assert c.ace_v2 == ace + ELEMENTWISE_BITOPS * elementwise + INT4_UNPACK_BITOPS_PER_WEIGHT * unpacked
    # activations and requantisation are in the elementwise work (hard-swish layers and every MAC op)
    assert any(layer.op == "hard_swish" and layer.elementwise_ops > 0 for layer in c.layers)


def test_int4_lowers_ace_by_half_its_macs_share_and_adds_unpacking_to_ace_v2():
    w8 = ArchSpec.from_str(MIXED.replace("_w4|", "|"))
    c8, c4 = arch_costs(w8), arch_costs(ArchSpec.from_str(MIXED))
    w4_macs = sum(layer.macs for layer in c4.layers if layer.op in WEIGHT_OPS and layer.weight_bits == 4)
    assert c8.ace - c4.ace == w4_macs * 4 * 8
    assert c8.ace_v2 - c4.ace_v2 < c8.ace - c4.ace  # the unpacking gives part of it back
    assert c4.ace_v2 < c8.ace_v2
