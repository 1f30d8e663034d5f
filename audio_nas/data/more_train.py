"""More training clips for a generated dataset, with its validation and test splits untouched (issue 17).

The embedded keyword set is small (synth-kws: 2,447 train clips, ~200 per class), and what an always-on
model needs most is more, and more varied, examples of every class. ``more:NAME`` is NAME plus the
train-split clips of the same recipe generated again with another seed at ``factor`` x its default clips
per class: ``more:synth-kws`` (factor 4), ``more:8:synth-kws``. The generators split by voice (a stable
hash of the voice name, or of the source id), so the added clips are new utterances of *train* voices
only: no validation or test voice is heard, validation and test stay clip for clip as they were, and so
does every long stream built from them. The extra set is generated once into ``data/NAME-nN-s1/`` (as
``audio-nas data make NAME --per-class N --seed 1`` would) and reused.

Only the generated recipes (``synth-kws``, ``synth-events``) can be regenerated; for a recorded set the
way to more training data is more recordings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from audio_nas.data.dataset import SPLIT_IDS, AudioDataset, load_dataset, register_dataset
from audio_nas.data.synthetic import RECIPES, load_generated, make_dataset
from audio_nas.errors import DataError

DEFAULT_FACTOR = 4
EXTRA_SEED = 1  # the base sets are seed 0; any other seed draws new clips of the same recipe


def parse_more(inner: str) -> tuple[int, str]:
    """``"synth-kws"`` -> (4, "synth-kws"); ``"8:synth-kws"`` -> (8, "synth-kws")."""
    head, _, rest = inner.partition(":")
    if rest and head.isdigit():
        factor, name = int(head), rest
    else:
        factor, name = DEFAULT_FACTOR, inner
    if factor < 1:
        raise DataError(f"more:{inner}: the factor must be a whole number >= 1, got {factor}")
    if name not in RECIPES:
        raise DataError(
            f"more:{inner}: more training clips can only be generated for {', '.join(RECIPES)} "
            f"(got {name!r}); for a recorded or kws:DIR set, record or generate a larger set instead"
        )
    return factor, name


def with_more_train(base: AudioDataset, extra: AudioDataset, factor: int) -> AudioDataset:
    """``base`` with ``extra``'s train-split clips appended to its train split."""
    if extra.class_names != base.class_names or extra.sample_rate_hz != base.sample_rate_hz:
        raise DataError(
            f"more:{base.name}: the extra set's classes or sample rate differ from the base set's"
        )
    keep = extra.split == SPLIT_IDS["train"]
    n_new = int(keep.sum())
    digest = hashlib.sha256(f"{base.content_hash}:more:{extra.content_hash}".encode())
    groups = None
    if base.groups is not None and extra.groups is not None:
        groups = np.concatenate([base.groups, extra.groups[keep]])
    return AudioDataset(
        name=f"more:{factor}:{base.name}",
        waveforms=np.concatenate([base.waveforms, extra.waveforms[keep]]),
        labels=np.concatenate([base.labels, extra.labels[keep]]),
        split=np.concatenate([base.split, np.full(n_new, SPLIT_IDS["train"], np.uint8)]),
        class_names=base.class_names,
        sample_rate_hz=base.sample_rate_hz,
        content_hash=digest.hexdigest(),
        groups=groups,
    )


@register_dataset("more")
def _load(inner: str | Path, *, sample_rate_hz: int = 16_000, clip_ms=None, on_error="raise") -> AudioDataset:
    factor, name = parse_more(str(inner))
    base = load_dataset(name, sample_rate_hz=sample_rate_hz, clip_ms=clip_ms, on_error=on_error)
    per_class = factor * RECIPES[name].default_per_class
    extra = load_generated(make_dataset(name, per_class=per_class, seed=EXTRA_SEED), sample_rate_hz)
    return with_more_train(base, extra, factor)
