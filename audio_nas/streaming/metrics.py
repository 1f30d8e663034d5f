"""Streaming metrics against ground-truth events.

A detection matches an event of the same label when it falls in [onset, offset + tolerance_s] (0.5 s);
each event matches at most once. A detection of an event's own label that does not match (too late, or a
second one) but falls in [onset, offset + late_grace_s] (1 s) is *late*: no hit, and no false alarm either,
because the keyword is still in the model's 1-s window then (the rule of MLPerf Tiny's streaming wake-word
benchmark: a true positive within 0.5 s after the wake word ends, no false positive counted within 1 s
after it). Every other detection is a false alarm. ``late_grace_s=None`` counts late detections as false
alarms (the rule this project used before 2026-11-23). Recall = matched / events; false alarms per hour
over the stream's duration; detection latency = detection time - onset.
FRR at 1 FA/h: the recognizer is re-run on the stored posteriors for a grid of thresholds and the
lowest false-rejection rate with at most one false alarm per hour is reported.
"""

from __future__ import annotations

import numpy as np

from audio_nas.data.dataset import BACKGROUND_CLASSES
from audio_nas.data.long_stream import Event
from audio_nas.streaming.recognizer import Detection, Recognizer

MATCH_TOLERANCE_S = 0.5
LATE_GRACE_S = 1.0


def match(
    dets: list[Detection],
    events: list[Event],
    tolerance_s: float = MATCH_TOLERANCE_S,
    late_grace_s: float | None = LATE_GRACE_S,
) -> dict:
    used = set()
    latencies = []
    fa = late = 0
    for d in dets:
        hit = next(
            (
                i
                for i, e in enumerate(events)
                if i not in used and e.label == d.label and e.onset_s <= d.time_s <= e.offset_s + tolerance_s
            ),
            None,
        )
        if hit is not None:
            used.add(hit)
            latencies.append(d.time_s - events[hit].onset_s)
        elif late_grace_s is not None and any(
            e.label == d.label and e.onset_s <= d.time_s <= e.offset_s + late_grace_s for e in events
        ):
            late += 1
        else:
            fa += 1
    return {"matched": len(used), "false_alarms": fa, "late": late, "latencies": latencies}


def evaluate(dets, events, audio_s: float, tolerance_s: float = MATCH_TOLERANCE_S) -> dict:
    m = match(dets, events, tolerance_s)
    hours = audio_s / 3600
    return {
        "events": len(events),
        "detections": len(dets),
        "recall": m["matched"] / max(1, len(events)),
        "false_alarms": m["false_alarms"],
        "late_detections": m["late"],
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


# ---- vectorised recognizer and matching, for grids on stored posteriors -------------------------------


def smoothed_top(times: np.ndarray, probs: np.ndarray, class_names, average_window_s: float):
    """Per window: the best foreground class of the averaged posteriors and its score, averaging exactly the
    posteriors ``Recognizer`` keeps (those with time >= t - average_window_s)."""
    times = np.asarray(times, np.float64)
    probs = np.asarray(probs, np.float64)
    first = np.searchsorted(times, times - average_window_s, side="left")
    csum = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    k = np.arange(len(times))
    avg = (csum[k + 1] - csum[first]) / (k + 1 - first)[:, None]
    fg = np.array([n not in BACKGROUND_CLASSES for n in class_names])
    fg_idx = np.flatnonzero(fg)
    best = fg_idx[np.argmax(avg[:, fg_idx], axis=1)]
    return best, avg[k, best]


def detect_fast(times, labels, scores, threshold: float, refractory_s: float = 1.0) -> np.ndarray:
    """Indices of the windows where ``Recognizer`` detects (score >= threshold, refractory time since the
    last detection), given ``smoothed_top``'s labels and scores."""
    cand = np.flatnonzero(scores >= threshold)
    ct = np.asarray(times)[cand]
    picked = []
    i = 0
    while i < len(cand):
        picked.append(cand[i])
        j = int(np.searchsorted(ct, ct[i] + refractory_s - 1e-6, side="left"))
        while j < len(ct) and ct[j] - ct[i] < refractory_s:  # the Recognizer's own comparison
            j += 1
        i = max(j, i + 1)
    return np.asarray(picked, np.int64)


def match_fast(
    det_times,
    det_labels,
    events: list[Event],
    tolerance_s: float = MATCH_TOLERANCE_S,
    late_grace_s: float | None = LATE_GRACE_S,
) -> tuple[int, int]:
    """(matched, false alarms), as ``match`` counts them, vectorised for events whose windows [onset,
    offset + max(tolerance, grace)] do not overlap (long streams are built so); ``match`` otherwise."""
    det_times = np.asarray(det_times, np.float64)
    if len(det_times) == 0:
        return 0, 0
    if not events:
        return 0, len(det_times)
    reach = tolerance_s if late_grace_s is None else max(tolerance_s, late_grace_s)
    on = np.array([e.onset_s for e in events])
    off = np.array([e.offset_s for e in events])
    if np.any(on[1:] <= off[:-1] + reach):
        dets = [Detection(float(t), str(lab), 1.0) for t, lab in zip(det_times, det_labels)]
        m = match(dets, events, tolerance_s, late_grace_s)
        return m["matched"], m["false_alarms"]
    ev_labels = np.array([e.label for e in events])
    e = np.searchsorted(on, det_times, side="right") - 1
    same = e >= 0
    same[same] &= ev_labels[e[same]] == np.asarray(det_labels)[same]
    hit = same.copy()
    hit[hit] &= det_times[hit] <= off[e[hit]] + tolerance_s
    matched = int(len(np.unique(e[hit])))
    if late_grace_s is None:
        return matched, len(det_times) - matched
    near = same.copy()
    near[near] &= det_times[near] <= off[e[near]] + reach
    return matched, int(len(det_times) - near.sum())


def grid_scores(
    times,
    probs,
    events: list[Event],
    negative_s: float,
    class_names,
    thresholds,
    windows_s,
    refractory_s: float = 1.0,
    tolerance_s: float = MATCH_TOLERANCE_S,
    late_grace_s: float | None = LATE_GRACE_S,
) -> dict[tuple[float, float], dict]:
    """{(threshold, smoothing window): {frr, false_alarms, false_alarms_per_hour}} on stored posteriors;
    false alarms per hour of negatives."""
    names = np.asarray(class_names)
    out = {}
    for win in windows_s:
        best, score = smoothed_top(times, probs, class_names, win)
        for th in thresholds:
            idx = detect_fast(times, best, score, float(th), refractory_s)
            matched, fa = match_fast(
                np.asarray(times)[idx], names[best[idx]], events, tolerance_s, late_grace_s
            )
            out[(float(th), float(win))] = {
                "threshold": float(th),
                "smoothing_s": float(win),
                "frr": 1 - matched / max(1, len(events)),
                "false_alarms": fa,
                "false_alarms_per_hour": fa / (negative_s / 3600),
            }
    return out
