"""`audio-nas data add-proxy`: teacher-labelled public proxy speech in a synthesised set's train split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from synth_helpers import OTHER_FRONTEND

from audio_nas.data.dataset import AudioDataset
from audio_nas.errors import ConfigError, DataError, TrainingError
from audio_nas.features.frontends import make_frontend
from audio_nas.features.synthset import load_synth_set
from audio_nas.training.checkpoint import load_checkpoint
from audio_nas.training.grow_synth import add_mixtures, merge_synth_sets
from audio_nas.training.portable_synth import (
    PARAMS_FILE,
    PROXY_FILE,
    RECIPE_FILE,
    MixtureRecipe,
    ProxyRecipe,
    Renderer,
    render_proxy,
    render_synth_features,
)
from audio_nas.training.proxy_speech import add_proxy, balanced_pick, keyword_clips


def _speech(n: int = 21, rate: int = 16_000, samples: int = 4800, seed: int = 0) -> AudioDataset:
    """Voiced-like clips of three 'words'; the third, 'a', is one of the tiny teacher's keywords."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    env = np.sin(np.pi * t / t[-1]) ** 2
    waves = [
        0.3 * env * np.sin(2 * np.pi * rng.uniform(100, 3000) * t) + 0.01 * rng.standard_normal(samples)
        for _ in range(n)
    ]
    return AudioDataset(
        name="proxy-test",
        waveforms=np.asarray(waves, np.float32),
        labels=np.arange(n) % 3,
        split=np.zeros(n, np.uint8),
        class_names=("x", "y", "a"),
        sample_rate_hz=rate,
        content_hash="test",
    )


@pytest.fixture(scope="module")
def sets(tiny_synth_sets):
    return tiny_synth_sets


def _teacher_logits(teacher, x: np.ndarray) -> np.ndarray:
    _, model, _ = load_checkpoint(teacher)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(np.array(x, np.float32))).numpy()


def test_proxy_examples_replace_mixtures_are_teacher_labelled_and_render_in_any_front_end(sets, tmp_path):
    s = sets.sf  # 12 inversions, 24 train + 4 validation mixtures
    before = (s.path / "features.npy").read_bytes()
    out = add_proxy(s.path, _speech(), 30, tmp_path / "px", replace_mixtures=10, seed=2, progress=False)
    p = load_synth_set(out)
    assert len(p.features.x) == 40 - 10 + 30 and p.n_proxy == 30 and p.n_mixtures == 14
    meta = p.manifest["proxy"]
    assert (meta["clips"], meta["alone"], meta["pairs"], meta["dropped_keyword_clips"]) == (14, 14, 16, 7)
    assert meta["replaced_mixtures"] == 10
    assert p.manifest["mixtures"]["validation"] == 4 and p.manifest["split_counts"] == {
        "train": 30 - 4 - 3 + 30,
        "validation": 7,
    }
    assert p.features.split[-30:].tolist() == [0] * 30  # proxy in the train split only
    # inversions kept in order; validation mixtures kept; only train mixtures dropped
    assert np.array_equal(np.asarray(p.features.x[:12]), np.asarray(s.features.x[:12]))
    assert (np.asarray(s.features.split) == 1).sum() == (np.asarray(p.features.split) == 1).sum()
    # the stored clips and recipe give the proxy rows; their labels are the teacher's on exactly those inputs
    recipe = ProxyRecipe.load(p.path / PROXY_FILE)
    assert len(recipe) == 30 and len(recipe.clips) == 14
    assert sorted(recipe.a[:14].tolist()) == list(range(14)) and (recipe.weight[:14] == 1).all()
    fe = p.features.frontend
    px = np.asarray(p.features.x[-30:])
    assert np.allclose(render_proxy(recipe, make_frontend(fe), slice(0, 30)), px, atol=1e-5)
    assert np.allclose(p.teacher_logits[-30:], _teacher_logits(sets.teacher, px), atol=1e-4)
    assert np.array_equal(p.features.labels[-30:], p.teacher_logits[-30:].argmax(1))
    # a clip alone is the proxy clip itself (int16-rounded)
    alone = recipe.audio(slice(0, 1))[0]
    clip = _speech().waveforms[[i for i in range(21) if i % 3 != 2][recipe.a[0]]]
    assert np.abs(alone - clip).max() < 1e-4
    # the kept mixtures' recipe still renders their rows
    with np.load(p.path / PARAMS_FILE) as z:
        params = {k: z[k] for k in z.files}
    mix = MixtureRecipe.load(p.path / RECIPE_FILE)
    assert len(mix) == 18
    r = Renderer(params, tuple(p.manifest["portable"]["span_s"]), fe)
    assert np.allclose(r.mixtures(mix).numpy(), np.asarray(p.features.x[12:30]), atol=1e-4)
    # another front-end renders the whole set; its proxy rows are that front-end's features of the audio
    other = render_synth_features(p, OTHER_FRONTEND, progress=False)
    assert other.x.shape == (60, *OTHER_FRONTEND.output_shape)
    expect = make_frontend(OTHER_FRONTEND)(recipe.audio(slice(0, 30)))
    assert np.allclose(np.asarray(other.x[-30:]), expect, atol=1e-5)
    assert (s.path / "features.npy").read_bytes() == before  # the source set is untouched


def test_the_same_seed_gives_the_same_set_and_another_seed_another(sets, tmp_path):
    s = sets.sf
    a = load_synth_set(add_proxy(s.path, _speech(), 20, tmp_path / "a", seed=1, progress=False))
    b = load_synth_set(add_proxy(s.path, _speech(), 20, tmp_path / "b", seed=1, progress=False))
    c = load_synth_set(add_proxy(s.path, _speech(), 20, tmp_path / "c", seed=2, progress=False))
    assert a.manifest["content_hash"] == b.manifest["content_hash"] != c.manifest["content_hash"]
    assert a.n_mixtures == 24 and len(a.features.x) == 60  # no --replace-mixtures: appended


def test_a_grid_set_takes_proxy_speech_in_the_teachers_front_end_only(sets, tmp_path):
    g = load_synth_set(add_proxy(sets.grid.path, _speech(), 16, tmp_path / "g", progress=False))
    assert g.n_proxy == 16 and (tmp_path / "g" / PROXY_FILE).exists()
    with pytest.raises(TrainingError, match="stores features only"):
        render_synth_features(g, OTHER_FRONTEND, progress=False)


def test_keyword_clips_catch_the_keywords_and_words_that_sound_like_them():
    hit = keyword_clips(["yes", "yes_please", "", "right", "write", "banana"], ("yes", "right"))
    assert hit.tolist() == [True, False, False, True, True, False]


def test_bad_requests_get_clear_errors_and_write_nothing(sets, tmp_path):
    s = sets.sf
    cases = [
        (dict(n=0), ConfigError, "--n must be >= 1"),
        (dict(n=5, replace_mixtures=25), ConfigError, "holds only 24 train mixtures"),
        (dict(n=5, replace_mixtures=-1), ConfigError, ">= 0"),
        (dict(n=5, device="tpu"), ConfigError, "device must be"),
    ]
    for kwargs, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            add_proxy(s.path, _speech(), out_dir=tmp_path / "bad", progress=False, **kwargs)
    with pytest.raises(DataError, match="is the source set"):
        add_proxy(s.path, _speech(), 5, s.path, progress=False)
    with pytest.raises(DataError, match="at 8000 Hz"):
        add_proxy(s.path, _speech(rate=8000), 5, tmp_path / "bad", progress=False)
    only_kw = _speech(n=3)
    only_kw = AudioDataset(**{**only_kw.__dict__, "labels": np.array([2, 2, 2])})
    with pytest.raises(DataError, match="every clip of proxy-test says a teacher keyword"):
        add_proxy(s.path, only_kw, 5, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.partial").exists()
    (tmp_path / "there").mkdir()
    with pytest.raises(DataError, match="already exists"):
        add_proxy(s.path, _speech(), 5, tmp_path / "there", progress=False)
    # proxy rows come last: a proxy set takes no more proxy speech, mixtures or merges
    px = add_proxy(s.path, _speech(), 5, tmp_path / "px", progress=False)
    with pytest.raises(DataError, match="already holds 5 proxy examples"):
        add_proxy(px, _speech(), 5, tmp_path / "bad", progress=False)
    with pytest.raises(DataError, match="add the proxy speech last"):
        add_mixtures(px, 5, tmp_path / "bad", progress=False)
    with pytest.raises(DataError, match="add the proxy speech last"):
        merge_synth_sets([px, s.path], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_the_command_reads_a_dataset_by_name_and_reports_the_set(sets, tmp_path):
    from typer.testing import CliRunner

    from audio_nas.cli import app

    speech = _speech()
    root = tmp_path / "speech"
    for i, (w, lab) in enumerate(zip(speech.waveforms, speech.labels, strict=True)):
        d = root / speech.class_names[lab]
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{i}.wav", w, 16_000, subtype="PCM_16")
    out = tmp_path / "o"
    r = CliRunner().invoke(
        app,
        ["data", "add-proxy", f"synth:{sets.sf.path}", "--audio", f"folder:{root}", "--n", "20"]
        + ["--replace-mixtures", "4", "--out", str(out), "--device", "cpu"],
    )
    assert r.exit_code == 0, r.output
    assert (
        "+ 20 teacher-labelled proxy examples (14 clips alone and 6 pairs, of 14 clips of folder:" in r.output
    )
    assert "dropped as teacher keywords: 7)" in r.output and "4 train mixtures replaced" in r.output
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["proxy"]["audio"] == f"folder:{root}" and meta["n_examples"] == 56
    assert "relaxed" in meta["proxy"]["setting"]


def test_a_student_trains_on_a_proxy_set_in_another_front_end_without_augmentation(
    sets, tmp_path, audio_nas_home
):
    from audio_nas.training import TrainConfig
    from audio_nas.training.pipeline import train_and_save
    from audio_nas.training.synthesize import datafree_train_config

    # every train mixture replaced: inversions + proxy only, so the proxy alone turns augmentation off
    p = load_synth_set(
        add_proxy(sets.sf.path, _speech(), 24, tmp_path / "px", replace_mixtures=24, progress=False)
    )
    assert p.n_mixtures == 0 and p.n_proxy == 24
    cfg = datafree_train_config(TrainConfig(), p)
    assert cfg.specaugment.time_masks == 0 and cfg.specaugment.freq_masks == 0
    arch = "fe:mfcc_w40_h30_m32_c13_l300|stem:c2d_k3_s2_c8_relu|ds_k3_s1_c8_r1_relu|head:c0|n3"
    spec, res, _ = train_and_save(
        arch, f"synth:{p.path}", tmp_path / "st", TrainConfig(epochs=1, batch_size=8)
    )
    assert spec.frontend.kind == "mfcc" and 0.0 <= res.val_accuracy <= 1.0


def test_balanced_pick_shares_the_teachers_classes_most_confident_first():
    # 10 rows of class 0 (confidence rising with the row), 2 of class 1, none of class 2
    logits = np.zeros((12, 3), np.float32)
    logits[:10, 0] = np.linspace(1, 5, 10)
    logits[10:, 1] = [2.0, 3.0]
    picked = balanced_pick(logits, 6)
    # class 1 gets both its rows, class 0 its share (2) plus class 2's unused share (2): its 4 most confident
    assert picked.tolist() == [6, 7, 8, 9, 10, 11]
    assert balanced_pick(logits, 12).tolist() == list(range(12))


def test_selection_keeps_n_of_the_candidates_and_its_labels_match_its_rows(sets, tmp_path):
    p = load_synth_set(
        add_proxy(sets.sf.path, _speech(), 10, tmp_path / "sel", select_from=3, progress=False)
    )
    recipe = ProxyRecipe.load(p.path / PROXY_FILE)
    assert p.n_proxy == 10 and len(recipe) == 10 and p.manifest["proxy"]["select_from"] == 3
    assert p.manifest["proxy"]["alone"] + p.manifest["proxy"]["pairs"] == 10
    px = np.asarray(p.features.x[-10:])
    assert np.allclose(render_proxy(recipe, make_frontend(p.features.frontend), slice(0, 10)), px, atol=1e-5)
    assert np.allclose(p.teacher_logits[-10:], _teacher_logits(sets.teacher, px), atol=1e-4)
    with pytest.raises(ConfigError, match="--select-from must be >= 1"):
        add_proxy(sets.sf.path, _speech(), 5, tmp_path / "bad", select_from=0, progress=False)
