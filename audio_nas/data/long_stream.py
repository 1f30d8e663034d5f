"""Long held-out streams for FRR at a false-alarm rate: keyword events in at least an hour of negatives.

Built from one split only (validation to choose the recognizer, test to report), deterministically from a
seed. A split holds only minutes of audio (synth-kws: 511 validation and 642 test one-second clips), so the
stream reuses its clips many times with varied gains, offsets, truncations and mixtures; it never uses a clip
from another split. Layout: a background bed (the split's ``_silence_`` clips: noise, hum, babble, at a
random level per clip) under a sequence of segments:

- ``keyword``: one keyword clip (an event; ground truth = its active span, as ``synthetic_stream``);
- ``words``: a non-keyword clip (``_unknown_``);
- ``near_miss``: the first or last 30-60 % of a keyword's spoken part (a partial word; the span is
  ``AudioDataset.foreground_span``, the generator's record where there is one), faded at the cut;
- ``babble``: 3-6 overlapped non-keyword clips at random offsets;
- ``music``: procedural tonal music (notes with harmonics, chords, a beat): no clip of any split, so no
  leak (a split's own music-class clips are used instead when the dataset has such a class);
- ``noise``: the bed louder (background clips of the split, 0.3-1.0 gain);
- ``silence``: the bed at -50 dB.

Keyword events come at ``events_per_hour`` per hour of negatives on average (gaps between events drawn
uniformly in [0.4, 1.6] x the mean gap, at least ``MIN_GAP_S`` so the matching windows never overlap).
Negatives are everything outside the keyword segments; FA/h is counted per hour of negatives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from audio_nas.data.dataset import BACKGROUND_CLASSES, SPLIT_IDS
from audio_nas.errors import StreamingError

# negative segment kinds -> (probability of the kind for each segment, duration range in s)
NEGATIVE_MIX: dict[str, tuple[float, tuple[float, float]]] = {
    "words": (0.25, (1.0, 1.0)),
    "near_miss": (0.15, (1.0, 1.0)),
    "babble": (0.15, (2.0, 4.0)),
    "music": (0.15, (2.0, 6.0)),
    "noise": (0.20, (1.0, 4.0)),
    "silence": (0.10, (1.0, 4.0)),
}
MIN_GAP_S = 2.0
MUSIC_CLASSES = ("music",)


@dataclass(frozen=True)
class Event:
    """A labelled span of a stream: the ground truth detections are matched against."""

    label: str
    onset_s: float
    offset_s: float
    clip_index: int = -1  # the dataset-wide index of the clip the event was made from (-1: unknown)
    gain: float = 1.0  # the clip's gain in the stream


@dataclass
class LongStream:
    audio: np.ndarray  # float32 mono
    events: list[Event]
    sample_rate_hz: int
    split: str
    seed: int
    negative_s: float
    seconds_by_kind: dict[str, float]
    clip_indices: np.ndarray  # dataset-wide indices of every clip used
    events_per_hour: float
    notes: list[str] = field(default_factory=list)
    segments: list[tuple[str, float, float]] = field(default_factory=list)  # (negative kind, start s, end s)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate_hz

    def kind_at(self, times_s: np.ndarray) -> np.ndarray:
        """The negative segment kind at each time ('keyword' inside a keyword segment)."""
        if not self.segments:
            return np.full(len(np.atleast_1d(times_s)), "keyword")
        starts = np.array([a for _, a, _ in self.segments])
        kinds = np.array([k for k, _, _ in self.segments] + ["keyword"])
        ends = np.array([b for _, _, b in self.segments])
        i = np.searchsorted(starts, np.asarray(times_s, np.float64), side="right") - 1
        inside = (i >= 0) & (np.asarray(times_s) < ends[np.maximum(i, 0)])
        return np.where(inside, kinds[np.maximum(i, 0)], "keyword")

    def composition(self) -> dict:
        return {
            "split": self.split,
            "seed": self.seed,
            "duration_h": round(self.duration_s / 3600, 4),
            "negative_h": round(self.negative_s / 3600, 4),
            "events": len(self.events),
            "events_per_hour_of_negatives": round(len(self.events) / max(self.negative_s / 3600, 1e-9), 1),
            "negative_minutes_by_kind": {k: round(v / 60, 2) for k, v in self.seconds_by_kind.items()},
            "distinct_clips": int(len(np.unique(self.clip_indices))),
            "sha256": hashlib.sha256(self.audio.tobytes()).hexdigest()[:16],
        }


def _music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Tonal, music-like audio: a melody of harmonic notes over a chord, with a soft beat."""
    t = np.arange(n) / sr
    out = np.zeros(n, np.float64)
    note_s = rng.uniform(0.15, 0.5)
    base = 110 * 2 ** (rng.integers(0, 12) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    for k in range(int(np.ceil(n / sr / note_s))):
        a, b = int(k * note_s * sr), min(n, int((k + 1) * note_s * sr))
        if a >= n:
            break
        f = base * 2 ** (rng.choice(scale) / 12) * 2
        tt = t[a:b] - t[a]
        env = np.exp(-tt * rng.uniform(2, 8))
        for h, amp in enumerate((1.0, 0.5, 0.25, 0.12), start=1):
            out[a:b] += amp * env * np.sin(2 * np.pi * f * h * tt)
    for semis in (0, 4, 7):  # a held chord
        out += 0.3 * np.sin(2 * np.pi * base * 2 ** (semis / 12) * t)
    beat = (np.sin(2 * np.pi * t / (2 * note_s)) > 0.95) * rng.normal(0, 0.3, n)
    out += beat
    return (out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def build_long_stream(
    dataset,
    split: str,
    *,
    negative_hours: float = 1.0,
    events_per_hour: float = 360.0,
    seed: int = 0,
    music: Callable[[int, int, np.random.Generator], np.ndarray] | None = None,
) -> LongStream:
    """A deterministic stream with at least ``negative_hours`` of negatives from ``split`` only.

    ``music(n_samples, sample_rate_hz, rng)`` makes the music segments when the dataset has no music class
    (default: this module's generator, the one the validation and test streams use).
    """
    make_music = music or _music
    if split not in SPLIT_IDS:
        raise StreamingError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_IDS)}")
    if negative_hours <= 0 or events_per_hour <= 0:
        raise StreamingError("negative_hours and events_per_hour must be > 0")
    names = dataset.class_names
    global_idx = np.flatnonzero(dataset.split == SPLIT_IDS[split])
    labels = dataset.labels[global_idx]
    kind_of = {
        "keyword": [i for i, lab in zip(global_idx, labels) if names[lab] not in BACKGROUND_CLASSES],
        "unknown": [i for i, lab in zip(global_idx, labels) if names[lab] == "_unknown_"],
        "background": [i for i, lab in zip(global_idx, labels) if names[lab] in ("_silence_", "background")],
        "music": [i for i, lab in zip(global_idx, labels) if names[lab] in MUSIC_CLASSES],
    }
    music = set(kind_of["music"])
    kind_of["keyword"] = [i for i in kind_of["keyword"] if i not in music]
    if not kind_of["keyword"]:
        raise StreamingError(
            f"the {split} split of {dataset.name} has no keyword clips to build a stream from"
        )
    notes = []
    if not kind_of["unknown"]:
        notes.append("no _unknown_ clips in the split: words and babble segments use near-misses instead")
    if not kind_of["background"]:
        notes.append("no _silence_ clips in the split: the bed is low-level white noise")
    rng = np.random.default_rng([seed, SPLIT_IDS[split]])
    sr = dataset.sample_rate_hz
    wav = dataset.waveforms
    clip_n = wav.shape[1]
    neg_target = negative_hours * 3600
    mean_gap = 3600 / events_per_hour
    kinds = list(NEGATIVE_MIX)
    shares = np.array([NEGATIVE_MIX[k][0] for k in kinds])
    shares = shares / shares.sum()

    # plan: (kind, start sample, length in samples, seed); a gap of negatives, then an event, to the target
    plan: list[tuple[str, int, int, int]] = []
    pos = 0
    neg = 0
    seconds_by_kind = {k: 0.0 for k in kinds}
    neg_target_n = int(round(neg_target * sr))
    min_gap_n = int(MIN_GAP_S * sr)
    while neg < neg_target_n:
        gap_n = max(min_gap_n, min(int(mean_gap * rng.uniform(0.4, 1.6) * sr), neg_target_n - neg))
        filled = 0
        while filled < gap_n:
            kind = kinds[int(rng.choice(len(kinds), p=shares))]
            lo, hi = NEGATIVE_MIX[kind][1]
            dur = min(int(rng.uniform(lo, hi) * sr), gap_n - filled)
            plan.append((kind, pos + filled, dur, int(rng.integers(1 << 31))))
            seconds_by_kind[kind] += dur / sr
            filled += dur
        pos += gap_n
        neg += gap_n
        if neg < neg_target_n:  # the stream ends with negatives
            plan.append(("keyword", pos, clip_n, int(rng.integers(1 << 31))))
            pos += clip_n
    total = pos

    used: list[int] = []
    audio = np.zeros(total, np.float32)
    # the bed: background clips back to back at a random level each
    for start in range(0, total, clip_n):
        n = min(clip_n, total - start)
        if kind_of["background"]:
            i = int(rng.choice(kind_of["background"]))
            used.append(i)
            off = int(rng.integers(0, clip_n - n + 1))
            audio[start : start + n] = wav[i, off : off + n] * rng.uniform(0.05, 0.3)
        else:
            audio[start : start + n] = rng.normal(0, 0.003, n)
    events: list[Event] = []
    for kind, start, dur, sub_seed in plan:
        r = np.random.default_rng(sub_seed)
        seg = audio[start : start + dur]
        if kind == "keyword":
            i = int(r.choice(kind_of["keyword"]))
            used.append(i)
            gain = r.uniform(0.4, 1.0)
            seg += (wav[i] * gain)[: len(seg)]
            on, off = dataset.foreground_span(i)
            events.append(
                Event(names[dataset.labels[i]], (start + on) / sr, (start + off) / sr, i, float(gain))
            )
        elif kind == "words" and kind_of["unknown"]:
            i = int(r.choice(kind_of["unknown"]))
            used.append(i)
            seg += wav[i, :dur] * r.uniform(0.3, 1.0)
        elif kind in ("near_miss", "words"):
            i = int(r.choice(kind_of["keyword"]))
            used.append(i)
            x = wav[i]
            on, off = dataset.foreground_span(i)
            keep = max(1, int((off - on) * r.uniform(0.3, 0.6)))
            part = x[on : on + keep] if r.random() < 0.5 else x[off - keep : off]
            part = part * np.linspace(1, 0, len(part)) ** 0.3 if len(part) > 1 else part
            at = int(r.integers(0, max(1, dur - len(part))))
            n = min(len(part), dur - at)
            seg[at : at + n] += part[:n] * r.uniform(0.4, 1.0)
        elif kind == "babble":
            pool = kind_of["unknown"] or kind_of["keyword"]
            k = int(r.integers(3, 7))
            for _ in range(k):
                i = int(r.choice(pool))
                used.append(i)
                at = int(r.integers(-clip_n // 2, dur))
                a, b = max(0, at), min(dur, at + clip_n)
                if b > a:
                    seg[a:b] += wav[i, a - at : b - at] * r.uniform(0.15, 0.4)
        elif kind == "music":
            if kind_of["music"]:
                i = int(r.choice(kind_of["music"]))
                used.append(i)
                seg += np.resize(wav[i], dur) * r.uniform(0.2, 0.8)
            else:
                seg += make_music(dur, sr, r) * r.uniform(0.1, 0.5)
        elif kind == "noise":
            seg *= r.uniform(2.0, 4.0)
        elif kind == "silence":
            seg *= 0.003 / (np.sqrt(np.mean(seg**2)) + 1e-9) if len(seg) else 0
    np.clip(audio, -1, 1, out=audio)
    return LongStream(
        audio=audio,
        events=events,
        sample_rate_hz=sr,
        split=split,
        seed=seed,
        negative_s=neg / sr,
        seconds_by_kind=seconds_by_kind,
        clip_indices=np.asarray(used, np.int64),
        events_per_hour=events_per_hour,
        notes=notes,
        segments=[(k, a / sr, (a + n) / sr) for k, a, n, _ in plan if k != "keyword"],
    )
