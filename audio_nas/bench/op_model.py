"""Benchmark section of the per-op instruction model (audio_nas/energy/op_model.py): held-out errors by
architecture computed from the committed measured table (datasets/op-counts), per-kernel-path errors, and the
board calibration. Part of ``audio-nas bench energy``; needs no TFLM (the table is test data)."""

from __future__ import annotations

import json

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.energy import load_board, make_energy_model
from audio_nas.energy.op_model import (
    INT4_TABLE_NAME,
    OpModel,
    OpTable,
    board_timing,
    extrapolation_evaluation,
    heldout_evaluation,
    ops_from_plan,
    read_csv_gz,
    table_paths,
)
from audio_nas.space import PRESETS, ArchSpec, arch_costs, resolve_arch

FOLDS, SEED = 5, 0


def _pct(q: dict) -> list[str]:
    return [
        f"{q['median']:.2f}%",
        f"{q['q25']:.2f}-{q['q75']:.2f}%",
        f"{q['mean']:.2f}%",
        f"{q['p90']:.2f}%",
    ] + [f"{q['max']:.1f}%"]


def op_model_section() -> str:
    table = OpTable.load_all()
    manifest = json.loads(table_paths()[2].read_text())
    res = heldout_evaluation(table, folds=FOLDS, seed=SEED, plan_specs=True)
    by_source: dict[str, list[float]] = {}
    for r in res["per_arch"]:
        group = r["source"] if r["source"] in ("sampled", "misaligned") else "presets"
        if r["source"].endswith("_w4"):
            group = "with int4 layers (int4 table)"
        by_source.setdefault(group, []).append(r["ape"])
    rows = [
        ["all, ops from the .tflite", len(res["per_arch"]), *_pct(res["model_ape"])],
        [
            "all, ops from the spec's layer plan (what the search uses)",
            len(res["per_arch"]),
            *_pct(res["model_ape_plan"]),
        ],
    ]
    for g in ("sampled", "misaligned", "presets", "with int4 layers (int4 table)"):
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
        f"The table is committed test data (`datasets/op-counts/`, with the int4 table of the next section: "
        f"the model is fitted on both); these figures are computed from it.\n\n"
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


S4_OF = {"conv_1x1": "conv_1x1_s4", "conv": "conv_s4", "dw": "dw_s4", "dw_3x3": "dw_s4", "fc": "fc_s4"}


def int4_section() -> str:
    """int4 weights on the emulated M4: the s4 kernels' coefficients against int8's, whole-model counts of the
    presets at int8 and at int4, what the costs make of it, and the CMSIS-NN arena against the spec's."""
    manifest = json.loads(table_paths(name=INT4_TABLE_NAME)[2].read_text())
    t8, t4 = OpTable.load(), OpTable.load(name=INT4_TABLE_NAME)
    res = heldout_evaluation(OpTable.concat([t8, t4]), folds=FOLDS, seed=SEED, plan_specs=False)
    model = OpModel.load()
    coef_rows = []
    for p8, p4 in S4_OF.items():
        c8, c4 = model.coefficients.get(p8, {}), model.coefficients.get(p4, {})
        coef_rows.append(
            [
                f"{p8} -> {p4}",
                f"{c8.get('macs', 0):.2f}",
                f"{c4.get('macs', 0):.2f}",
                f"{c4.get('macs', 0) / c8['macs']:.2f}x" if c8.get("macs") else "-",
                f"{c8.get('const', 0):.0f} / {c4.get('const', 0):.0f}",
            ]
        )
    q4 = res["model_ape_by_table"][INT4_TABLE_NAME]
    q8 = res["model_ape_by_table"]["cmsis-nn-m4"]
    em = make_energy_model("emulated")
    nucleo = load_board("nucleo-l4r5zi")
    by8 = {m["source"]: m for m in t8.models}
    by4 = {m["source"]: m for m in t4.models}
    models8 = {r["arch"]: r for r in read_csv_gz(table_paths()[1])}
    models4 = {r["arch"]: r for r in read_csv_gz(table_paths(name=INT4_TABLE_NAME)[1])}
    preset_rows, arena_dev = [], []
    for name in PRESETS:
        if name not in by8 or f"{name}_w4" not in by4:
            continue
        m8, m4 = by8[name], by4[f"{name}_w4"]
        s8, s4 = ArchSpec.from_str(m8["spec"]), ArchSpec.from_str(m4["spec"])
        e8, e4 = em.estimate(s8, nucleo), em.estimate(s4, nucleo)
        preset_rows.append(
            [
                name,
                f"{m8['total'] / 1e6:.2f}",
                f"{m4['total'] / 1e6:.2f}",
                f"{m4['total'] / m8['total']:.2f}x",
                models8[m8["arch"]]["model_bytes"],
                models4[m4["arch"]]["model_bytes"],
                f"{e8.energy_uj:.0f} / {e4.energy_uj:.0f}",
            ]
        )
    for r in models4.values():
        spec_arena = arch_costs(ArchSpec.from_str(r["spec"])).arena_bytes
        arena_dev.append((spec_arena - int(r["arena_used"])) / int(r["arena_used"]) * 100)
    arena_dev8 = [
        (arch_costs(ArchSpec.from_str(r["spec"])).arena_bytes - int(r["arena_used"]))
        / int(r["arena_used"])
        * 100
        for r in models8.values()
    ]
    a4, a8 = np.array(arena_dev), np.array(arena_dev8)
    return (
        f"{len(t4.models)} architectures with int4 weights (`_w4` blocks/head) measured on the emulated "
        f"Cortex-M4 like the int8 table (same TFLM `{manifest['tflm_revision'][:12]}` + CMSIS-NN "
        f"`{manifest['cmsis_nn_revision'][:12]}` tree and op profiler image; {manifest['date']}; "
        f"`{manifest['command']}`): the presets with every block and the head at int4, samples of the 4/8 "
        "space (each block and the head draw 4 or 8; at least one int4 layer; at most 8 M MACs), samples "
        "with channels off multiples of 4, and small networks of int4 `conv` blocks (the sampled space has "
        "no full conv at int4: its only full conv, the stem, stays int8). The profiler image runs them "
        "unchanged: TFLM's CMSIS-NN CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED dispatch INT4 filters to "
        "arm_convolve_wrapper_s4 (1x1: arm_convolve_1x1_s4_fast / arm_convolve_1x1_s4, else "
        "arm_convolve_s4; no MVE on the M4), arm_depthwise_conv_wrapper_s4 (arm_depthwise_conv_s4_opt "
        "for every kernel size) and arm_fully_connected_s4, which read the packed weights and unpack each "
        "pair inside the inner loop.\n\n"
        f"The op model gains one kernel path per s4 kernel, fitted together with the int8 paths on both "
        f"tables (NNLS, same terms plus the s4 kernels' remainders: odd reduction length, output channels "
        f"beyond a multiple of 4, odd depthwise channel count). Held-out by architecture ({FOLDS} folds over "
        f"both tables, seed {SEED}): architectures with int4 layers median {q4['median']:.2f}%, 90th pct "
        f"{q4['p90']:.2f}%, max {q4['max']:.1f}% ({q4['archs']} architectures); int8 ones median "
        f"{q8['median']:.2f}%, 90th pct {q8['p90']:.2f}%, max {q8['max']:.1f}% ({q8['archs']}).\n\n"
        "Instructions per MAC (the fitted `macs` coefficient) and fixed cost per op, int8 against int4:\n\n"
        + markdown_table(["kernel path", "int8 /MAC", "int4 /MAC", "ratio", "const int8 / int4"], coef_rows)
        + "\n\nWhole models, measured (instructions per Invoke on the emulated M4; model bytes of the "
        ".tflite; energy on the Nucleo-L4R5ZI from the fitted model, calibrated CPI and flash wait states "
        "for the packed bytes):\n\n"
        + markdown_table(
            ["preset", "int8 M instr", "int4 M instr", "int4/int8", "int8 B", "int4 B", "µJ int8 / int4"],
            preset_rows,
        )
        + "\n\nOn this core and CMSIS-NN revision int4 weights halve the weight bytes (flash) but cost about "
        "twice the instructions per MAC, so latency and energy rise: 4-bit weights trade flash for energy "
        "here; they do not save energy. The search's costs of a `_w4` block use these coefficients "
        "(`op_model.ops_from_plan` carries each layer's weight bits and packed bytes).\n\n"
        "Arena (not changed here, `space/tflm_arena.py`): the spec-level arena models TFLM's reference "
        "kernels (equal to the host interpreter), which unpack int4 filters into an int8 scratch buffer; "
        "the CMSIS-NN s4 kernels do not. Against the CMSIS-NN image's `arena_used()` on the emulated M4 the "
        f"spec arena is off by median {np.median(a8):+.1f}% (range {a8.min():+.0f}% to {a8.max():+.0f}%) "
        f"on the {len(a8)} int8 architectures and by median {np.median(a4):+.1f}% (range {a4.min():+.0f}% "
        f"to {a4.max():+.0f}%) on the {len(a4)} int4 ones: on CMSIS-NN boards the RAM cost of int4 "
        "layers is overstated."
    )


def run_bench(quick: bool = False) -> None:
    write_section(
        "energy-op-model",
        "Energy: per-op instruction model fitted on measured TFLM + CMSIS-NN counts",
        "audio-nas bench energy" + (" --quick" if quick else ""),
        op_model_section(),
    )
    write_section(
        "energy-op-model-int4",
        "Energy: int4 kernels (CMSIS-NN s4) on the emulated Cortex-M4",
        "audio-nas bench energy" + (" --quick" if quick else ""),
        int4_section(),
    )
