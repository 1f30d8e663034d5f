"""More training clips for a generated dataset, with its validation and test splits untouched (issue 17).

The embedded keyword set is small (synth-kws: 2,447 train clips, ~200 per class), and what an always-on
model needs most is more, and more varied, examples of every class. ``more:NAME`` is NAME plus the
train-split clips of the same recipe generated again with another seed at ``factor`` x its default clips
per class: ``more:synth-kws`` (factor 4), ``more:8:synth-kws``. The generators split by voice (a stable
hash of the voice name, or of the source id), so the added clips are new utterances of *train* voices
only: no validation or test voice is heard, validation and test stay clip for clip as they were, and so
does every long stream built from them. The extra set is generated once into ``data/NAME-nN-s1/`` (as
``audio-nas data make NAME --per-class N --seed 1`` would) and reused.

``unknown:NAME`` / ``unknown:K:NAME`` adds only ``_unknown_`` clips (K x, default 8 x, the recipe's
default per class, generated at seed 2 into ``data/NAME-nN-s2-only-unknown/``). The class is 25 different
words, each with 1/25 of a keyword's clips, and it is where an always-on model's false alarms come from
(non-keyword words scoring as keywords); NAME may itself be ``more:...`` (``unknown:more:synth-kws``).

Only the generated recipes (``synth-kws``, ``synth-events``) can be regenerated; for a recorded set the
way to more training data is more recordings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from audio_nas.data.dataset import SPLIT_IDS, AudioDataset, load_dataset, register_dataset
from audio_nas.data.synthetic import RECIPES, load_generated, make_dataset
from audio_nas.errors import DataError

DEFAULT_FACTOR = 4
EXTRA_SEED = 1  # the base sets are seed 0; any other seed draws new clips of the same recipe
UNKNOWN_SEED = 2  # unknown: draws its _unknown_ clips at another seed again, so they add to more:'s
DEFAULT_UNKNOWN_FACTOR = 8


def parse_more(inner: str, kind: str = "more", default: int = DEFAULT_FACTOR) -> tuple[int, str]:
    """``"synth-kws"`` -> (4, "synth-kws"); ``"8:synth-kws"`` -> (8, "synth-kws")."""
    head, _, rest = inner.partition(":")
    if rest and head.isdigit():
        factor, name = int(head), rest
    else:
        factor, name = default, inner
    if factor < 1:
        raise DataError(f"{kind}:{inner}: the factor must be a whole number >= 1, got {factor}")
    if kind == "more" and name not in RECIPES:
        raise DataError(
            f"{kind}:{inner}: more training clips can only be generated for {', '.join(RECIPES)} "
            f"(got {name!r}); for a recorded or kws:DIR set, record or generate a larger set instead"
        )
    return factor, name


def with_more_train(base: AudioDataset, extra: AudioDataset, factor: int, kind: str = "more") -> AudioDataset:
    """``base`` with ``extra``'s train-split clips appended to its train split (named kind:factor:base)."""
    if extra.class_names != base.class_names or extra.sample_rate_hz != base.sample_rate_hz:
        raise DataError(
            f"{kind}:{base.name}: the extra set's classes or sample rate differ from the base set's"
        )
    keep = extra.split == SPLIT_IDS["train"]
    digest = hashlib.sha256(f"{base.content_hash}:{kind}:{extra.content_hash}".encode())
    return base.with_train_clips(
        name=f"{kind}:{factor}:{base.name}",
        content_hash=digest.hexdigest(),
        waveforms=extra.waveforms[keep],
        labels=extra.labels[keep],
        groups=None if extra.groups is None else extra.groups[keep],
        spans=None if extra.spans is None else extra.spans[keep],
    )


@register_dataset("more")
def _load(inner: str | Path, *, sample_rate_hz: int = 16_000, clip_ms=None, on_error="raise") -> AudioDataset:
    factor, name = parse_more(str(inner))
    base = load_dataset(name, sample_rate_hz=sample_rate_hz, clip_ms=clip_ms, on_error=on_error)
    per_class = factor * RECIPES[name].default_per_class
    extra = load_generated(make_dataset(name, per_class=per_class, seed=EXTRA_SEED), sample_rate_hz)
    return with_more_train(base, extra, factor)


@register_dataset("unknown")
def _load_unknown(
    inner: str | Path, *, sample_rate_hz: int = 16_000, clip_ms=None, on_error="raise"
) -> AudioDataset:
    factor, name = parse_more(str(inner), kind="unknown", default=DEFAULT_UNKNOWN_FACTOR)
    recipe = name.rsplit(":", 1)[-1]
    if recipe not in RECIPES or "_unknown_" not in RECIPES[recipe].classes:
        raise DataError(
            f"unknown:{inner}: more _unknown_ clips can only be generated for a recipe with that class "
            f"({', '.join(r for r in RECIPES if '_unknown_' in RECIPES[r].classes)}), alone or under more: "
            f"(unknown:more:synth-kws); got {name!r}"
        )
    base = load_dataset(name, sample_rate_hz=sample_rate_hz, clip_ms=clip_ms, on_error=on_error)
    per_class = factor * RECIPES[recipe].default_per_class
    path = make_dataset(recipe, per_class=per_class, seed=UNKNOWN_SEED, only=("_unknown_",))
    return with_more_train(base, load_generated(path, sample_rate_hz), factor, kind="unknown")
