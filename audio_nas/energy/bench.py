"""Energy benchmark: calibration against MLPerf Tiny, a campaign on the emulated backend, predictor MAPE."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from audio_nas.bench_report import markdown_table, write_section


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
        cal.append([kernels, f"{pub_ms}", f"{e.latency_ms:.1f}", f"{100 * (e.latency_ms - pub_ms) / pub_ms:+.1f}%",
                    f"{pub_uj:.0f}", f"{e.energy_uj:.0f}", f"{100 * (e.energy_uj - pub_uj) / pub_uj:+.1f}%"])
    count = 40 if quick else 200
    with tempfile.TemporaryDirectory() as d:
        store = MeasurementStore(Path(d) / "m.sqlite")
        t0 = time.perf_counter()
        run_campaign(b, count, store=store)
        campaign_s = time.perf_counter() - t0
        ms = store.all(b.name)
        cv = cross_validate(ms, b, folds=5)
        specs = [ArchSpec.from_str(m.spec) for m in ms]
        p = RandomForestEnergyPredictor(b).fit(specs, [m.latency_ms for m in ms])
        t0 = time.perf_counter()
        p.predict(specs[:50])
        pred_ms = (time.perf_counter() - t0) / 50 * 1e3
    body = (
        "Calibration of the per-op cycle model (emulated source) on MLPerf Tiny v0.5 KWS DS-CNN, Nucleo-L4R5ZI. "
        "Both figures are fitted points (one scale per kernel library), so they check the fit, not a prediction.\n\n"
        + markdown_table(["kernels", "published ms", "model ms", "error", "published µJ", "model µJ", "error"], cal)
        + f"\n\nCampaign: {len(ms)} sampled architectures exported to int8 .tflite, run in the TFLM host interpreter, "
        f"op lists through the cycle model (source `emulated`): {campaign_s:.0f} s ({campaign_s / len(ms):.2f} s each).\n\n"
        + markdown_table(["predictor", "5-fold latency MAPE"], [["random forest (cost per MAC)", f"{cv['rf_mape']:.1f}%"],
                                                                ["MACs-linear", f"{cv['macs_linear_mape']:.1f}%"],
                                                                ["analytic (MACs x cycles/MAC)", f"{cv['analytic_mape']:.1f}%"]])
        + f"\n\nPrediction time: {pred_ms:.1f} ms per candidate (features from the analytic view + 300 trees)."
    )
    write_section("energy", "Energy: calibration, campaign and predictor", "audio-nas bench energy" + (" --quick" if quick else ""), body)
