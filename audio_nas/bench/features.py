"""Feature benchmark: clips/s cold (computed) and cached (memmap reuse), and the fixed-point path."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.features import FrontEndConfig, compute_features
from audio_nas.features.fixed_point import frames_q15, make_tables, to_float_logmel


def run_bench(quick: bool = False) -> None:
    from audio_nas.data import load_dataset

    ds = load_dataset("synth-kws")
    n = len(ds)
    rows = []
    tmp = Path(tempfile.mkdtemp())
    try:
        for cfg in [
            FrontEndConfig(kind="logmel", window_ms=30, hop_ms=20, n_mels=40),
            FrontEndConfig(kind="mfcc", window_ms=40, hop_ms=20, n_mels=40, n_mfcc=10),
            FrontEndConfig(kind="pcen", window_ms=30, hop_ms=20, n_mels=40),
        ]:
            t0 = time.perf_counter()
            compute_features(ds, cfg, tmp)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            x = compute_features(ds, cfg, tmp).x
            float(np.asarray(x).sum())  # touch every value: reuse means reading it all
            warm = time.perf_counter() - t0
            rows.append(
                [cfg.kind, f"{cfg.output_shape}", f"{n / cold:.0f}", f"{n / warm:.0f}", f"{cold / warm:.0f}x"]
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cfg = FrontEndConfig(kind="logmel", window_ms=30, hop_ms=20, n_mels=40)
    t = make_tables(cfg)
    clips = np.round(ds.waveforms[: 50 if quick else 200] * 32767).astype(np.int16)
    t0 = time.perf_counter()
    fixed = [frames_q15(c, t) for c in clips]
    fx = time.perf_counter() - t0
    ref = compute_features(ds, cfg).x[: len(clips)]
    errs = [np.abs(to_float_logmel(f, t) - r)[r > np.log(1e-3)] for f, r in zip(fixed, ref)]
    err = np.concatenate(errs)
    body = (
        f"synth-kws, {n} clips of 1 s. Cached = the memmap read back in full.\n\n"
        + markdown_table(
            ["front-end", "shape (frames, bins)", "cold clips/s", "cached clips/s", "speed-up"], rows
        )
        + f"\n\nFixed-point log-mel (Python twin of the firmware code): {len(clips) / fx:.0f} clips/s on the "
        "host; agreement with the float log-mel on real clips, frames above the integer floor: mean |error| "
        f"{err.mean():.3f} nats, 95th percentile {np.percentile(err, 95):.3f} nats."
    )
    write_section(
        "features", "Front-ends: extraction speed and the feature cache", "audio-nas bench features", body
    )
