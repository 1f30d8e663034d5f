"""Energy benchmark: calibration against MLPerf Tiny, a campaign on the emulated backend, predictor MAPE."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from audio_nas.bench.report import markdown_table, write_section


def run_bench(quick: bool = False) -> None:
    from audio_nas.energy import load_board, make_energy_model
    from audio_nas.energy.campaign import run_campaign
    from audio_nas.energy.measurements import MeasurementStore
    from audio_nas.energy.predictor import RandomForestEnergyPredictor, cross_validate
    from audio_nas.space import ArchSpec, resolve_arch

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
    count = 40 if quick else 200
    with tempfile.TemporaryDirectory() as d:
        store = MeasurementStore(Path(d) / "m.sqlite")
        t0 = time.perf_counter()
        run_campaign(b, count, store=store)
        campaign_s = time.perf_counter() - t0
        ms = store.all(b.name)
        active_md = active_learning_table(ms, b, seeds=2 if quick else 5)
        cv = cross_validate(ms, b, folds=5)
        specs = [ArchSpec.from_str(m.spec) for m in ms]
        p = RandomForestEnergyPredictor(b).fit(specs, [m.latency_ms for m in ms])
        t0 = time.perf_counter()
        p.predict(specs[:50])
        pred_ms = (time.perf_counter() - t0) / 50 * 1e3
    body = (
        "Calibration of the per-op cycle model (emulated source) on MLPerf Tiny v0.5 KWS DS-CNN, "
        "Nucleo-L4R5ZI. Both figures are fitted points (one scale per kernel library), so they check the "
        "fit, not a prediction.\n\n"
        + markdown_table(
            ["kernels", "published ms", "model ms", "error", "published µJ", "model µJ", "error"], cal
        )
        + f"\n\nCampaign: {len(ms)} sampled architectures exported to int8 .tflite, run in the TFLM host "
        f"interpreter, op lists through the cycle model (source `emulated`): {campaign_s:.0f} s "
        f"({campaign_s / len(ms):.2f} s each).\n\n"
        + markdown_table(
            ["predictor", "5-fold latency MAPE"],
            [
                ["random forest (cost per MAC)", f"{cv['rf_mape']:.1f}%"],
                ["MACs-linear", f"{cv['macs_linear_mape']:.1f}%"],
                ["analytic (MACs x cycles/MAC)", f"{cv['analytic_mape']:.1f}%"],
            ],
        )
        + f"\n\nPrediction time: {pred_ms:.1f} ms per candidate (features from the analytic view + 300 "
        "trees)." + "\n\n" + active_md
    )
    write_section(
        "energy",
        "Energy: calibration, campaign and predictor",
        "audio-nas bench energy" + (" --quick" if quick else ""),
        body,
    )


def active_learning_table(
    ms: list,
    board,
    seeds: int = 5,
    start: int = 20,
    per_round: int = 10,
    rounds: int = 5,
    test_size: int = 50,
) -> str:
    """Active learning (measure the most uncertain next) vs random picks, replayed on a finished campaign:
    a held-out set is never picked; "measuring" a pick looks its value up, so both arms see the same truth."""
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
        f"Active learning vs random picks, replayed on this campaign ({seeds} seeds; {test_size} held-out "
        f"architectures never picked; {start} random to start, then {per_round} per round): held-out latency "
        "MAPE by the number of measured architectures.\n\n"
        + markdown_table(["picks", *(f"n={n}" for n in sizes)], rows)
    )
