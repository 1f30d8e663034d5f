"""``kws``: keyword sets from text -- word validation, engines, augmentations, hard negatives, determinism."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
import scipy.signal as sps
import soundfile as sf

from audio_nas.data import augment as aug
from audio_nas.data import kws
from audio_nas.data.engines import ENGINES, get_engine, phonemes
from audio_nas.data.words import parse_keywords, parse_word_list, plan_negatives
from audio_nas.errors import DataError

pytestmark = pytest.mark.xdist_group("data")
needs_flite = pytest.mark.skipif(
    shutil.which("flite") is None, reason="the `flite` binary is not installed (apt-get install -y flite)"
)


# --------------------------------------------------------------------------------------
# words
# --------------------------------------------------------------------------------------


def test_keywords_normalised():
    assert parse_keywords(" Hey  Nova , lights on,stop ") == ("hey nova", "lights on", "stop")
    assert kws.KwsArgs(("hey nova", "stop")).classes == ("hey_nova", "stop", "_unknown_", "_silence_")


@pytest.mark.parametrize(
    "words, message",
    [
        ("", "is empty"),
        (" , ", "is empty"),
        ("yes,,no", "entry 2 is empty"),
        ("stop,Stop", "given twice"),
        ("_unknown_", "collides"),
        ("silence", "collides"),
        ("café", "cannot be spoken"),
        ("7up", "numbers as words"),
        ("hey_nova", "cannot be spoken"),
        ("on,lights on", "is part of keyword"),
    ],
)
def test_keyword_errors(words, message):
    with pytest.raises(DataError, match=message):
        parse_keywords(words)


def test_negative_that_sounds_like_a_keyword_is_refused():
    with pytest.raises(DataError, match="sounds like keyword 'no'"):
        plan_negatives(("no", "stop"), parse_word_list("know,table", "--negatives"))


def test_negatives_leave_out_homophones_and_find_near_misses():
    plan = plan_negatives(parse_keywords("right,off,hey nova"))
    assert "write" in plan.excluded and "write" not in plan.other_words  # same phonemes as "right"
    assert "right" not in plan.other_words
    near = dict(zip(plan.keywords, plan.near_misses))
    assert {"often", "office"} <= set(near["off"])  # start like "off"
    assert {"hey", "nova"} <= set(near["hey nova"])  # the words of a multi-word keyword
    assert phonemes(["no", "know"])["no"] == phonemes(["know"])["know"]


def test_engine_errors():
    with pytest.raises(DataError, match="unknown engine"):
        kws.parse_engines("espeak,marytts")
    with pytest.raises(DataError, match="unknown TTS engine 'marytts'; engines: espeak, flite, festival, pi"):
        get_engine("marytts")


# --------------------------------------------------------------------------------------
# engines and augmentations
# --------------------------------------------------------------------------------------


@needs_flite
def test_flite_engine_speaks():
    eng = get_engine("flite")
    voices = eng.voices()
    assert len(voices) == 75 and all(v.startswith("flite:") for v in voices)
    x = eng.speak("lights on", "flite:slt+f1.00+w1.06", np.random.default_rng(0))
    assert x.dtype == np.float32 and 3000 < len(x) < 16000 and np.isfinite(x).all() and np.abs(x).max() > 0.05
    y = eng.speak("lights on", "flite:slt+f1.00+w1.06", np.random.default_rng(0))
    assert np.array_equal(x, y)  # flite is deterministic


needs_festival = pytest.mark.skipif(
    not ENGINES["festival"]().available(),
    reason="no festival or no English voice for it (apt-get install -y festival festvox-kallpc16k)",
)


@needs_festival
def test_festival_engine_speaks_each_base_voice():
    eng = get_engine("festival")
    voices = eng.voices()
    assert all(v.startswith("festival:") for v in voices) and len(set(voices)) == len(voices)
    for base in sorted({v.split(":")[1].split("+")[0] for v in voices}):
        voice = next(v for v in voices if v.startswith(f"festival:{base}+"))
        x = eng.speak("lights on", voice, np.random.default_rng(0))
        assert (
            x.dtype == np.float32
            and 3000 < len(x) < 24000
            and np.isfinite(x).all()
            and np.abs(x).max() > 0.05
        )
        assert np.array_equal(x, eng.speak("lights on", voice, np.random.default_rng(0)))  # deterministic


needs_pico = pytest.mark.skipif(not ENGINES["pico"]().available(), reason="no ttspico (pip install ttspico)")


@needs_pico
def test_pico_engine_speaks_both_voices_unclipped_and_deterministic():
    eng = get_engine("pico")
    voices = eng.voices()
    assert len(voices) == 30 and {v.split(":")[1].split("+")[0] for v in voices} == {"en-US", "en-GB"}
    for voice in ("pico:en-US+f0.85+w0.94", "pico:en-GB+f1.20+w1.06"):
        x = eng.speak("lights on", voice, np.random.default_rng(0))
        assert x.dtype == np.float32 and 3000 < len(x) < 24000 and 0.1 < np.abs(x).max() < 0.99
        assert np.array_equal(x, eng.speak("lights on", voice, np.random.default_rng(0)))
    with pytest.raises(DataError, match="pico has no voice 'de-DE'"):
        eng.speak("ja", "pico:de-DE+f1.00+w1.00", np.random.default_rng(0))


def test_missing_pico_names_the_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ttspico(name, *args, **kwargs):
        if name == "ttspico":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ttspico)
    with pytest.raises(DataError, match="pip install ttspico"):
        get_engine("pico")


needs_mbrola = pytest.mark.skipif(
    not ENGINES["mbrola"]().available(),
    reason="no MBROLA voices (Debian contrib/non-free: apt-get install -y mbrola mbrola-us1)",
)


@needs_mbrola
def test_mbrola_engine_speaks_its_installed_voices_deterministically():
    eng = get_engine("mbrola")
    voices = eng.voices()
    assert voices and all(v.startswith("mbrola:") for v in voices) and len(set(voices)) == len(voices)
    base = voices[0].split(":")[1].split("+")[0]
    voice = f"mbrola:{base}+f1.20+w0.94"
    x = eng.speak("lights on", voice, np.random.default_rng(0))
    assert x.dtype == np.float32 and 3000 < len(x) < 24000 and np.isfinite(x).all() and np.abs(x).max() > 0.05
    assert np.array_equal(x, eng.speak("lights on", voice, np.random.default_rng(0)))
    assert not np.array_equal(
        x, eng.speak("lights on", voice, np.random.default_rng(1))
    )  # rate, pitch jitter
    with pytest.raises(DataError, match="mbrola has no voice 'fr1'"):
        eng.speak("oui", "mbrola:fr1+f1.00+w1.00", np.random.default_rng(0))


def test_missing_mbrola_names_the_packages_and_the_licence(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="non-commercial.*apt-get install -y espeak-ng mbrola mbrola-us1"):
        get_engine("mbrola")


needs_rhvoice = pytest.mark.skipif(
    not ENGINES["rhvoice"]().available(),
    reason="no RHVoice (Debian non-free: apt-get install -y rhvoice rhvoice-english)",
)


@needs_rhvoice
def test_rhvoice_engine_speaks_its_installed_voices_deterministically():
    eng = get_engine("rhvoice")
    voices = eng.voices()
    assert voices and all(v.startswith("rhvoice:") for v in voices) and len(set(voices)) == len(voices)
    voice = "rhvoice:bdl+f1.20+w0.94"
    x = eng.speak("lights on", voice, np.random.default_rng(0))
    assert x.dtype == np.float32 and 3000 < len(x) < 24000 and np.isfinite(x).all() and np.abs(x).max() > 0.05
    assert np.array_equal(x, eng.speak("lights on", voice, np.random.default_rng(0)))
    assert not np.array_equal(x, eng.speak("lights on", voice, np.random.default_rng(1)))  # rate, pitch
    with pytest.raises(DataError, match="rhvoice has no voice 'anna'"):
        eng.speak("hello", "rhvoice:anna+f1.00+w1.00", np.random.default_rng(0))


def test_missing_rhvoice_names_the_packages_and_the_licence(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(DataError, match="non-commercial.*apt-get install -y rhvoice rhvoice-english"):
        get_engine("rhvoice")


def test_missing_festival_names_the_packages(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(DataError, match="apt-get install -y festival festvox-kallpc16k"):
        get_engine("festival")


def test_missing_flite_names_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(DataError, match="apt-get install -y flite"):
        get_engine("flite")
    assert set(ENGINES) >= {"espeak", "flite"}


def test_augmentations_shapes_and_values():
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(8000)).astype(np.float32)
    fast = aug.speed_perturb(x, 1.1)
    assert abs(len(fast) - 8000 / 1.1) < 3
    for y in (aug.vtlp(x, 1.1), aug.pitch_shift(x, 2.0), aug.channel_colour(x, rng), aug.room_reverb(x, rng)):
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert 0.2 < np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)) < 5
    assert np.array_equal(aug.vtlp(x, 1.0), x)
    with pytest.raises(DataError):
        aug.vtlp(x, 0.0)
    y = aug.augment_speech(x, np.random.default_rng(1))
    assert np.isfinite(y).all() and 0.8 * 8000 / 1.1 < len(y) < 1.2 * 8000 / 0.9


def test_lpc_vocoder_keeps_the_envelope_and_replaces_the_source():
    import librosa

    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    # a vowel-like sound: 120 Hz pulses through two formant resonances, then a noisy "s"
    src = (np.sin(2 * np.pi * 120 * t) > 0.995).astype(float)
    poles = [0.97 * np.exp(s * 2j * np.pi * f / 16000) for f in (700, 1200) for s in (1, -1)]
    vowel = sps.lfilter([1.0], np.poly(poles).real, src)
    x = np.concatenate([vowel / np.abs(vowel).max(), 0.3 * rng.standard_normal(4000)]).astype(np.float32)
    y = aug.lpc_vocode(x, np.random.default_rng(1))
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all() and not np.allclose(x, y)
    mel = [librosa.power_to_db(librosa.feature.melspectrogram(y=v, sr=16000, n_mels=40)) for v in (x, y)]
    assert np.corrcoef(mel[0].ravel(), mel[1].ravel())[0, 1] > 0.8  # same envelope over time
    assert np.array_equal(y, aug.lpc_vocode(x, np.random.default_rng(1)))  # the rng decides everything
    assert np.array_equal(aug.lpc_vocode(x[:100], rng), x[:100])  # shorter than a frame: unchanged


# --------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------


@needs_flite
def test_hard_negative_kinds(monkeypatch):
    plan = plan_negatives(parse_keywords("stop,go"))
    kws._worker_init(("flite",), plan)
    unknown = {kws._gen_one((0, 2, i))[3]["kind"] for i in range(30)}
    assert unknown == {"word", "near_miss", "partial_start", "partial_end", "shifted"}
    silence = [kws._gen_one((0, 3, i)) for i in range(12)]
    assert {s[3]["kind"] for s in silence} == {"noise", "babble", "quiet"}
    assert all(s[2].shape == (16000,) and np.isfinite(s[2]).all() for s in silence)
    # a shifted keyword lies at one edge of the clip: silence at the other
    rng = np.random.default_rng(0)
    x = kws._shifted(np.ones(8000), rng)
    inside = np.flatnonzero(x)
    assert 1600 <= len(inside) <= 4000 and (inside[0] == 0 or inside[-1] == 15999)


@needs_flite
def test_make_kws_deterministic_refuses_mixing_and_loads(tmp_path):
    a = kws.make_kws(
        "stop,go", per_class=2, engines="flite", out_dir=tmp_path / "a", workers=1, progress=False
    )
    b = kws.make_kws(
        "stop,go", per_class=2, engines="flite", out_dir=tmp_path / "b", workers=2, progress=False
    )
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert ma["content_hash"] == mb["content_hash"]  # flite: the same audio whatever the worker count
    assert (a / "manifest.csv").read_text() == (b / "manifest.csv").read_text()
    assert ma["classes"] == ["stop", "go", "_unknown_", "_silence_"] and ma["n_clips"] == 8
    rows = list(csv.DictReader(open(a / "manifest.csv")))
    assert set(rows[0]) == set(kws.MANIFEST_FIELDS) and {r["engine"] for r in rows} == {"flite", ""}
    assert kws.make_kws("stop,go", per_class=2, engines="flite", out_dir=a, progress=False) == a  # reused
    with pytest.raises(DataError, match="other arguments"):
        kws.make_kws("stop,go", per_class=2, seed=1, engines="flite", out_dir=a, progress=False)
    from audio_nas.data import load_dataset

    ds = load_dataset(f"kws:{a}")
    assert ds.content_hash == ma["content_hash"] and ds.class_names == tuple(ma["classes"])
    assert ds.waveforms.shape == (8, 16000)


@needs_flite
def test_vocoder_changes_train_voices_only_and_names_itself(tmp_path):
    plain = kws.make_kws(
        "stop,go", per_class=6, engines="flite", out_dir=tmp_path / "p", workers=1, progress=False
    )
    voc = kws.make_kws(
        "stop,go",
        per_class=6,
        engines="flite",
        out_dir=tmp_path / "v",
        workers=1,
        progress=False,
        vocoder=1.0,
    )
    meta = json.loads((voc / "manifest.json").read_text())
    assert meta["command"].endswith("--vocoder 1") and "vocoder" not in json.loads(
        (plain / "manifest.json").read_text()
    )
    rows = list(csv.DictReader(open(voc / "manifest.csv")))

    def same_draws(rs):  # spans are measured on the audio, so they may move a little
        return [{k: v for k, v in r.items() if k not in ("onset_sample", "offset_sample")} for r in rs]

    assert same_draws(rows) == same_draws(
        csv.DictReader(open(plain / "manifest.csv"))
    )  # voices, words, splits
    for r in rows:
        same = np.array_equal(sf.read(plain / r["path"])[0], sf.read(voc / r["path"])[0])
        assert same == (r["split"] == "test" or r["engine"] == ""), r  # test voices and _silence_ untouched
    assert kws.default_dir(kws.KwsArgs(keywords=("stop",), vocoder=0.3)).name.endswith("-voc0.3")
    with pytest.raises(DataError, match="--vocoder"):
        kws.make_kws("stop", vocoder=1.5, out_dir=tmp_path / "x", progress=False)


def test_split_by_voice_never_shares_voices():
    voices = [f"flite:v{i}" for i in range(75)]
    split = kws.split_voices(voices)
    counts = {s: sum(1 for v in split.values() if v == s) for s in ("train", "validation", "test")}
    assert counts == {"train": 53, "validation": 11, "test": 11}
    assert kws.split_voices(list(reversed(voices))) == split  # by name, not by order


def test_kws_needs_a_directory(tmp_path):
    from audio_nas.data import load_dataset

    with pytest.raises(DataError, match="kws needs a directory"):
        load_dataset("kws")
    with pytest.raises(DataError, match="audio-nas data make kws"):
        load_dataset(f"kws:{tmp_path}")


def test_cli_rejects_bad_words_and_kws_options_on_synth_kws():
    from typer.testing import CliRunner

    from audio_nas.cli import app

    r = CliRunner().invoke(app, ["data", "make", "kws", "--words", "yes,,no"])
    assert isinstance(r.exception, DataError) and "entry 2 is empty" in str(r.exception)
    r = CliRunner().invoke(app, ["data", "make", "synth-kws", "--words", "yes"])
    assert isinstance(r.exception, DataError) and "only apply to `data make kws`" in str(r.exception)
    r = CliRunner().invoke(app, ["data", "make", "kws"])
    assert isinstance(r.exception, DataError) and "needs --words" in str(r.exception)


# --------------------------------------------------------------------------------------
# synth-kws must not change (trained tables and figures are tied to its hash f1026ad5f383...)
# --------------------------------------------------------------------------------------


def test_synth_kws_recipe_unchanged():
    from audio_nas.data import synthetic

    assert synthetic.GENERATOR_VERSION == 1
    assert synthetic.RECIPES["synth-kws"].make_clip is synthetic._kws_clip
    ctx = {"voices": [], "voices_by_split": {"train": [], "validation": [], "test": []}}
    h = hashlib.sha256()
    clips = []
    for i in range(6):  # _silence_ clips 0-5 of seed 0 have no babble: pure numpy, bit-exact anywhere
        rng = np.random.default_rng(np.random.SeedSequence([0, 11, i]))
        audio, _, span = synthetic._kws_clip(11, i, rng, ctx)
        assert span is None  # a background clip has no foreground word
        q = np.round(np.clip(synthetic.fix_length(audio, 16000), -1, 1) * 32767).astype(np.int16)
        clips.append(q)
        h.update(q.tobytes())
    assert h.hexdigest() == "b5febedb270d2a2a19225f2957f9d431e063bbf1f328608321b7b391bf4e9ead"
    stored = synthetic.data_dir() / "synth-kws" / "waveforms.int16.npy"
    if stored.exists():  # the cached default set, when this checkout has it: the same samples
        # (not the same content hash: espeak-ng's audio varies between processes and machines, so a set
        # generated elsewhere hashes differently; these pure-numpy clips do not)
        meta = json.loads((stored.parent / "manifest.json").read_text())
        assert meta["generator_version"] == 1
        w = np.load(stored, mmap_mode="r")
        assert all(np.array_equal(clips[i], w[11 * 300 + i]) for i in range(6))


def test_default_directory_names(audio_nas_home):
    d = kws.default_dir(kws.KwsArgs(("hey nova", "lights on", "stop")))
    assert d.name == "kws-hey_nova-lights_on-stop-n200-s0"
    long = kws.KwsArgs(tuple(f"word{c}" for c in "abcdefghijk".replace("", " ").split()), engines=("flite",))
    name = kws.default_dir(long).name
    assert name.startswith("kws-worda-wordb-wordc-and8-") and name.endswith("-n200-s0-flite")
