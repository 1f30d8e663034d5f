"""Training windows cut from train-split long streams: train split only, labelled by what lies in them."""

from __future__ import annotations

import numpy as np
import pytest

from audio_nas.data import DATASETS, KWS12_CLASSES
from audio_nas.data.dataset import SPLIT_IDS
from audio_nas.data.long_stream import build_long_stream
from audio_nas.data.stream_windows import (
    KEYWORD_WINDOWS_PER_EVENT,
    cut_windows,
    parse_stream_windows,
    with_stream_windows,
)
from audio_nas.errors import DataError

SR = 16_000


def test_windows_go_to_the_train_split_only_and_are_deterministic(tone_kws):
    ds = tone_kws()
    a = with_stream_windows(ds, hours=1 / 60)
    b = with_stream_windows(ds, hours=1 / 60)
    assert a.content_hash == b.content_hash != ds.content_hash
    assert np.array_equal(a.waveforms, b.waveforms) and np.array_equal(a.labels, b.labels)
    n = len(ds.labels)
    assert len(a.labels) > n and (a.split[n:] == SPLIT_IDS["train"]).all()
    for split in ("validation", "test"):
        old, new = ds.subset(split), a.subset(split)
        assert np.array_equal(old.waveforms, new.waveforms) and np.array_equal(old.labels, new.labels)
    assert a.name == "stream-windows:0.0166667:tiny-kws" and len(a.groups) == len(a.labels)
    assert with_stream_windows(ds, hours=1 / 60, seed=1).content_hash != a.content_hash


def test_each_window_is_labelled_by_what_lies_in_it(tone_kws):
    ds = tone_kws()
    stream = build_long_stream(ds, "train", negative_hours=1 / 60, events_per_hour=1200, seed=0)
    x, y, kinds, starts, spans = cut_windows(stream, ds.class_names, SR, seed=0)
    names = list(ds.class_names)
    spans_ = [(round(e.onset_s * SR), round(e.offset_s * SR), e.label) for e in stream.events]
    assert kinds.count("keyword") == KEYWORD_WINDOWS_PER_EVENT * len(spans_) > 0
    assert kinds.count("partial") > 0 and kinds.count("negative") >= 50
    for window, label, kind, a, span in zip(x, y, kinds, starts, spans):
        assert np.array_equal(window, stream.audio[a : a + SR])
        covered = [min(off, a + SR - 1) - max(on, a) for on, off, _ in spans_]
        share = [max(0, c) / max(1, off - on) for c, (on, off, _) in zip(covered, spans_)]
        if kind == "keyword":
            i = int(np.argmax(share))
            assert share[i] == pytest.approx(1.0) and names[label] == spans_[i][2]
            assert tuple(span) == (spans_[i][0] - a, spans_[i][1] - a)
        elif kind == "partial":
            assert 0.1 < max(share) < 0.6 and names[label] == "_unknown_"
        else:
            assert max(share) == 0 and names[label] in ("_unknown_", "_silence_")
        if kind != "keyword":
            assert tuple(span) == (-1, -1)


def test_names_and_refusals(tone_kws):
    assert "stream-windows" in DATASETS
    assert parse_stream_windows("synth-kws") == (1.0, "synth-kws")
    assert parse_stream_windows("2:more:synth-kws") == (2.0, "more:synth-kws")
    assert parse_stream_windows("kws:data/kws-x") == (1.0, "kws:data/kws-x")
    with pytest.raises(DataError, match="hours"):
        parse_stream_windows("0:synth-kws")
    no_unknown = tuple(c for c in KWS12_CLASSES if c != "_unknown_")
    with pytest.raises(DataError, match="no _unknown_ class"):
        with_stream_windows(tone_kws(classes=no_unknown), hours=1 / 60)
