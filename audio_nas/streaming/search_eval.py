"""Streaming results for a search's Pareto models: the hook ``search.report.write_report`` calls (the
search layer cannot import streaming, so the CLI hands it this function)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audio_nas.data import load_dataset
from audio_nas.data.long_stream import NEGATIVE_MIX, build_long_stream
from audio_nas.errors import StreamingError
from audio_nas.features import compute_features
from audio_nas.progress import Progress
from audio_nas.space import ArchSpec
from audio_nas.streaming.metrics import LATE_GRACE_S, MATCH_TOLERANCE_S
from audio_nas.streaming.stream_eval import (
    FA_TARGETS,
    SMOOTHING_S,
    STRIDE_MS,
    THRESHOLDS,
    StreamPair,
    cached_result,
    evaluate_model,
    target_key,
)

log = logging.getLogger(__name__)

NEGATIVE_HOURS = 1.0
EVENTS_PER_HOUR = 360.0
STREAM_SEED = 0


@dataclass
class StreamReport:
    """What the search report adds: pareto.csv columns, per-trial values, and a markdown section."""

    columns: list[str]
    values: dict[int, dict[str, str]] = field(default_factory=dict)
    markdown: list[str] = field(default_factory=list)
    seconds: float = 0.0


def csv_columns() -> list[str]:
    cols = []
    for t in FA_TARGETS:
        k = target_key(t)
        cols += [
            f"frr_at_{k}_fa_h",
            f"test_fa_h_at_{k}_fa_h",
            f"threshold_at_{k}_fa_h",
            f"smoothing_s_at_{k}_fa_h",
        ]
    return cols


def build_streams(dataset, negative_hours: float, events_per_hour: float, seed: int) -> StreamPair:
    kw = dict(negative_hours=negative_hours, events_per_hour=events_per_hour, seed=seed)
    return StreamPair(
        build_long_stream(dataset, "validation", **kw), build_long_stream(dataset, "test", **kw)
    )


def evaluate_exported(
    model_dirs: dict[int, Path],
    dataset,
    streams: StreamPair,
    on_error: str = "raise",
    workers: int = 1,
) -> dict[int, dict]:
    """{key: evaluate_model result} for exported model dirs (each with its checkpoint for the fast path);
    with ``workers`` > 1 the models are scored in that many processes (features computed here, once per
    front-end config)."""
    jobs = {}
    calib: dict[str, np.ndarray] = {}
    clips: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out = {k: r for k, d in model_dirs.items() if (r := cached_result(d, streams.key())) is not None}
    for key, d in model_dirs.items():
        if key in out:
            continue
        fe = ArchSpec.from_str(_spec_of(d)).frontend
        if repr(fe) not in calib:  # the exporter's calibration set: 200 training clips
            feats = compute_features(dataset, fe)
            calib[repr(fe)] = np.asarray(feats.subset("train").x[:200])
            # the test events' clips alone, for the causes of the misses
            idx = np.unique([e.clip_index for e in streams.test.events if e.clip_index >= 0]).astype(np.int64)
            clips[repr(fe)] = (idx, np.asarray(feats.x[idx]))
        jobs[key] = (str(d), tuple(dataset.class_names), calib[repr(fe)], fe, clips[repr(fe)])
    with Progress("streaming FRR at FA/h", len(jobs), unit="model", logger=log, enabled=bool(jobs)) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for key, (d, names, cal, fe, cl) in jobs.items():
                out[key] = evaluate_model(d, streams, names, cal, fe, cl)
                bar.update(1, **{"FRR@1FA/h": f"{out[key]['targets']['1']['frr']:.3f}"})
            return out
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_one_thread) as pool:
            futs = {
                pool.submit(evaluate_model, d, streams.light(fe), names, cal, fe, cl): key
                for key, (d, names, cal, fe, cl) in jobs.items()
            }
            for fut in as_completed(futs):
                out[futs[fut]] = fut.result()
                bar.update(1, **{"FRR@1FA/h": f"{out[futs[fut]]['targets']['1']['frr']:.3f}"})
    return out


def _one_thread() -> None:
    torch.set_num_threads(1)


def _spec_of(model_dir: Path) -> str:
    return json.loads((Path(model_dir) / "summary.json").read_text())["spec"]


def evaluate_front(
    runner,
    front,
    *,
    negative_hours: float = NEGATIVE_HOURS,
    events_per_hour: float = EVENTS_PER_HOUR,
    seed: int = STREAM_SEED,
    workers: int | None = None,
) -> StreamReport:
    """FRR at 0.5 / 1 / 2 FA/h of every exported Pareto model of ``runner``'s run directory."""
    t0 = time.perf_counter()
    workers = getattr(runner.cfg, "workers", 1) if workers is None else workers
    rep = StreamReport(columns=csv_columns())
    dirs = {
        t.id: runner.run_dir / "pareto" / f"trial-{t.id:04d}"
        for t in front
        if (runner.run_dir / "pareto" / f"trial-{t.id:04d}" / "model.tflite").exists()
    }
    rep.markdown += ["", "## Streaming: FRR at a false-alarm rate", ""]
    if not dirs:
        rep.markdown.append(
            "No exported Pareto model (export_pareto off, or an evaluator that trains no model): "
            "nothing to stream."
        )
        return rep
    ds = load_dataset(runner.cfg.dataset, on_error=runner.cfg.on_error)
    try:
        streams = build_streams(ds, negative_hours, events_per_hour, seed)
        t_built = time.perf_counter()
        results = evaluate_exported(dirs, ds, streams, runner.cfg.on_error, workers=workers)
    except StreamingError as exc:  # e.g. a split without keyword clips: the rest of the report stands
        log.warning("streaming evaluation skipped: %s", exc)
        rep.markdown.append(f"Skipped: {exc}")
        return rep
    rep.seconds = time.perf_counter() - t0
    for tid, r in results.items():
        row = {}
        for t in FA_TARGETS:
            k = target_key(t)
            x = r["targets"][k]
            row[f"frr_at_{k}_fa_h"] = f"{x['frr']:.4f}"
            row[f"test_fa_h_at_{k}_fa_h"] = f"{x['fa_h']:.2f}"
            row[f"threshold_at_{k}_fa_h"] = f"{x['threshold']:.3f}" + ("" if x["val_reached"] else "*")
            row[f"smoothing_s_at_{k}_fa_h"] = f"{x['smoothing_s']:.1f}"
        rep.values[tid] = row
    rep.markdown += composition_lines(streams)
    rep.markdown += [
        "",
        "| trial | FRR @0.5 FA/h (test FA/h) | FRR @1 FA/h (test FA/h) | FRR @2 FA/h (test FA/h) "
        "| threshold / smoothing s at 1 FA/h | misses at 1 FA/h: clip alone / in the stream | posteriors |",
        "|---|---|---|---|---|---|---|",
    ]
    for tid in sorted(results, key=lambda i: float(results[i]["targets"]["1"]["frr"])):
        r = results[tid]["targets"]
        cells = [f"{r[target_key(t)]['frr']:.3f} ({r[target_key(t)]['fa_h']:.1f})" for t in FA_TARGETS]
        one = r["1"]
        why = one.get("test_misses_by_cause")
        misses = f"{why['clip_alone']} / {why['in_stream']}" if why else "-"
        rep.markdown.append(
            f"| {tid} | {' | '.join(cells)} | {one['threshold']:.3f}{'' if one['val_reached'] else '*'} / "
            f"{one['smoothing_s']:.1f} | {misses} | {results[tid]['posteriors']} |"
        )
    rep.markdown += [
        "",
        f"- recognizer chosen per model and target on the validation stream from thresholds "
        f"{list(THRESHOLDS)} x smoothing windows {list(SMOOTHING_S)} s (refractory 1 s, model every "
        f"{STRIDE_MS:g} ms as `audio-nas stream`), then applied unchanged to the test stream; `*` = no "
        "recognizer reached the target on validation (the one with the fewest false alarms is reported)",
        "- misses: `clip alone` = the event's keyword clip on its own is not detected either (the "
        "classifier's limit), `in the stream` = detected alone, lost in the stream (level, background, "
        "neighbours)",
        f"- a detection is a hit within {MATCH_TOLERANCE_S:g} s after its keyword ends; the right label "
        f"later, up to {LATE_GRACE_S:g} s after the end, is a miss but no false alarm (MLPerf Tiny's "
        "streaming wake-word rule; `streaming/metrics.py`)",
        f"- streams built in {t_built - t0:.0f} s; all models scored in {rep.seconds:.0f} s "
        "(`stream_eval: false` in the search config turns this section off)",
    ]
    return rep


def composition_lines(streams: StreamPair) -> list[str]:
    lines = []
    for s in (streams.val, streams.test):
        c = s.composition()
        mix = ", ".join(f"{k} {v:.1f}" for k, v in c["negative_minutes_by_kind"].items())
        lines.append(
            f"- {c['split']} stream (seed {c['seed']}, sha256 {c['sha256']}): {c['duration_h']:.2f} h, "
            f"{c['negative_h']:.2f} h of negatives (minutes: {mix}), {c['events']} keyword events "
            f"({c['events_per_hour_of_negatives']:.0f} per hour of negatives), "
            f"{c['distinct_clips']} distinct clips "
            f"of the {c['split']} split only"
        )
    lines.append(
        "- built only from the split's clips, reused with varied gains, offsets, truncations and mixtures (a "
        "split holds minutes of audio); near-misses are 30-60 % of a keyword's active part; music is "
        f"procedural (no clip of any split); segment kinds drawn with probabilities "
        f"{ {k: v[0] for k, v in NEGATIVE_MIX.items()} }; FA/h counts false alarms per hour of negatives"
    )
    return lines
