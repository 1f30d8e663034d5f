"""Streaming benchmark: the best searched model and DS-CNN on a synthetic long stream."""

from __future__ import annotations

import json
from pathlib import Path

from audio_nas.bench.report import markdown_table, write_section


def _trained_and_exported(arch: str, ds, ckpt_dir: Path) -> Path:
    """The exported model of ``arch`` trained with ``TrainConfig()`` defaults in ``ckpt_dir``
    (trained here when missing)."""
    from audio_nas.streaming.demo import exported_checkpoint
    from audio_nas.training.pipeline import train_and_save

    if not (ckpt_dir / "exported" / "summary.json").exists() and not (ckpt_dir / "checkpoint.json").exists():
        train_and_save(arch, ds.name, ckpt_dir)
    return exported_checkpoint(ckpt_dir, ds.name)


def _clip_test_accuracy(exported: Path) -> str:
    for ckpt in (exported / "checkpoint" / "checkpoint.json", exported.parent / "checkpoint.json"):
        if ckpt.exists():
            acc = json.loads(ckpt.read_text())["metrics"].get("test_accuracy")
            return f"{acc:.3f}" if acc is not None else "?"
    return "?"


def run_bench(quick: bool = False) -> None:
    from audio_nas.data import load_dataset
    from audio_nas.streaming.demo import pick_model
    from audio_nas.streaming.metrics import evaluate, frr_at_fa_per_hour
    from audio_nas.streaming.pipeline import TflmModel, run_stream
    from audio_nas.streaming.recognizer import Recognizer
    from audio_nas.streaming.sources import chunked, synthetic_stream

    ds = load_dataset("synth-kws")
    minutes = 2 if quick else 5
    audio, events = synthetic_stream(ds, minutes, seed=0)
    models = []
    best, why = pick_model()
    searched = "Pareto" in why
    models.append(("best searched (search budget)" if searched else "default", best))
    if searched:
        # search trials train for a few epochs; retrain the winner's spec with the DS-CNN recipe for a fair
        # comparison
        spec = json.loads((best / "summary.json").read_text())["spec"]
        models.append(
            (
                "best searched, retrained 20 epochs",
                _trained_and_exported(spec, ds, Path("runs/train/best_searched_20ep")),
            )
        )
    models.append(("DS-CNN (20 epochs)", _trained_and_exported("ds_cnn_s", ds, Path("runs/train/ds_cnn_s"))))
    rows = []
    for name, path in models:
        for stride_ms in (40, 100):
            m = TflmModel(path)
            res = run_stream(
                m,
                chunked(audio, 1600),
                16000,
                ds.class_names,
                stride_ms=stride_ms,
                recognizer=Recognizer(ds.class_names),
                keep_scores=True,
            )
            r = evaluate(res.detections, events, res.audio_s)
            f = frr_at_fa_per_hour(res.scores, events, res.audio_s, ds.class_names)
            rows.append(
                [
                    name,
                    _clip_test_accuracy(path),
                    stride_ms,
                    f"{r['recall']:.3f}",
                    f"{r['false_alarms_per_hour']:.1f}",
                    f"{f['frr']:.3f}",
                    f"{r['median_latency_s']:.2f}",
                    f"{res.real_time_factor:.4f}",
                ]
            )
    _rec = Recognizer(ds.class_names)
    body = (
        f"Synthetic stream: {minutes} min of synth-kws test-split keywords over its background clips, "
        f"{len(events)} keyword events; recognizer: {_rec.average_window_s:g} s posterior average, threshold "
        f"{_rec.threshold:g}, {_rec.refractory_s:g} s refractory; a detection counts when it has the event's "
        "label and falls in [onset, offset + 0.5 s]; the right label later, up to 1 s after the offset, is "
        "no false alarm (MLPerf Tiny's streaming rule). Inference by the TFLM host interpreter (reference "
        "kernels, unoptimised on x86).\n\n"
        + markdown_table(
            [
                "model",
                "clip test acc",
                "stride ms",
                "recall",
                "FA/hour",
                "FRR at 1 FA/h",
                "median latency s",
                "real-time factor",
            ],
            rows,
        )
    )
    write_section(
        "streaming", "Streaming: detection quality and real-time factor", "audio-nas bench streaming", body
    )
