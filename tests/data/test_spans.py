"""Word spans: the generator records where it placed each word; streams and hard negatives cut there."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from audio_nas.data import KWS12_CLASSES, AudioDataset
from audio_nas.data.dataset import active_span, appended_spans, spans_key
from audio_nas.data.hard_negatives import with_hard_negatives
from audio_nas.data.long_stream import build_long_stream
from audio_nas.data.synthetic import load_generated, make_dataset
from audio_nas.errors import DataError

SR = 16_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    return make_dataset("synth-kws", per_class=3, seed=0, out_dir=root / "s0", progress=False)


def test_the_generator_records_each_words_span_and_the_loader_reads_it(tiny):
    ds = load_generated(tiny)
    rows = list(csv.DictReader(open(tiny / "manifest.csv")))
    assert {"onset_sample", "offset_sample"} <= set(rows[0])
    background = np.isin(np.asarray(ds.class_names)[ds.labels], ["_silence_"])
    assert (ds.spans[background] == -1).all()
    words = ds.spans[~background]
    assert (words[:, 0] >= 0).all() and (words[:, 1] > words[:, 0]).all() and (words[:, 1] < SR).all()
    # the audio-only estimate covers the word but, in the mixed-in noise, usually more of the clip
    for i in np.flatnonzero(~background):
        on, off = active_span(ds.waveforms[i])
        assert ds.foreground_span(i) == tuple(ds.spans[i])
        assert off - on >= 0.5 * (ds.spans[i, 1] - ds.spans[i, 0])
    sub = ds.subset("test")
    assert np.array_equal(sub.spans, ds.spans[ds.split == 2])
    half = load_generated(tiny, sample_rate_hz=8000)
    assert np.array_equal(half.spans[~background], ds.spans[~background] // 2)


def _noisy(spans: bool) -> AudioDataset:
    """Keyword clips that are loud noise except a tone 'word' at 6000-8000: only a record finds the word."""
    rng = np.random.default_rng(0)
    wav, lab, split, sp = [], [], [], []
    for c, name in enumerate(KWS12_CLASSES):
        for s in range(3):
            for _ in range(3):
                x = rng.normal(0, 0.3, SR)
                if not name.startswith("_"):
                    x[6000:8000] += np.sin(np.arange(2000) * 0.2)
                wav.append(x)
                lab.append(c)
                split.append(s)
                sp.append((6000, 7999) if not name.startswith("_") else (-1, -1))
    return AudioDataset(
        "noisy", np.asarray(wav, np.float32), np.asarray(lab), np.asarray(split, np.uint8),
        KWS12_CLASSES, SR, "noisy", spans=np.asarray(sp) if spans else None,
    )  # fmt: skip


def test_streams_and_hard_negatives_use_the_record_and_fall_back_to_the_audio():
    known, estimated = _noisy(True), _noisy(False)
    assert known.foreground_span(0) == (6000, 7999)
    on, off = estimated.foreground_span(0)
    assert off - on > 8000  # the noise: the estimate is most of the clip
    a = build_long_stream(known, "test", negative_hours=1 / 60, events_per_hour=600, seed=0)
    b = build_long_stream(estimated, "test", negative_hours=1 / 60, events_per_hour=600, seed=0)
    assert [round(e.offset_s - e.onset_s, 3) for e in a.events] == [0.125] * len(a.events)
    assert all(e.offset_s - e.onset_s > 0.5 for e in b.events)
    assert a.composition()["sha256"] != b.composition()["sha256"]  # the near-misses are cut elsewhere
    hn_a, hn_b = with_hard_negatives(known), with_hard_negatives(estimated)
    assert hn_a.content_hash != hn_b.content_hash and spans_key(None) == "estimated"
    assert (hn_a.spans[len(known) :] == -1).all() and hn_b.spans is None


def test_spans_must_fit_the_clips_and_append_as_unknown():
    with pytest.raises(DataError, match="spans must be"):
        AudioDataset(
            "x", np.zeros((2, 10), np.float32), np.zeros(2, int), np.zeros(2, np.uint8), ("a",), SR, "x",
            spans=np.zeros((3, 2), int),
        )  # fmt: skip
    assert appended_spans(None, 2, None, 3) is None
    out = appended_spans(np.array([[1, 2]]), 1, None, 2)
    assert out.tolist() == [[1, 2], [-1, -1], [-1, -1]]


def test_data_make_kws_records_spans_too(tmp_path):
    from audio_nas.data import load_dataset
    from audio_nas.data.kws import make_kws

    path = make_kws("hey nova,stop", per_class=3, engines="espeak", out_dir=tmp_path / "k", progress=False)
    ds = load_dataset(f"kws:{path}")
    names = np.asarray(ds.class_names)[ds.labels]
    speech = ~np.isin(names, ["_silence_"])
    assert ds.spans is not None and (ds.spans[speech, 0] >= 0).all() and (ds.spans[~speech] == -1).all()
