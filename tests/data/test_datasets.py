"""Synthetic datasets and real-dataset loaders on tiny fixtures in the real on-disk layouts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from audio_nas.data import KWS12_CLASSES, load_dataset, make_dataset
from audio_nas.data.synthetic import EVENT_CLASSES, load_generated
from audio_nas.errors import DataError

pytestmark = pytest.mark.xdist_group("data")


@pytest.fixture(scope="module")
def tiny_kws(tmp_path_factory):
    return make_dataset(
        "synth-kws",
        per_class=6,
        seed=3,
        out_dir=tmp_path_factory.mktemp("kws") / "k",
        progress=False,
        workers=2,
    )


def test_synth_kws_classes_shape_and_manifest(tiny_kws):
    ds = load_generated(tiny_kws)
    assert ds.class_names == KWS12_CLASSES
    assert ds.waveforms.shape == (72, 16000) and ds.sample_rate_hz == 16000
    assert np.abs(ds.waveforms).max() <= 1.0
    meta = json.loads((tiny_kws / "manifest.json").read_text())
    assert meta["content_hash"] == ds.content_hash and meta["n_clips"] == 72
    rows = list(csv.DictReader(open(tiny_kws / "manifest.csv")))
    assert len(rows) == 72 and all((tiny_kws / r["path"]).exists() for r in rows)
    # speech clips are not silent; silence clips are quieter than speech on average
    rms = np.sqrt((ds.waveforms**2).mean(axis=1))
    assert rms[ds.labels == 0].mean() > rms[ds.labels == 11].mean()


def test_synth_kws_split_by_voice_is_disjoint(tiny_kws):
    ds = load_generated(tiny_kws)
    speech = ds.labels != 11
    voices = {s: set(ds.groups[speech & (ds.split == s)]) for s in range(3)}
    assert (
        voices[0]
        and not (voices[0] & voices[2])
        and not (voices[0] & voices[1])
        and not (voices[1] & voices[2])
    )


def test_determinism_and_seed_sensitivity(tmp_path, tiny_kws):
    again = load_generated(
        make_dataset("synth-kws", per_class=6, seed=3, out_dir=tmp_path / "a", progress=False, workers=1)
    )
    other = load_generated(
        make_dataset("synth-kws", per_class=6, seed=4, out_dir=tmp_path / "b", progress=False, workers=2)
    )
    first = load_generated(tiny_kws)
    # 1 vs 2 workers: the same recipe for every clip (class, voice, split) ...
    assert (again.labels == first.labels).all() and (again.split == first.split).all()
    assert (again.groups == first.groups).all()
    # ... background-only clips are bit-identical, and the speech nearly so (espeak-ng keeps
    # per-process state; see the synthetic module doc)
    silence = first.labels == 11
    assert np.array_equal(again.waveforms[silence], first.waveforms[silence])
    same = (again.waveforms == first.waveforms).all(axis=1)
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(again.waveforms, first.waveforms)]
    assert same.mean() >= 0.6 and np.median(corr) > 0.95
    assert (other.groups != first.groups).any()
    assert other.content_hash != first.content_hash


def test_existing_directory_with_other_recipe_is_refused(tiny_kws):
    assert make_dataset("synth-kws", per_class=6, seed=3, out_dir=tiny_kws, progress=False) == tiny_kws
    with pytest.raises(DataError, match="per_class=6, seed=3.*asked for per_class=7"):
        make_dataset("synth-kws", per_class=7, seed=3, out_dir=tiny_kws, progress=False)


def test_tampered_dataset_fails_hash_check(tmp_path):
    p = make_dataset("synth-events", per_class=2, seed=1, out_dir=tmp_path / "e", progress=False, workers=1)
    w = np.load(p / "waveforms.int16.npy")
    w[0, :100] = 0
    np.save(p / "waveforms.int16.npy", w)
    with pytest.raises(DataError, match="content hash"):
        load_generated(p)


def test_synth_events_classes(tmp_path):
    p = make_dataset("synth-events", per_class=3, seed=0, out_dir=tmp_path / "ev", progress=False, workers=2)
    ds = load_generated(p)
    assert ds.class_names == EVENT_CLASSES and len(ds.class_names) >= 8
    assert np.bincount(ds.labels).tolist() == [3] * len(EVENT_CLASSES)
    assert np.isfinite(ds.waveforms).all() and (np.abs(ds.waveforms).max(axis=1) > 0.1).all()


def test_unknown_dataset_lists_names():
    with pytest.raises(DataError, match="synth-kws"):
        load_dataset("imagenet")


# ---------------------------------------------------------------- real layouts (fixtures)


def tone(sr=16000, seconds=1.0, f=440.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * f * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_speech_commands_layout(tmp_path):
    root = tmp_path / "speech_commands_v0.02"
    files = {
        "yes": ["aa11_nohash_0.wav", "bb22_nohash_0.wav", "cc33_nohash_0.wav"],
        "stop": ["aa11_nohash_1.wav", "dd44_nohash_0.wav"],
        "cat": ["ee55_nohash_0.wav", "ff66_nohash_0.wav"],
    }
    for word, names in files.items():
        (root / word).mkdir(parents=True)
        for n in names:
            sf.write(root / word / n, tone(), 16000)
    (root / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nstop/dd44_nohash_0.wav\n")
    (root / "_background_noise_").mkdir()
    sf.write(
        root / "_background_noise_" / "white_noise.wav", np.random.default_rng(0).normal(0, 0.1, 48000), 16000
    )
    ds = load_dataset(f"speech-commands:{root}")
    assert ds.class_names == KWS12_CLASSES
    names = [KWS12_CLASSES[i] for i in ds.labels]
    assert names.count("yes") == 3 and names.count("stop") == 2 and names.count("_unknown_") == 2
    assert names.count("_silence_") >= 3  # at least one per split
    yes_split = sorted(int(s) for s, l in zip(ds.split, ds.labels) if l == 0)
    assert yes_split == [0, 1, 2]


def test_speech_commands_missing_list_is_named(tmp_path):
    (tmp_path / "yes").mkdir()
    with pytest.raises(DataError, match="validation_list.txt"):
        load_dataset(f"speech-commands:{tmp_path}")


def test_esc50_layout_resamples_stereo_44k(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "meta").mkdir()
    rows = [("1-1-A-0.wav", 1, 0, "dog"), ("4-2-A-1.wav", 4, 1, "rooster"), ("5-3-A-0.wav", 5, 0, "dog")]
    for fn, *_ in rows:
        sf.write(tmp_path / "audio" / fn, tone(44100, 5.0, channels=2), 44100)
    with open(tmp_path / "meta" / "esc50.csv", "w") as fh:
        fh.write("filename,fold,target,category,esc10,src_file,take\n")
        for fn, fold, target, cat in rows:
            fh.write(f"{fn},{fold},{target},{cat},False,x,A\n")
    ds = load_dataset(f"esc50:{tmp_path}")
    assert ds.class_names == ("dog", "rooster")
    assert ds.waveforms.shape == (3, 80000)
    assert ds.split.tolist() == [0, 1, 2]
    # a 440 Hz tone resampled from 44.1 kHz stereo keeps its frequency
    spec = np.abs(np.fft.rfft(ds.waveforms[0]))
    assert abs(np.argmax(spec) * 16000 / 80000 - 440) < 2


def test_folder_layout_with_flac_and_ogg(tmp_path):
    for c, ext in [("bark", "flac"), ("meow", "ogg")]:
        (tmp_path / c).mkdir()
        for i in range(3):
            sf.write(tmp_path / c / f"{i}.{ext}", tone(22050, 0.5), 22050)
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.class_names == ("bark", "meow") and len(ds) == 6
    assert ds.waveforms.shape[1] == 16000  # 0.5 s padded to the 1 s clip


def test_csv_manifest_with_split_and_bad_inputs(tmp_path):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    sf.write(tmp_path / "b.wav", tone(8000), 8000)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    man = tmp_path / "m.csv"
    man.write_text(
        "path,label,split\na.wav,x,train\nb.wav,y,test\nempty.wav,x,train\ncorrupt.wav,y,validation\n"
    )
    with pytest.raises(DataError, match="empty.wav.*empty"):
        load_dataset(f"csv:{man}")
    ds = load_dataset(f"csv:{man}", on_error="skip")
    assert len(ds) == 2 and ds.split.tolist() == [0, 2]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.wav,x\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['path'\]"):
        load_dataset(f"csv:{bad}")
    unk = tmp_path / "unk.csv"
    unk.write_text("path,label,split\na.wav,x,train\n")
    from audio_nas.data.loaders import load_csv

    with pytest.raises(DataError, match="line 2: unknown label 'x'"):
        load_csv(unk, class_names=("y", "z"))
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0), 16000)
    z = tmp_path / "z.csv"
    z.write_text("path,label\nzero.wav,x\n")
    with pytest.raises(DataError, match="zero.wav"):
        load_dataset(f"csv:{z}")


def test_corrupt_file_error_names_file(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.wav").write_bytes(b"not audio at all" * 50)
    with pytest.raises(DataError, match="bad.wav: cannot decode audio"):
        load_dataset(f"folder:{tmp_path}")
