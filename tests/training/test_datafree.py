"""Data-free synthesis: inversion terms, determinism, atomic output, bad teachers, the synth:DIR dataset."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
from torch import nn

from audio_nas.errors import ConfigError, DataError, TrainingError
from audio_nas.features.synthset import load_synth_set
from audio_nas.training import TrainConfig, save_checkpoint
from audio_nas.training.config import FreqMixStyleConfig
from audio_nas.training.inversion import InversionConfig, invert_teacher
from audio_nas.training.synthesize import synthesize
from audio_nas.training.teacher import Teacher, load_teacher

SPEC = "fe:logmel_w30_h20_m20_l300|stem:c2d_k3_s2_c8_relu|ds_k3_s1_c8_r1_relu|head:c0|n3"
CLASSES = ("a", "b", "c")
# CPU: bit-exact determinism
FAST = dict(per_class=4, steps=12, batch_size=12, rounds=2, mixtures=0, device="cpu")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, make_tiny_teacher):
    """A tiny teacher whose BN layers hold non-trivial running statistics."""
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "t", SPEC, CLASSES)


@pytest.mark.parametrize("prior", ["source-filter", "grid"])
def test_bn_matching_loss_decreases(teacher_dir, prior):
    cfg = InversionConfig(**{**FAST, "steps": 30, "prior": prior})
    res = invert_teacher(load_teacher(teacher_dir), cfg, progress=False)
    first = np.mean([h["first_bn"] for h in res.loss_history])
    last = np.mean([h["last_bn"] for h in res.loss_history])
    assert last < 0.8 * first
    assert res.x.shape == (12, 14, 20) and np.isfinite(res.x).all()
    assert np.bincount(res.labels, minlength=3).tolist() == [4, 4, 4]  # class-balanced
    assert (
        set(res.split.tolist()) <= {0, 1} and (res.split == 1).sum() == 3
    )  # one validation example per class


@pytest.mark.parametrize("prior", ["source-filter", "grid"])
def test_same_seed_same_set_other_seed_differs(teacher_dir, prior):
    t = load_teacher(teacher_dir)
    a = invert_teacher(t, InversionConfig(**FAST, prior=prior, seed=3), progress=False)
    b = invert_teacher(t, InversionConfig(**FAST, prior=prior, seed=3), progress=False)
    c = invert_teacher(t, InversionConfig(**FAST, prior=prior, seed=4), progress=False)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.teacher_logits, b.teacher_logits)
    assert not np.array_equal(a.x, c.x)


def test_synthesize_writes_a_loadable_set_with_manifest(teacher_dir, tmp_path):
    out = synthesize(teacher_dir, InversionConfig(**FAST), tmp_path / "set", progress=False)
    assert not (tmp_path / "set.partial").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["teacher"]["sha256"] == load_teacher(teacher_dir).sha256
    assert m["frontend_token"] == "fe:logmel_w30_h20_m20_l300" and m["seed"] == 0 and m["steps"] == 12
    assert set(m["loss_weights"]) >= {"ce", "bn", "feature", "diversity", "tv_time", "tv_freq"}
    assert m["teacher_confidence"]["class_counts"] == {"0": 4, "1": 4, "2": 4}
    s = load_synth_set(f"synth:{out}")
    assert s.features.x.shape == (12, 14, 20) and s.features.class_names == CLASSES
    assert s.train_logits().shape == ((s.features.split == 0).sum(), 3)
    with pytest.raises(DataError, match="already exists"):
        synthesize(teacher_dir, InversionConfig(**FAST), out, progress=False)


def test_failure_half_way_leaves_nothing(teacher_dir, tmp_path, monkeypatch):
    import audio_nas.features.synthset as synthset

    real_save = np.save

    def failing_save(path, arr):
        if str(path).endswith("teacher_logits.npy"):
            raise OSError("disk full")
        real_save(path, arr)

    monkeypatch.setattr(synthset.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        synthesize(teacher_dir, InversionConfig(**FAST), tmp_path / "set", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_teachers_get_clear_errors(teacher_dir, tmp_path):
    with pytest.raises(TrainingError, match="does not exist"):
        load_teacher(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "checkpoint.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="not valid JSON"):
        load_teacher(broken)
    (broken / "checkpoint.json").write_text((teacher_dir / "checkpoint.json").read_text())
    with pytest.raises(TrainingError, match="corrupt|do not match"):
        load_teacher(broken)
    with pytest.raises(TrainingError, match="front-end"):
        load_teacher(teacher_dir, expected_frontend="mfcc")
    assert load_teacher(teacher_dir, expected_frontend="logmel").frontend.kind == "logmel"
    with pytest.raises(TrainingError, match="front-end"):
        synthesize(
            teacher_dir, InversionConfig(**FAST), tmp_path / "x", expected_frontend="pcen", progress=False
        )
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_teacher_without_batch_norm_warns_and_uses_the_other_terms(teacher_dir, caplog):
    t = load_teacher(teacher_dir)
    t_shape = t.frontend.output_shape
    plain = nn.Sequential(nn.Flatten(), nn.Linear(t_shape[0] * t_shape[1], 16), nn.ReLU(), nn.Linear(16, 3))
    no_bn = Teacher(spec=t.spec, model=plain.eval(), class_names=CLASSES, path=t.path, sha256="0" * 64)
    assert no_bn.bn_layers == []
    with caplog.at_level(logging.WARNING):
        res = invert_teacher(no_bn, InversionConfig(**FAST), progress=False)
    assert "no batch-norm" in caplog.text
    assert (
        "bn" not in res.terms and "feature" not in res.terms and "ce" in res.terms and "tv_time" in res.terms
    )
    assert all("last_bn" not in h for h in res.loss_history)


def test_quantisation_aware_teacher_has_no_bn_terms(teacher_dir, tmp_path, caplog):
    from audio_nas.export.qat import prepare_qat
    from audio_nas.training import load_checkpoint

    spec, model, _ = load_checkpoint(teacher_dir)
    qat_dir = save_checkpoint(tmp_path / "qat", spec, prepare_qat(model).eval(), {}, CLASSES)
    with caplog.at_level(logging.WARNING):
        res = invert_teacher(load_teacher(qat_dir), InversionConfig(**FAST), progress=False)
    assert "no batch-norm" in caplog.text and "bn" not in res.terms and "ce" in res.terms


def test_train_on_synth_dataset_distils_and_checks_the_frontend(teacher_dir, tmp_path, audio_nas_home):
    from audio_nas.training.pipeline import train_and_save

    out = synthesize(teacher_dir, InversionConfig(**FAST), tmp_path / "set", progress=False)
    cfg = TrainConfig(epochs=1, batch_size=8)
    spec, res, path = train_and_save(SPEC, f"synth:{out}", tmp_path / "student", cfg)
    assert 0.0 <= res.val_accuracy <= 1.0 and (path / "model.safetensors").exists()
    meta = json.loads((path / "checkpoint.json").read_text())
    assert meta["metrics"]["train_config"]["distill_alpha"] == 0.9  # data-free training always distils
    with pytest.raises(TrainingError, match="front-end"):
        train_and_save("ds_cnn_s", f"synth:{out}", tmp_path / "s2", cfg)
    with pytest.raises(DataError, match="does not exist"):
        train_and_save(SPEC, f"synth:{tmp_path / 'missing'}", tmp_path / "s3", cfg)


def test_cli_synthesize(teacher_dir, tmp_path):
    from typer.testing import CliRunner

    from audio_nas.cli import app

    out = tmp_path / "cli-set"
    args = ["data", "synthesize", "--teacher", str(teacher_dir), "--per-class", "4", "--steps", "3"]
    args += ["--mixtures", "20"]
    r = CliRunner().invoke(app, [*args, "--out", str(out), "--batch-size", "6"])
    assert r.exit_code == 0, r.output
    assert "teacher agrees with the targets" in r.output and (out / "manifest.json").exists()
    assert "+ 20 teacher-labelled mixtures in the train split, 3 in the validation split" in r.output


def test_coarse_parametrisation_gives_smoother_inputs(teacher_dir):
    t = load_teacher(teacher_dir)
    grid = {**FAST, "prior": "grid"}
    fine = invert_teacher(t, InversionConfig(**{**grid, "coarse_factor": 1}), progress=False)
    coarse = invert_teacher(t, InversionConfig(**{**grid, "coarse_factor": 2}), progress=False)
    assert coarse.x.shape == fine.x.shape == (12, 14, 20)

    def tv(x):
        return float(np.mean(np.diff(x, axis=1) ** 2) + np.mean(np.diff(x, axis=2) ** 2))

    assert tv(coarse.x) < 0.5 * tv(fine.x)
    with pytest.raises(ConfigError, match="coarse_factor"):
        InversionConfig(coarse_factor=0)


def test_teacher_mixtures_keep_the_splits_apart_and_carry_the_teachers_labels(teacher_dir, tmp_path):
    from audio_nas.training.inversion import teacher_logits_of
    from audio_nas.training.synthesize import datafree_train_config

    cfg = InversionConfig(**{**FAST, "mixtures": 40})
    out = synthesize(teacher_dir, cfg, tmp_path / "mixed", progress=False)
    s = load_synth_set(out)
    plain_dir = synthesize(teacher_dir, InversionConfig(**FAST), tmp_path / "plain", progress=False)
    plain = load_synth_set(plain_dir)
    assert s.n_mixtures == 40 and plain.n_mixtures == 0
    # 40 train mixtures, then 15 % as many validation mixtures (source-filter sets)
    assert len(s.features.x) == 12 + 40 + 6 and (s.features.split[12:52] == 0).all()
    assert (s.features.split[52:] == 1).all()
    assert np.array_equal(s.features.x[:12], plain.features.x)  # the inversions are unchanged
    mixed_x = np.array(s.features.x[12:])
    assert np.allclose(s.teacher_logits[12:], teacher_logits_of(load_teacher(teacher_dir).model, mixed_x))
    assert np.array_equal(s.features.labels[12:], s.teacher_logits[12:].argmax(1))
    m = json.loads((out / "manifest.json").read_text())
    assert m["mixtures"]["n"] == 40 and m["mixtures"]["validation"] == 6
    assert sum(m["mixtures"]["teacher_class_counts"]) == 46
    again = load_synth_set(synthesize(teacher_dir, cfg, tmp_path / "again", progress=False))
    assert np.array_equal(again.features.x, s.features.x)  # deterministic from the seed
    train_cfg = datafree_train_config(TrainConfig(freq_mixstyle=FreqMixStyleConfig(p=0.8)), s)
    assert train_cfg.specaugment.time_masks == 0 and train_cfg.specaugment.freq_masks == 0
    assert train_cfg.freq_mixstyle.p == 0.0  # a mixture's input must stay the one its label was made on
    assert train_cfg.distill_alpha == 0.9
    assert datafree_train_config(TrainConfig(), plain).specaugment == TrainConfig().specaugment


def test_source_filter_prior_inverts_deterministically_and_fits_the_teacher(teacher_dir):
    t = load_teacher(teacher_dir)
    cfg = InversionConfig(**{**FAST, "prior": "source-filter", "steps": 30, "lr": 0.3})
    a = invert_teacher(t, cfg, progress=False)
    b = invert_teacher(t, cfg, progress=False)
    assert a.x.shape == (12, 14, 20) and np.isfinite(a.x).all()
    assert np.array_equal(a.x, b.x)
    assert np.bincount(a.labels, minlength=3).tolist() == [4, 4, 4]
    first = np.mean([h["first_ce"] for h in a.loss_history])
    last = np.mean([h["last_ce"] for h in a.loss_history])
    assert last < first
    with pytest.raises(ConfigError, match="prior"):
        InversionConfig(prior="wavelets")
    with pytest.raises(ConfigError, match="coarse_factor"):
        InversionConfig(prior="source-filter", coarse_factor=2)


def test_the_competition_term_steers_examples_to_where_a_student_disagrees(
    teacher_dir, tmp_path, make_tiny_teacher
):
    import torch

    from audio_nas.training.inversion import js_divergence

    a = torch.tensor([[9.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    assert torch.allclose(js_divergence(a, a), torch.zeros(2), atol=1e-6)
    assert js_divergence(a[:1], torch.tensor([[0.0, 9.0, 0.0]])).item() > 0.99  # base 2: at most 1
    t = load_teacher(teacher_dir)
    other_fe = "fe:mfcc_w40_h30_m32_c13_l300|stem:c2d_k3_s2_c8_relu|ds_k3_s1_c8_r1_relu|head:c0|n3"
    student = load_teacher(make_tiny_teacher(tmp_path / "s", other_fe, CLASSES))
    head = [m for m in student.model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():  # an untrained network predicts almost uniformly: give it opinions to move
        head.weight.mul_(50.0)
    cfg = InversionConfig(**{**FAST, "rounds": 1, "steps": 30, "lr": 0.3, "w_compete": 10.0})
    res = invert_teacher(t, cfg, student=student, progress=False)
    assert "compete" in res.terms and np.isfinite(res.x).all()
    first = np.mean([h["first_compete"] for h in res.loss_history])
    last = np.mean([h["last_compete"] for h in res.loss_history])
    assert last < first - 0.05, (
        first,
        last,
    )  # 1 - JS fell: the student, in its own front-end, disagrees more
    assert res.x.shape == (12, 14, 20)  # the set stays in the teacher's front-end
    assert all(p.requires_grad is False for p in student.model.parameters())  # frozen
    with pytest.raises(ConfigError, match="needs both a student and w_compete"):
        invert_teacher(t, dataclasses.replace(cfg, w_compete=0.0), student=student, progress=False)
    with pytest.raises(ConfigError, match="needs both a student and w_compete"):
        invert_teacher(t, cfg, progress=False)
    with pytest.raises(ConfigError, match="with --prior grid"):
        invert_teacher(t, dataclasses.replace(cfg, prior="grid"), student=student, progress=False)
    four = load_teacher(make_tiny_teacher(tmp_path / "f", SPEC.replace("n3", "n4"), (*CLASSES, "d")))
    with pytest.raises(ConfigError, match="classes"):
        invert_teacher(t, cfg, student=four, progress=False)
    with pytest.raises(ConfigError, match="w_compete must be >= 0"):
        InversionConfig(w_compete=-1.0)
    out = synthesize(
        teacher_dir,
        dataclasses.replace(cfg, steps=4),
        tmp_path / "adi",
        student_path=tmp_path / "s",
        progress=False,
    )
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["student"]["sha256"] == load_teacher(tmp_path / "s").sha256
    assert meta["loss_weights"]["compete"] == 10.0
    assert "compete" in meta["terms_applied"]
