"""Training windows cut from long streams of the train split (issue 17 item 2: training for the stream).

A clip classifier scores an always-on stream one window at a time, and the windows it meets there are not
the clips it was trained on: the keyword sits anywhere in the window, at a stream level, over a background
bed; half a keyword enters at the window's edge; a second of babble, music or a near-miss sits where a word
would be. ``with_stream_windows`` builds ``hours`` of long stream from the **train split only** (the same
builder as the validation and test streams, ``data.long_stream``), cuts windows from it and appends them to
the train split, labelled by what lies in them:

- ``keyword``: the whole active part of a keyword event inside the window, at a random place in it
  (``KEYWORD_WINDOWS_PER_EVENT`` windows per event) -> the keyword;
- ``partial``: only 20-50 % of an event's active part inside, its head at the window's end or its tail at
  its start (one per event) -> ``_unknown_``: the model learns to fire once the word is complete;
- ``negative``: a window at a random place that touches no event's active part (one per
  ``NEGATIVE_EVERY_S`` of negatives) -> ``_unknown_`` when it overlaps words, near-misses or babble,
  else ``_silence_``.

Validation and test stay clip for clip, and so does every validation or test stream (built from those
splits only, with other seeds). The one difference in recipe from the test streams: the music segments of
the training streams come from the train-side music generator (``synthetic.procedural_music``, as the hard
negatives use), not the test streams' generator, so no model is trained on the test's music family.
Caveat for readers of the results: the training streams share the test streams' layout (segment kinds,
levels, event spacing), so a gain measured on the synthetic test stream is an upper bound on the gain on a
real stream with another layout.

As a dataset name: ``stream-windows:NAME`` (1 hour) or ``stream-windows:H:NAME`` (H hours, e.g.
``stream-windows:2:more:synth-kws``), in any command or config that takes a dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from audio_nas.data.dataset import (
    SPLIT_IDS,
    AudioDataset,
    load_dataset,
    register_dataset,
    spans_key,
)
from audio_nas.data.long_stream import LongStream, build_long_stream
from audio_nas.data.synthetic import procedural_music
from audio_nas.errors import DataError

RECIPE_VERSION = 2  # 2: events and near-misses at the generator's word spans
DEFAULT_HOURS = 1.0
EVENTS_PER_HOUR = 1200.0  # per hour of negatives; the builder keeps >= 2 s between events
KEYWORD_WINDOWS_PER_EVENT = 2
PARTIAL_SHARE = (0.2, 0.5)  # share of the spoken part inside a partial window
NEGATIVE_EVERY_S = 1.0
SPEECH_KINDS = ("words", "near_miss", "babble")  # negative segment kinds labelled _unknown_


def _train_music(n: int, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    x = procedural_music(rng, n, sample_rate_hz)
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def parse_stream_windows(inner: str) -> tuple[float, str]:
    """``"synth-kws"`` -> (1.0, "synth-kws"); ``"2:synth-kws"`` -> (2.0, "synth-kws")."""
    head, _, rest = inner.partition(":")
    try:
        hours = float(head) if rest else None
    except ValueError:
        hours = None
    if hours is None:
        return DEFAULT_HOURS, inner
    if not 0 < hours <= 24:
        raise DataError(f"stream-windows:{inner}: hours of training stream must be in (0, 24], got {head}")
    return hours, rest


def cut_windows(
    stream: LongStream, class_names: tuple[str, ...] | list[str], window_n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(windows [N, window_n] float32, labels [N], kind of each window, start sample of each, the spoken
    span inside each keyword window [N, 2] (-1 for the others)) cut from ``stream``."""
    names = list(class_names)
    unknown_i, silence_i = names.index("_unknown_"), names.index("_silence_")
    sr = stream.sample_rate_hz
    total = len(stream.audio)
    rng = np.random.default_rng([seed, RECIPE_VERSION, 7])
    spans = np.array([[round(e.onset_s * sr), round(e.offset_s * sr)] for e in stream.events], np.int64)
    starts: list[int] = []
    inner: list[tuple[int, int]] = []
    labels: list[int] = []
    kinds: list[str] = []
    for e, (on, off) in zip(stream.events, spans):
        lo, hi = max(0, off - window_n + 1), min(on, total - window_n)
        if hi >= lo:
            for a in rng.integers(lo, hi + 1, KEYWORD_WINDOWS_PER_EVENT):
                starts.append(int(a))
                inner.append((int(on - a), int(off - a)))
                labels.append(names.index(e.label))
                kinds.append("keyword")
        inside = int(round((off - on) * rng.uniform(*PARTIAL_SHARE)))
        a = on + inside - window_n if rng.random() < 0.5 else off - inside
        if 0 <= a <= total - window_n:
            starts.append(int(a))
            inner.append((-1, -1))
            labels.append(unknown_i)
            kinds.append("partial")
    seg_start = np.array([s for _, s, _ in stream.segments]) * sr
    seg_end = np.array([e for _, _, e in stream.segments]) * sr
    seg_kind = np.array([k for k, _, _ in stream.segments])
    want = int(stream.negative_s / NEGATIVE_EVERY_S)
    got = tries = 0
    while got < want and tries < 20 * want:
        tries += 1
        a = int(rng.integers(0, total - window_n + 1))
        b = a + window_n
        if len(spans) and np.any((spans[:, 0] < b) & (spans[:, 1] >= a)):
            continue
        touched = seg_kind[(seg_start < b) & (seg_end > a)]
        starts.append(a)
        inner.append((-1, -1))
        labels.append(unknown_i if np.isin(touched, SPEECH_KINDS).any() else silence_i)
        kinds.append("negative")
        got += 1
    at = np.asarray(starts, np.int64)
    idx = at[:, None] + np.arange(window_n)[None, :]
    spans = np.asarray(inner, np.int64).reshape(-1, 2)
    return stream.audio[idx].astype(np.float32), np.asarray(labels, np.int64), kinds, at, spans


def with_stream_windows(ds: AudioDataset, *, hours: float = DEFAULT_HOURS, seed: int = 0) -> AudioDataset:
    """``ds`` with windows cut from ``hours`` of train-split long stream appended to its train split."""
    missing = [c for c in ("_unknown_", "_silence_") if c not in ds.class_names]
    if missing:
        raise DataError(
            f"dataset {ds.name} has no {' or '.join(missing)} class, so stream windows without a keyword "
            "have no label; stream windows are for keyword sets (synth-kws, kws:DIR, speech-commands:DIR)"
        )
    if not (ds.split == SPLIT_IDS["train"]).any():
        raise DataError(f"dataset {ds.name} has no train split to build training streams from")
    stream = build_long_stream(
        ds,
        "train",
        negative_hours=hours,
        events_per_hour=EVENTS_PER_HOUR,
        seed=seed,
        music=_train_music,
    )
    x, y, kinds, _, new_spans = cut_windows(stream, ds.class_names, ds.waveforms.shape[1], seed)
    digest = hashlib.sha256(
        f"{ds.content_hash}:{spans_key(ds.spans)}:stream-windows-v{RECIPE_VERSION}:{hours}:{seed}".encode()
    ).hexdigest()
    return ds.with_train_clips(
        name=f"stream-windows:{hours:g}:{ds.name}",
        content_hash=digest,
        waveforms=x,
        labels=y,
        groups=np.asarray([f"stream-window-{k}" for k in kinds]),
        spans=new_spans,
    )


@register_dataset("stream-windows")
def _load(inner: str | Path, *, sample_rate_hz: int = 16_000, clip_ms=None, on_error="raise") -> AudioDataset:
    hours, name = parse_stream_windows(str(inner))
    base = load_dataset(name, sample_rate_hz=sample_rate_hz, clip_ms=clip_ms, on_error=on_error)
    return with_stream_windows(base, hours=hours)
