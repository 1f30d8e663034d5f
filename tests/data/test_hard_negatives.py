"""Hard negatives for always-on training: added to the train split only, deterministic, loadable by name."""

from __future__ import annotations

import numpy as np
import pytest

from audio_nas.data import DATASETS, KWS12_CLASSES, load_dataset
from audio_nas.data.dataset import SPLIT_IDS, active_span
from audio_nas.data.hard_negatives import HARD_NEGATIVE_KINDS, with_hard_negatives
from audio_nas.errors import DataError

SR = 16_000


def test_hard_negatives_go_to_the_train_split_only_with_background_labels(tone_kws):
    ds = tone_kws()
    hn = with_hard_negatives(ds, per_kind=2.0, seed=0)
    n_each = round(2.0 * (ds.split == 0).sum() / len(ds.class_names))
    added = len(hn) - len(ds)
    assert added == n_each * len(HARD_NEGATIVE_KINDS)
    # the original clips, validation and test untouched and in place
    np.testing.assert_array_equal(hn.waveforms[: len(ds)], ds.waveforms)
    np.testing.assert_array_equal(hn.labels[: len(ds)], ds.labels)
    for split in ("validation", "test"):
        np.testing.assert_array_equal(hn.subset(split).waveforms, ds.subset(split).waveforms)
    assert (hn.split[len(ds) :] == SPLIT_IDS["train"]).all()
    new_labels = {KWS12_CLASSES[i] for i in hn.labels[len(ds) :]}
    assert new_labels == {"_unknown_", "_silence_"}
    assert hn.content_hash != ds.content_hash and hn.name == "negatives:tiny-kws"
    assert len(hn.groups) == len(hn) and np.abs(hn.waveforms).max() <= 1.0


def test_hard_negatives_are_deterministic_and_depend_on_the_seed(tone_kws):
    ds = tone_kws()
    a, b = with_hard_negatives(ds, seed=3), with_hard_negatives(ds, seed=3)
    np.testing.assert_array_equal(a.waveforms, b.waveforms)
    assert a.content_hash == b.content_hash
    c = with_hard_negatives(ds, seed=4)
    assert not np.array_equal(a.waveforms, c.waveforms) and a.content_hash != c.content_hash


def test_partial_keywords_hold_less_than_the_whole_word(tone_kws):
    ds = tone_kws()
    hn = with_hard_negatives(ds, per_kind=1.0)
    n_each = (len(hn) - len(ds)) // len(HARD_NEGATIVE_KINDS)
    partial = hn.waveforms[len(ds) : len(ds) + n_each]
    for x in partial:
        on, off = active_span(x, rel_threshold=0.2)
        assert off - on < 0.6 * 4000 + 400  # at most 60 % of the 4000-sample word, plus fade slack


def test_negatives_prefix_loads_any_registered_dataset(monkeypatch, tone_kws):
    ds = tone_kws()
    monkeypatch.setitem(DATASETS, "tiny-kws", lambda root, **kw: ds)
    hn = load_dataset("negatives:tiny-kws")
    assert hn.name == "negatives:tiny-kws" and len(hn) > len(ds)


def test_a_dataset_without_background_classes_is_refused_with_the_reason(tone_kws):
    ds = tone_kws(classes=("siren", "dog", "background"))
    with pytest.raises(DataError, match="no _unknown_ or _silence_ class"):
        with_hard_negatives(ds)
    with pytest.raises(DataError, match="per_kind must be > 0"):
        with_hard_negatives(tone_kws(), per_kind=0)


def test_active_span_of_a_silent_clip_is_the_whole_clip():
    assert active_span(np.zeros(100)) == (0, 99)
    x = np.zeros(100)
    x[20:30] = 1.0
    assert active_span(x) == (20, 29)
