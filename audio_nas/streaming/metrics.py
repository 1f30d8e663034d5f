"""Streaming metrics against ground-truth events.

A detection matches an event of the same label when it falls in [onset, offset + tolerance_s]; each
event matches at most once. Unmatched detections are false alarms. Recall = matched / events;
false alarms per hour over the stream's duration; detection latency = detection time - onset.
FRR at 1 FA/h: the recognizer is re-run on the stored posteriors for a grid of thresholds and the
lowest false-rejection rate with at most one false alarm per hour is reported.
"""

from __future__ import annotations

import numpy as np

from audio_nas.streaming.recognizer import Detection, Recognizer
from audio_nas.streaming.sources import Event


def match(dets: list[Detection], events: list[Event], tolerance_s: float = 0.5) -> dict:
    used = set()
    latencies = []
    fa = 0
    for d in dets:
        hit = next(
            (
                i
                for i, e in enumerate(events)
                if i not in used and e.label == d.label and e.onset_s <= d.time_s <= e.offset_s + tolerance_s
            ),
            None,
        )
        if hit is None:
            fa += 1
        else:
            used.add(hit)
            latencies.append(d.time_s - events[hit].onset_s)
    return {"matched": len(used), "false_alarms": fa, "latencies": latencies}


def evaluate(dets, events, audio_s: float, tolerance_s: float = 0.5) -> dict:
    m = match(dets, events, tolerance_s)
    hours = audio_s / 3600
    return {
        "events": len(events),
        "detections": len(dets),
        "recall": m["matched"] / max(1, len(events)),
        "false_alarms": m["false_alarms"],
        "false_alarms_per_hour": m["false_alarms"] / hours,
        "median_latency_s": float(np.median(m["latencies"])) if m["latencies"] else float("nan"),
    }


def frr_at_fa_per_hour(
    scores,
    events,
    audio_s: float,
    class_names,
    target_fa_per_hour: float = 1.0,
    thresholds=np.linspace(0.3, 0.99, 24),
    **rec_kwargs,
) -> dict:
    best = None
    for th in thresholds:
        rec = Recognizer(class_names, threshold=float(th), **rec_kwargs)
        dets = [d for t, p in scores if (d := rec.update(t, p)) is not None]
        r = evaluate(dets, events, audio_s)
        if r["false_alarms_per_hour"] <= target_fa_per_hour:
            frr = 1 - r["recall"]
            if best is None or frr < best["frr"]:
                best = {
                    "threshold": float(th),
                    "frr": frr,
                    "false_alarms_per_hour": r["false_alarms_per_hour"],
                }
    return best or {"threshold": None, "frr": 1.0, "false_alarms_per_hour": float("nan")}
