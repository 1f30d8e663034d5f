"""Per-event view of a checkpoint's stream misses: each test keyword event's clip alone against the same
event in the long test stream, at one operating threshold, by the event's gain in the stream.

    python -m audio_nas.bench.stream_misses CHECKPOINT [--dataset synth-kws] [--threshold 0.85]
        [--smoothing 0.2]

Float posteriors of the checkpoint (not the int8 export: the per-model `stream-eval` gives those); the
streams are `stream-eval`'s (1 h of negatives, 360 events per hour, seed 0). An event counts as detected
alone when its clip's best keyword is its own and >= the threshold, in the stream when the best keyword of
the averaged posteriors is its own and >= the threshold somewhere between its onset and 0.5 s after its end
(the docs/benchmarks.md table "Training for the stream: where the misses come from"). ``by_voice`` splits
the same two rates by the voice family of each event's clip (its group up to the first ``+``: espeak-ng's
language phonology in synth-kws, ``engine:voice`` in a ``data make kws`` set): [events, alone, in stream].
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from audio_nas.data import load_dataset
from audio_nas.data.long_stream import build_long_stream
from audio_nas.features import compute_features
from audio_nas.streaming.metrics import MATCH_TOLERANCE_S, smoothed_top
from audio_nas.streaming.search_eval import EVENTS_PER_HOUR, NEGATIVE_HOURS, STREAM_SEED
from audio_nas.streaming.stream_eval import (
    STRIDE_MS,
    clip_detected,
    stream_features,
    window_times,
    windows_of,
)
from audio_nas.training.checkpoint import load_checkpoint
from audio_nas.training.metrics import predict_logits

GAIN_BINS = ((0.4, 0.6), (0.6, 0.8), (0.8, 1.0 + 1e-9))


def event_rows(checkpoint: str, dataset: str, threshold: float, smoothing_s: float) -> dict:
    spec, model, _ = load_checkpoint(checkpoint)
    fe = spec.frontend
    ds = load_dataset(dataset)
    names = tuple(ds.class_names)
    test = build_long_stream(  # the test stream of stream-eval (the validation one is not needed here)
        ds, "test", negative_hours=NEGATIVE_HOURS, events_per_hour=EVENTS_PER_HOUR, seed=STREAM_SEED
    )
    stride = max(1, int(round(STRIDE_MS / fe.hop_ms)))
    frames = stream_features(test.audio, fe)
    probs = torch.softmax(torch.as_tensor(predict_logits(model, windows_of(frames, fe, stride))), 1).numpy()
    times = window_times(len(probs), fe, stride)
    best, score = smoothed_top(times, probs, names, smoothing_s)
    idx = np.array([e.clip_index for e in test.events])
    clip = torch.softmax(torch.as_tensor(predict_logits(model, compute_features(ds, fe).x[idx])), 1).numpy()
    rows, families = [], []
    for e, p in zip(test.events, clip):
        families.append(voice_family(ds.groups, e.clip_index))
        lab = names.index(e.label)
        m = (times >= e.onset_s) & (times <= e.offset_s + MATCH_TOLERANCE_S) & (best == lab)
        rows.append(
            (
                int(np.argmax(p)) == lab,  # the right class among all (keywords and background)
                clip_detected(p, e.label, names, threshold),
                bool(m.any() and score[m].max() >= threshold),
                e.gain,
            )
        )
    r = np.array(rows, dtype=float)
    out = {
        "events": len(r),
        "clip_right_class": round(float(r[:, 0].mean()), 3),
        "clip_detected": round(float(r[:, 1].mean()), 3),
        "stream_detected": round(float(r[:, 2].mean()), 3),
        "lost_in_stream": int(((r[:, 1] == 1) & (r[:, 2] == 0)).sum()),
    }
    for lo, hi in GAIN_BINS:
        sel = (r[:, 3] >= lo) & (r[:, 3] < hi)
        out[f"gain_{lo:g}_{min(hi, 1):g}"] = [
            round(float(r[sel, 1].mean()), 2),
            round(float(r[sel, 2].mean()), 2),
        ]
    fam = np.array(families)
    by = {
        f: [
            int((fam == f).sum()),
            round(float(r[fam == f, 1].mean()), 2),
            round(float(r[fam == f, 2].mean()), 2),
        ]
        for f in np.unique(fam)
    }
    out["by_voice"] = dict(sorted(by.items(), key=lambda kv: (kv[1][1], kv[0])))
    return out


def voice_family(groups: np.ndarray | None, index: int) -> str:
    """The voice family of clip ``index``: its group up to the first ``+`` ("-" when the set has none)."""
    if groups is None or not str(groups[index]):
        return "-"
    return str(groups[index]).split("+", 1)[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--dataset", default="synth-kws")
    ap.add_argument("--threshold", type=float, default=0.85)
    ap.add_argument("--smoothing", type=float, default=0.2)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(event_rows(a.checkpoint, a.dataset, a.threshold, a.smoothing)))


if __name__ == "__main__":
    main()
