"""Energy benchmark: calibration against MLPerf Tiny, campaign throughput on the emulated backend, and the
random forest against the per-op model on held-out MEASURED specs (QEMU instruction counts of the emulated
board, ``datasets/op-counts``). The forest is never fitted or scored on the cycle model's own outputs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from audio_nas.bench.op_model import run_bench as op_model_bench
from audio_nas.bench.report import markdown_table, write_section


def run_bench(quick: bool = False) -> None:
    from audio_nas.energy import load_board, make_energy_model
    from audio_nas.energy.measurements import MeasurementStore
    from audio_nas.firmware_bridge.campaign import run_campaign
    from audio_nas.space import resolve_arch

    b = load_board("nucleo-l4r5zi")
    ds = resolve_arch("ds_cnn_s")
    cal = []
    for kernels, pub_ms, pub_uj in [("tflm-reference", 181.9, 7374.0), ("cmsis-nn", 63.0, 2833.0)]:
        board = b.__class__(**{**b.__dict__, "kernels": kernels})
        e = make_energy_model("emulated").estimate(ds, board)
        label = {
            "cmsis-nn": "cmsis-nn (published figure: X-CUBE-AI)",
            "tflm-reference": "tflm-reference (published figure: TFLM v2.3.1 + CMSIS-NN)",
        }.get(kernels, kernels)
        cal.append(
            [
                label,
                f"{pub_ms}",
                f"{e.latency_ms:.1f}",
                f"{100 * (e.latency_ms - pub_ms) / pub_ms:+.1f}%",
                f"{pub_uj:.0f}",
                f"{e.energy_uj:.0f}",
                f"{100 * (e.energy_uj - pub_uj) / pub_uj:+.1f}%",
            ]
        )
    count = 10 if quick else 40
    with tempfile.TemporaryDirectory() as d:
        store = MeasurementStore(Path(d) / "m.sqlite")
        t0 = time.perf_counter()
        run_campaign(b, count, store=store)
        campaign_s = time.perf_counter() - t0
    heldout_md = measured_heldout_section(folds=5, seed=0, active_seeds=2 if quick else 5)
    body = (
        "The emulated source on MLPerf Tiny v0.5 KWS DS-CNN, Nucleo-L4R5ZI. The tflm-reference row is its "
        "calibration point (fitted, so it checks the fit, not a prediction); the cmsis-nn row (today's "
        "CMSIS-NN at the Cortex-M4 CPI `energy.op_model` assumes) is a prediction, compared with X-CUBE-AI's "
        "published figure, another inference engine.\n\n"
        + markdown_table(
            ["kernels", "published ms", "model ms", "error", "published µJ", "model µJ", "error"], cal
        )
        + f"\n\nEmulated campaign backend (export to int8 .tflite, TFLM host interpreter for the arena, "
        f"op list through the cycle model; source `emulated`, an estimate): {count} architectures in "
        f"{campaign_s:.0f} s ({campaign_s / count:.2f} s each). Its rows are never used to fit or score the "
        f"forest: a forest fitted on them learns the cycle model.\n\n" + heldout_md
    )
    write_section(
        "energy",
        "Energy: calibration, campaign and predictor",
        "audio-nas bench energy" + (" --quick" if quick else ""),
        body,
    )
    op_model_bench(quick)  # the per-op instruction model's held-out errors and calibration, its own section


def measured_heldout(folds: int = 5, seed: int = 0) -> dict:
    """The forest vs the per-op model (refitted on the training folds' ops) vs the hand-set cycle model on the
    SAME held-out architectures of the measured QEMU table (folds by architecture, as
    ``energy.op_model.heldout_evaluation`` draws them). All predict from the spec (the forest from its
    features, the per-op model and the cycle model from its layer plan); the cycle model gets one factor
    fitted on the training folds. Returns per-model APEs and the forest's 90% interval coverage."""
    from audio_nas.energy import load_board
    from audio_nas.energy.cycle_model import model_cycles
    from audio_nas.energy.op_model import OpTable, heldout_evaluation
    from audio_nas.energy.predictor import INTERVAL, RandomForestEnergyPredictor
    from audio_nas.space import ArchSpec, arch_costs

    table = OpTable.load()
    board = load_board("mps2-an386-cmsis")
    archs = [m["arch"] for m in table.models]
    order = np.random.default_rng(seed).permutation(len(archs))
    fold_of = {archs[j]: k % folds for k, j in enumerate(order)}
    specs = {m["arch"]: ArchSpec.from_str(m["spec"]) for m in table.models}
    y = {m["arch"]: m["total"] for m in table.models}
    cyc = {a: model_cycles(arch_costs(s).layers, "cmsis-nn", board.core)[0] for a, s in specs.items()}
    op = {r["arch"]: r["predicted_plan"] for r in heldout_evaluation(table, folds, seed)["per_arch"]}
    ape = {"forest": [], "op_model": [], "cycle_model": []}
    covered, rel_width = [], []
    for k in range(folds):
        train = [a for a in archs if fold_of[a] != k]
        test = [a for a in archs if fold_of[a] == k]
        rf = RandomForestEnergyPredictor(board, seed=seed).fit(
            [specs[a] for a in train], np.array([y[a] for a in train])
        )
        pred, _ = rf.predict_latency([specs[a] for a in test])
        lo, hi = rf.latency_interval([specs[a] for a in test], INTERVAL)
        factor = np.exp(np.mean([np.log(y[a] / cyc[a]) for a in train]))
        for i, a in enumerate(test):
            ape["forest"].append(abs(pred[i] - y[a]) / y[a] * 100)
            ape["op_model"].append(abs(op[a] - y[a]) / y[a] * 100)
            ape["cycle_model"].append(abs(cyc[a] * factor - y[a]) / y[a] * 100)
            covered.append(lo[i] <= y[a] <= hi[i])
            rel_width.append((hi[i] - lo[i]) / y[a])
    return {
        "n": len(archs),
        "folds": folds,
        "ape": {k: np.array(v) for k, v in ape.items()},
        "coverage": float(np.mean(covered)),
        "interval": INTERVAL,
        "median_rel_width": float(np.median(rel_width)),
        "table": table,
        "specs": specs,
        "y": y,
    }


def measured_heldout_section(folds: int = 5, seed: int = 0, active_seeds: int = 5) -> str:
    try:
        r = measured_heldout(folds, seed)
    except (ImportError, OSError, ValueError) as exc:  # no per-op model or no measured table here
        return f"Held-out comparison on measured counts skipped: {exc}"
    rows = [
        [name, f"{np.mean(v):.1f}%", f"{np.median(v):.1f}%", f"{np.percentile(v, 90):.1f}%"]
        for name, v in r["ape"].items()
    ]
    ms = [
        _Row(r["specs"][a].to_str(), r["y"][a])
        for a in sorted(r["y"])  # measured instructions, one row per architecture
    ]
    return (
        f"Random forest vs the per-op model on held-out MEASURED architectures: {r['n']} int8 models with "
        f"random weights, whole-Invoke instructions retired on QEMU mps2-an386 with TFLM + CMSIS-NN "
        f"(`datasets/op-counts`, its manifest names the revisions and the command), {r['folds']}-fold by "
        f"architecture (the folds `energy.op_model.heldout_evaluation` draws; the per-op model is refitted "
        f"on the training folds' ops, the forest on their totals, the hand-set cycle model gets one factor "
        f"from them; every model predicts from the spec).\n\n"
        + markdown_table(["predictor (held out)", "MAPE", "median APE", "90th pct APE"], rows)
        + f"\n\nThe forest's {r['interval']:.0%} prediction interval (5th-95th percentile of its trees) "
        f"covers {r['coverage']:.0%} of the held-out measurements (median width {r['median_rel_width']:.0%} "
        f"of the measured value). Where the forest loses, `audio-nas predictor fit` stores that verdict and "
        f"the search refuses `energy_source: predicted` for the board.\n\n"
        + active_learning_table(ms, load_board_cmsis(), seeds=active_seeds)
    )


class _Row:
    """A measured row for the active-learning replay (spec and its measured instructions)."""

    def __init__(self, spec: str, value: float):
        self.spec, self.latency_ms = spec, value


def load_board_cmsis():
    from audio_nas.energy import load_board

    return load_board("mps2-an386-cmsis")


def active_learning_table(
    ms: list,
    board,
    seeds: int = 5,
    start: int = 20,
    per_round: int = 10,
    rounds: int = 5,
    test_size: int = 50,
) -> str:
    """Active learning (measure the most uncertain next) vs random picks, replayed on measured rows: a
    held-out set is never picked; "measuring" a pick looks its value up, so both arms see the same truth."""
    from audio_nas.energy.predictor import RandomForestEnergyPredictor, mape
    from audio_nas.space import ArchSpec

    specs = [ArchSpec.from_str(m.spec) for m in ms]
    y = np.array([m.latency_ms for m in ms])
    curves = {"active (most uncertain)": [], "random": []}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(specs))
        test, pool = order[:test_size], order[test_size:]
        for arm in curves:
            labeled = list(pool[:start])
            curve = []
            for r in range(rounds + 1):
                p = RandomForestEnergyPredictor(board, n_estimators=100, seed=seed).fit(
                    [specs[i] for i in labeled], y[labeled]
                )
                curve.append(mape(y[test], p.predict_latency([specs[i] for i in test])[0]))
                if r == rounds:
                    break
                rest = [i for i in pool if i not in set(labeled)]
                if arm == "random":
                    labeled += list(rng.choice(rest, per_round, replace=False))
                else:
                    chosen = {s.to_str() for s in p.most_uncertain([specs[i] for i in rest], per_round)}
                    labeled += [i for i in rest if specs[i].to_str() in chosen]
            curves[arm].append(curve)
    sizes = [start + r * per_round for r in range(rounds + 1)]
    rows = [[arm, *(f"{v:.1f}%" for v in np.mean(c, axis=0))] for arm, c in curves.items()]
    return (
        f"Active learning vs random picks, replayed on these measured counts ({seeds} seeds; {test_size} "
        f"held-out architectures never picked; {start} random to start, then {per_round} per round): "
        "held-out MAPE by the number of measured architectures (instructions).\n\n"
        + markdown_table(["picks", *(f"n={n}" for n in sizes)], rows)
    )
