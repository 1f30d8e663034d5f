"""The fronts benchmark's summary (audio_nas/bench/quant_fronts.py) on hand-made trial rows: hypervolumes,
best accuracy at equal cost, int8 twins of int4 specs."""

from __future__ import annotations

from audio_nas.bench.quant_fronts import has_w4, int8_twin, summarise

W4 = "fe:mfcc_w40_h20_m40_c10|stem:c2d_k10x4_s2_c64_relu|ds_k3_s1_c64_r4_relu_w4|head:c0_w4|n12"


def row(acc, energy_uj, ram, flash, w4=False):
    return {
        "spec": "x",
        "acc": acc,
        "test_acc": acc - 0.01,
        "energy_uj": energy_uj,
        "ram_bytes": ram,
        "flash_bytes": flash,
        "w4": w4,
    }


def test_summary_ranks_by_cost_budgets_and_counts_int4():
    rows = [
        row(0.5, 300, 60_000, 20_000),
        row(0.7, 900, 70_000, 45_000, w4=True),
        row(0.4, 250, 80_000, 9_000),
    ]
    s = summarise(rows)
    assert s["n_complete"] == 3 and s["w4_trials"] == 1 and s["hv"] > 0 and s["hv_flash"] > 0
    assert len(s["front"]) == 3 and s["front_w4"] == 1  # each is best in one objective
    assert s["at_flash"][10_000] == (0.4, 0.4 - 0.01)
    assert s["at_flash"][60_000][0] == 0.7 and s["at_energy"][200.0] is None
    assert s["at_energy"][400.0][0] == 0.5


def test_int8_twin_drops_every_w4_and_keeps_the_rest():
    twin = int8_twin(W4)
    assert has_w4(W4) and not has_w4(twin)
    assert twin == W4.replace("_relu_w4|", "_relu|").replace("head:c0_w4", "head:c0")
