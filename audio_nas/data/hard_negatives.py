"""Hard negatives for always-on training, derived from a dataset's own training clips (issue 17 item 2).

A clip classifier trained on whole keywords, other words and background only has never seen the things an
always-on stream is full of: the first or last part of a keyword, a keyword half outside the window,
overlapping chatter, music. ``with_hard_negatives`` adds such clips to the **train split only** (validation
and test, and so every stream built from them, stay as they were), each made from train-split clips:

- ``partial``: the first or last 30-60 % of a keyword's spoken part, faded at the cut, at a random place
  over a background clip -> ``_unknown_``;
- ``shifted``: a keyword with only 20-50 % of its spoken part inside the clip (its head at the end, or its
  tail at the start) -> ``_unknown_``;
- ``babble``: 3-6 overlapped ``_unknown_`` clips at random offsets over a background clip -> ``_silence_``;
- ``music``: tonal procedural music (the synth-events recipe: chords of harmonic tones; a different
  generator from the one the long test streams use, so the model is not trained on the test's music
  family) over a background clip -> ``_silence_``.

The spoken part is ``AudioDataset.foreground_span``: the word as the generator placed it (recorded in
the manifest), or for a recorded set an estimate from the audio (``active_span``, which in noise covers
more than the word, so a "partial" may then hold the whole word).

Each kind gets ``per_kind`` x the mean train-split class size, so with the default 1.0 the train split grows
by 4/n_classes of itself. Deterministic from ``seed``. As a dataset name: ``negatives:NAME`` (e.g.
``negatives:synth-kws``, ``negatives:kws:data/kws-...``) in any command or config that takes a dataset.
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
from audio_nas.data.synthetic import procedural_music
from audio_nas.errors import DataError

HARD_NEGATIVE_KINDS: tuple[str, ...] = ("partial", "shifted", "babble", "music")
RECIPE_VERSION = 2  # 2: partial and shifted keywords cut at the generator's word span
LABEL_OF_KIND = {"partial": "_unknown_", "shifted": "_unknown_", "babble": "_silence_", "music": "_silence_"}


def _bed(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A background clip at a random level (as the long streams lay their bed), or faint noise."""
    if not len(background):
        return rng.normal(0, 0.003, background.shape[1]).astype(np.float64)
    return background[int(rng.integers(len(background)))].astype(np.float64) * rng.uniform(0.05, 0.3)


def _partial(kw: np.ndarray, span: tuple[int, int], bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    on, off = span
    keep = max(2, int((off - on) * rng.uniform(0.3, 0.6)))
    part = kw[on : on + keep] if rng.random() < 0.5 else kw[off - keep : off]
    fade = min(160, len(part) // 4)
    part = np.array(part, np.float64)
    if fade:
        ramp = np.linspace(0, 1, fade)
        part[:fade] *= ramp
        part[-fade:] *= ramp[::-1]
    at = int(rng.integers(0, max(1, len(bed) - len(part))))
    n = min(len(part), len(bed) - at)
    bed[at : at + n] += part[:n] * rng.uniform(0.4, 1.0)
    return bed


def _shifted(kw: np.ndarray, span: tuple[int, int], bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    on, off = span
    word = kw[on : off + 1]
    keep = max(1, int(len(word) * rng.uniform(0.2, 0.5)))
    gain = rng.uniform(0.4, 1.0)
    if rng.random() < 0.5:
        bed[:keep] += word[len(word) - keep :] * gain  # its tail at the start
    else:
        bed[len(bed) - keep :] += word[:keep] * gain  # its head at the end
    return bed


def _babble(unknown: np.ndarray, bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(bed)
    for _ in range(int(rng.integers(3, 7))):
        x = unknown[int(rng.integers(len(unknown)))]
        at = int(rng.integers(-n // 2, n // 2))
        a, b = max(0, at), min(n, at + n)
        bed[a:b] += x[a - at : b - at] * rng.uniform(0.15, 0.4)
    return bed


def _music(bed: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    x = procedural_music(rng, len(bed), sample_rate_hz)
    return bed + x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.5)


def with_hard_negatives(ds: AudioDataset, *, per_kind: float = 1.0, seed: int = 0) -> AudioDataset:
    """``ds`` with hard negatives appended to its train split (see the module doc)."""
    names = ds.class_names
    missing = [c for c in ("_unknown_", "_silence_") if c not in names]
    if missing:
        raise DataError(
            f"dataset {ds.name} has no {' or '.join(missing)} class, so hard negatives have no label; "
            "they are for keyword sets with _unknown_ and _silence_ (synth-kws, kws:DIR, speech-commands:DIR)"
        )
    if per_kind <= 0:
        raise DataError(f"hard negatives: per_kind must be > 0, got {per_kind}")
    unknown_i, silence_i = names.index("_unknown_"), names.index("_silence_")
    train = ds.split == SPLIT_IDS["train"]
    wav, lab = ds.waveforms, ds.labels
    keywords = np.flatnonzero(train & (lab != unknown_i) & (lab != silence_i))
    unknown = wav[train & (lab == unknown_i)]
    background = wav[train & (lab == silence_i)]
    if not len(keywords) or not len(unknown):
        raise DataError(
            f"dataset {ds.name}: hard negatives are made from its train split's keyword and _unknown_ clips"
        )
    n_each = max(1, int(round(per_kind * train.sum() / len(names))))
    rng = np.random.default_rng([seed, RECIPE_VERSION])
    clips, labels, groups = [], [], []
    for kind in HARD_NEGATIVE_KINDS:
        for i in range(n_each):
            bed = _bed(background, rng)
            if kind == "partial":
                k = int(keywords[int(rng.integers(len(keywords)))])
                x = _partial(wav[k], ds.foreground_span(k), bed, rng)
            elif kind == "shifted":
                k = int(keywords[int(rng.integers(len(keywords)))])
                x = _shifted(wav[k], ds.foreground_span(k), bed, rng)
            elif kind == "babble":
                x = _babble(unknown, bed, rng)
            else:
                x = _music(bed, ds.sample_rate_hz, rng)
            clips.append(np.clip(x, -1, 1).astype(np.float32))
            labels.append(names.index(LABEL_OF_KIND[kind]))
            groups.append(f"hard-negative-{kind}-{i}")
    digest = hashlib.sha256(
        f"{ds.content_hash}:{spans_key(ds.spans)}:hard-negatives-v{RECIPE_VERSION}:{per_kind}:{seed}".encode()
    )
    return ds.with_train_clips(
        name=f"negatives:{ds.name}",
        content_hash=digest.hexdigest(),
        waveforms=np.stack(clips),
        labels=np.asarray(labels, np.int64),
        groups=np.asarray(groups),
    )


@register_dataset("negatives")
def _load(inner: str | Path, *, sample_rate_hz: int = 16_000, clip_ms=None, on_error="raise") -> AudioDataset:
    base = load_dataset(str(inner), sample_rate_hz=sample_rate_hz, clip_ms=clip_ms, on_error=on_error)
    return with_hard_negatives(base)
