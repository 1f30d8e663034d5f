"""Benchmark section of the per-op instruction model (audio_nas/energy/op_model.py): held-out errors by
architecture computed from the committed measured table (datasets/op-counts), per-kernel-path errors, and the
board calibration. Part of ``audio-nas bench energy``; needs no TFLM (the table is test data)."""

from __future__ import annotations

import json

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.energy import load_board, make_energy_model
from audio_nas.energy.op_model import (
    OpModel,
    OpTable,
    board_timing,
    extrapolation_evaluation,
    heldout_evaluation,
    ops_from_plan,
    table_paths,
)
from audio_nas.space import arch_costs, resolve_arch

FOLDS, SEED = 5, 0


def _pct(q: dict) -> list[str]:
    return [
        f"{q['median']:.2f}%",
        f"{q['q25']:.2f}-{q['q75']:.2f}%",
        f"{q['mean']:.2f}%",
        f"{q['p90']:.2f}%",
    ] + [f"{q['max']:.1f}%"]


def op_model_section() -> str:
    table = OpTable.load()
    manifest = json.loads(table_paths()[2].read_text())
    res = heldout_evaluation(table, folds=FOLDS, seed=SEED, plan_specs=True)
    by_source: dict[str, list[float]] = {}
    for r in res["per_arch"]:
        group = r["source"] if r["source"] in ("sampled", "misaligned") else "presets"
        by_source.setdefault(group, []).append(r["ape"])
    rows = [
        ["all, ops from the .tflite", len(res["per_arch"]), *_pct(res["model_ape"])],
        [
            "all, ops from the spec's layer plan (what the search uses)",
            len(res["per_arch"]),
            *_pct(res["model_ape_plan"]),
        ],
    ]
    for g in ("sampled", "misaligned", "presets"):
        if g in by_source:
            v = np.array(by_source[g])
            q = {
                "median": np.median(v),
                "q25": np.percentile(v, 25),
                "q75": np.percentile(v, 75),
                "mean": v.mean(),
                "p90": np.percentile(v, 90),
                "max": v.max(),
            }
            rows.append([f"{g} (from the .tflite)", len(v), *_pct(q)])
    path_rows = [
        [
            p,
            v["n"],
            f"{100 * v['share_of_instructions']:.1f}%",
            f"{v['median_ape']:.2f}%",
            f"{v['weighted_ape']:.2f}%",
        ]
        for p, v in res["per_kernel_path"].items()
    ]
    ext = extrapolation_evaluation(table, 0.2)
    model = OpModel.load()
    ds = resolve_arch("ds_cnn_s")
    ds_ops = ops_from_plan(arch_costs(ds).layers)
    ds_meas = next(m["total"] for m in table.models if m["source"] == "ds_cnn_s")
    cal = model.boards["nucleo-l4r5zi"]
    em = make_energy_model("emulated")
    board_rows = []
    for name in ("nucleo-l4r5zi", "nano33ble", "pico", "mps2-an386-cmsis"):
        b = load_board(name)
        t = board_timing(b, model)
        e = em.estimate(ds, b)
        board_rows.append(
            [
                name,
                b.kernels,
                f"{t.cpi:.3f}",
                f"{t.flash_cycles_per_byte:.3f}",
                f"{e.latency_ms:.1f}",
                f"{e.energy_uj:.0f}",
                t.basis,
            ]
        )
    return (
        f"Per-op instruction model (`audio_nas/energy/op_model.py`), fitted by non-negative least squares "
        f"per CMSIS-NN kernel path on {res['ops']:,} ops of {res['archs']} architectures measured on QEMU "
        f"mps2-an386 "
        f"(TFLM `{manifest['tflm_revision'][:12]}` + CMSIS-NN `{manifest['cmsis_nn_revision'][:12]}`, "
        f"{manifest['compiler']}, {manifest['qemu']}; MicroProfiler Begin/EndEvent around every op's Invoke, "
        f"CMSDK timer under `-icount shift=6`; measured {manifest['date']} with `{manifest['command']}`). "
        f"The table is committed test data (`datasets/op-counts/`); these figures are computed from it.\n\n"
        f"Held-out error of a whole Invoke, {FOLDS}-fold split by ARCHITECTURE (seed {SEED}; every op of a "
        f"held-out model is unseen by the fit), absolute percentage error per architecture:\n\n"
        + markdown_table(["held-out architectures", "n", "median", "IQR", "mean", "90th pct", "max"], rows)
        + f"\n\nExtrapolation to bigger models: fitted on the {ext['train']} architectures with the smallest "
        f"measured totals (up to {ext['train_max_instructions'] / 1e6:.1f} M instructions), the "
        f"{ext['test']} "
        f"largest ({ext['test_min_instructions'] / 1e6:.1f}-{ext['test_max_instructions'] / 1e6:.0f} M) are "
        f"predicted with median {ext['model_ape']['median']:.2f}% (90th pct {ext['model_ape']['p90']:.2f}%, "
        f"max {ext['model_ape']['max']:.1f}%).\n\n"
        "The plan rows equal the .tflite rows because the spec's layer plan, lowered as the exporter "
        "lowers it (`op_model.ops_from_plan`), gives exactly the exported op list for all of them. The "
        "same table also scores the random forest and the hand-set cycle model on the same folds "
        "(section above).\n\n"
        "Per kernel path (held-out ops; weighted = sum |error| / sum measured; share = of all measured "
        "instructions). SOFTMAX and HARD_SWISH costs depend on the data (CMSIS-NN's softmax skips the exp of "
        "entries below `diff_min`; TFLM's hard-swish branches per element), which no shape term sees; the "
        "inputs here are one fixed pseudo-random tensor through random weights.\n\n"
        + markdown_table(["kernel path", "ops", "share", "median APE", "weighted APE"], path_rows)
        + "\n\nCalibration (the one allowed point: MLPerf Tiny v0.5 reference, KWS DS-CNN on the "
        f"Nucleo-L4R5ZI, 181.9 ms / 7,374 µJ, TFLM v2.3.1 + 2020 CMSIS-NN). DS-CNN retires "
        f"{ds_meas / 1e6:.3f} M instructions "
        f"with today's kernels on the emulated M4 (model: {model.predict_model(ds_ops) / 1e6:.3f} M); "
        f"cycles = CPI x instructions + 5/16 x {cal['ds_cnn_weight_bytes']:,} weight bytes (5 flash wait "
        f"states per 16-byte line at 120 MHz) gives an effective CPI of {cal['cpi']:.2f}: far above an M4's "
        f"~1.25, because it also carries the 2020 software's extra instructions (today's kernels were not "
        f"measured on that board), so it holds only for that stack (`kernels: tflm-reference`). The point's "
        f"power is {cal['active_power_mw']:.2f} mW (7,374 / 181.9); the board profile's 40.8 mW puts DS-CNN "
        f"at 7,422 µJ (+0.6%). Boards with no published point take the core's assumed CPI "
        f"(`CORE_CPI`); the emulated board's CPI is 1.6 by construction (25 MHz ticks per instruction).\n\n"
        + markdown_table(
            ["board", "kernels", "CPI", "flash cycles/B", "DS-CNN ms", "DS-CNN µJ", "basis"], board_rows
        )
    )


def run_bench(quick: bool = False) -> None:
    write_section(
        "energy-op-model",
        "Energy: per-op instruction model fitted on measured TFLM + CMSIS-NN counts",
        "audio-nas bench energy" + (" --quick" if quick else ""),
        op_model_section(),
    )
