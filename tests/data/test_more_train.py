"""more:NAME: extra train-split clips of a generated recipe, validation and test untouched, no test voice."""

from __future__ import annotations

import numpy as np
import pytest

from audio_nas.data import load_dataset
from audio_nas.data import more_train as mt
from audio_nas.data.dataset import SPLIT_IDS
from audio_nas.data.synthetic import _split_of, load_generated, make_dataset
from audio_nas.errors import DataError


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """The same recipe at seed 0 (the base) and seed 1 (the extra), 4 clips per class each."""
    root = tmp_path_factory.mktemp("more")
    base = load_generated(make_dataset("synth-kws", per_class=4, seed=0, out_dir=root / "s0", progress=False))
    extra = load_generated(
        make_dataset("synth-kws", per_class=8, seed=1, out_dir=root / "s1", progress=False)
    )
    return base, extra


def test_extra_clips_are_train_voices_only_and_validation_test_stay_clip_for_clip(tiny_pair):
    base, extra = tiny_pair
    more = mt.with_more_train(base, extra, 2)
    n_train_extra = int((extra.split == SPLIT_IDS["train"]).sum())
    assert len(more) == len(base) + n_train_extra and n_train_extra > 0
    np.testing.assert_array_equal(more.waveforms[: len(base)], base.waveforms)
    for split in ("validation", "test"):
        np.testing.assert_array_equal(more.subset(split).waveforms, base.subset(split).waveforms)
        np.testing.assert_array_equal(more.subset(split).labels, base.subset(split).labels)
    added = more.groups[len(base) :]
    # the generators split by voice: every added clip's voice (or source id) hashes to train
    assert {_split_of(g) for g in added} == {"train"}
    assert (more.split[len(base) :] == SPLIT_IDS["train"]).all()
    assert more.name == "more:2:synth-kws" and more.content_hash not in (
        base.content_hash,
        extra.content_hash,
    )


def test_more_is_loadable_by_name_with_a_factor(tiny_pair, monkeypatch):
    base, extra = tiny_pair
    asked = {}

    def fake_make(name, per_class=None, seed=0, **_):
        asked.update(name=name, per_class=per_class, seed=seed)
        return "extra-dir"

    monkeypatch.setattr(mt, "make_dataset", fake_make)
    monkeypatch.setattr(mt, "load_generated", lambda path, sr=16_000: extra)
    monkeypatch.setattr(mt, "load_dataset", lambda name, **_: base)
    ds = load_dataset("more:3:synth-kws")
    assert asked == {"name": "synth-kws", "per_class": 900, "seed": mt.EXTRA_SEED}
    assert len(ds) > len(base)
    load_dataset("more:synth-kws")
    assert asked["per_class"] == mt.DEFAULT_FACTOR * 300


@pytest.mark.parametrize(
    "inner, match",
    [
        ("speech-commands:/x", "can only be generated for"),
        ("kws:data/x", "can only be generated"),
        ("0:synth-kws", ">= 1"),
    ],
)
def test_more_refuses_what_it_cannot_regenerate_and_says_what_to_do(inner, match):
    with pytest.raises(DataError, match=match):
        mt.parse_more(inner)


def _make(out: str) -> None:
    make_dataset("synth-kws", per_class=2, seed=3, out_dir=out, progress=False, workers=1)


def test_two_processes_making_the_same_set_at_once_both_get_it_whole(tmp_path):
    """more:NAME in two trainings started together: one generates, the other waits and reuses."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_make, args=(str(tmp_path / "s3"),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    ds = load_generated(tmp_path / "s3")
    assert len(ds) == 24 and not (tmp_path / "s3.partial").exists()


def test_a_generation_that_fails_leaves_nothing_behind_and_a_finished_one_is_reused(tmp_path):
    from audio_nas.data.synthetic import generation_dir

    out, want = tmp_path / "set", {"name": "x", "seed": 0}
    with pytest.raises(RuntimeError):
        with generation_dir(out, want, lambda m: "?", "x") as tmp:
            (tmp / "half.wav").write_bytes(b"..")
            raise RuntimeError("interrupted")
    assert not out.exists() and not (tmp_path / "set.partial").exists()
    with generation_dir(out, want, lambda m: "?", "x") as tmp:
        (tmp / "manifest.json").write_text('{"name": "x", "seed": 0}')
    with generation_dir(out, want, lambda m: "?", "x") as tmp:
        assert tmp is None  # reused
    with pytest.raises(DataError, match="holds a set of seed 0; asked for seed 1"):
        with generation_dir(out, {"name": "x", "seed": 1}, lambda m: f"a set of seed {m['seed']}", "seed 1"):
            pass


def test_only_generates_the_asked_classes_with_the_same_audio_and_labels(tmp_path, tiny_pair):
    _, extra = tiny_pair  # seed 1, 8 per class, every class
    path = make_dataset(
        "synth-kws", per_class=8, seed=1, out_dir=tmp_path / "u", progress=False, only=("_unknown_",)
    )
    only = load_generated(path)
    assert only.class_names == extra.class_names and len(only) == 8
    assert {only.class_names[i] for i in only.labels} == {"_unknown_"}
    unknown = extra.labels == extra.class_names.index("_unknown_")
    np.testing.assert_array_equal(only.waveforms, extra.waveforms[unknown])  # clip i of a class is clip i
    with pytest.raises(DataError, match="holds"):  # the same directory asked for all classes: refused
        make_dataset("synth-kws", per_class=8, seed=1, out_dir=path, progress=False)
    with pytest.raises(DataError, match="has no class banana"):
        make_dataset("synth-kws", per_class=1, out_dir=tmp_path / "b", progress=False, only=("banana",))


def test_unknown_adds_unknown_clips_at_its_own_seed_and_composes_with_more(tiny_pair, monkeypatch):
    base, extra = tiny_pair
    asked = {}

    def fake_make(name, per_class=None, seed=0, only=None, **_):
        asked.update(name=name, per_class=per_class, seed=seed, only=only)
        return "extra-dir"

    monkeypatch.setattr(mt, "make_dataset", fake_make)
    monkeypatch.setattr(mt, "load_generated", lambda path, sr=16_000: extra)
    monkeypatch.setattr(mt, "load_dataset", lambda name, **_: base)
    ds = load_dataset("unknown:more:synth-kws")
    assert asked == {"name": "synth-kws", "per_class": 2400, "seed": mt.UNKNOWN_SEED, "only": ("_unknown_",)}
    assert ds.name == "unknown:8:synth-kws" and len(ds) > len(base)
    load_dataset("unknown:2:synth-kws")
    assert asked["per_class"] == 600
    for bad in ("unknown:synth-events", "unknown:kws:data/x"):
        with pytest.raises(DataError, match="_unknown_ clips can only be generated"):
            load_dataset(bad)
