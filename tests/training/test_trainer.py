"""Trainer tests on small learnable synthetic features (no audio needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from audio_nas.errors import TrainingError
from audio_nas.features.config import FrontEndConfig
from audio_nas.training import TrainConfig, load_checkpoint, save_checkpoint, train
from audio_nas.training.augment import freq_mixstyle, spec_augment
from audio_nas.training.config import FreqMixStyleConfig, SpecAugmentConfig

space = pytest.importorskip("audio_nas.space")


@dataclass
class FakeFeatures:
    x: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: tuple[str, ...]
    frontend: FrontEndConfig


FE = FrontEndConfig(kind="mfcc", window_ms=40, hop_ms=20, n_mfcc=10)  # 49 x 10


def make_features(n_per_class=40, n_classes=3, seed=0, noise=0.6):
    """Each class is a distinct time-frequency blob plus noise: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    t, f = FE.output_shape
    protos = rng.normal(size=(n_classes, t, f)).astype(np.float32)
    xs, ys, split = [], [], []
    for c in range(n_classes):
        for i in range(n_per_class):
            xs.append(protos[c] + noise * rng.normal(size=(t, f)).astype(np.float32) * 2)
            ys.append(c)
            split.append(0 if i < n_per_class * 0.6 else (1 if i < n_per_class * 0.8 else 2))
    return FakeFeatures(
        np.stack(xs), np.array(ys), np.array(split, np.uint8), tuple(f"c{i}" for i in range(n_classes)), FE
    )


def tiny_spec(n_classes=3):
    spec = space.resolve_arch("ds_cnn_s")
    import dataclasses

    return dataclasses.replace(spec, frontend=FE, n_classes=n_classes)


CFG = TrainConfig(
    epochs=3, batch_size=16, lr=3e-3, seed=1, specaugment=SpecAugmentConfig(time_masks=1, freq_masks=1)
)


def test_learns_above_chance_and_reports_metrics():
    feats = make_features()
    calls = []
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 10})  # BN running stats need ~50 steps on 72 examples
    res = train(tiny_spec(), feats, cfg, on_epoch=lambda e, acc, loss: calls.append((e, acc, loss)))
    assert [c[0] for c in calls] == list(range(10))
    assert res.epochs_run == 10 and not res.pruned
    assert res.val_accuracy == max(res.curve)
    assert res.test_accuracy > 0.6  # chance is 1/3
    cm = np.array(res.confusion)
    assert cm.sum() == int((feats.split == 2).sum())
    assert set(res.per_class_accuracy) == {"c0", "c1", "c2"}
    assert res.loss_curve[-1] < res.loss_curve[0]


def test_same_seed_same_result_and_different_seed_differs():
    feats = make_features()
    a = train(tiny_spec(), feats, CFG)
    b = train(tiny_spec(), feats, CFG)
    assert a.curve == b.curve and a.loss_curve == b.loss_curve
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = train(tiny_spec(), feats, TrainConfig(**{**CFG.__dict__, "seed": 2}))
    assert c.loss_curve != a.loss_curve


def test_on_epoch_false_prunes():
    res = train(tiny_spec(), make_features(), CFG, on_epoch=lambda e, acc, loss: e < 0)
    assert res.pruned and res.epochs_run == 1


def test_shape_and_class_mismatch_errors():
    feats = make_features()
    import dataclasses

    wrong_fe = dataclasses.replace(tiny_spec(), frontend=FrontEndConfig(kind="logmel", n_mels=40))
    with pytest.raises(TrainingError, match="front-end"):
        train(wrong_fe, feats, CFG)
    with pytest.raises(TrainingError, match="n_classes"):
        train(tiny_spec(n_classes=5), feats, CFG)


def test_nan_features_fail_clearly():
    feats = make_features()
    feats.x[feats.split == 0] = np.nan
    with pytest.raises(TrainingError, match="diverged"):
        train(tiny_spec(), feats, CFG)


def test_distillation_changes_training_and_checks_shape():
    feats = make_features()
    n_train = int((feats.split == 0).sum())
    teacher = np.random.default_rng(0).normal(size=(n_train, 3)).astype(np.float32) * 5
    cfg = TrainConfig(**{**CFG.__dict__, "distill_alpha": 0.7})
    plain = train(tiny_spec(), feats, CFG)
    kd = train(tiny_spec(), feats, cfg, teacher_logits=teacher)
    assert kd.loss_curve != plain.loss_curve
    with pytest.raises(TrainingError, match="teacher_logits"):
        train(tiny_spec(), feats, cfg, teacher_logits=teacher[:-1])


def test_checkpoint_round_trip(tmp_path):
    feats = make_features()
    spec = tiny_spec()
    res = train(spec, feats, TrainConfig(**{**CFG.__dict__, "epochs": 1}))
    save_checkpoint(tmp_path / "ck", spec, res.model, {"test_accuracy": res.test_accuracy}, feats.class_names)
    spec2, model2, meta = load_checkpoint(tmp_path / "ck")
    assert spec2 == spec and meta["class_names"] == list(feats.class_names)
    x = torch.from_numpy(feats.x[:4])
    assert torch.equal(res.model(x), model2(x))
    assert not list(tmp_path.glob("ck/*.pkl")) and not list(tmp_path.glob("ck/*.pt"))


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(TrainingError, match="not a checkpoint"):
        load_checkpoint(tmp_path)


def test_spec_augment_masks_and_keeps_shape():
    torch.manual_seed(0)
    x = torch.randn(8, 49, 10) + 3.0
    y = spec_augment(x, SpecAugmentConfig(time_masks=2, time_mask_frames=5, freq_masks=2, freq_mask_bins=3))
    assert y.shape == x.shape
    assert (y != x).any()
    assert torch.equal(spec_augment(x, SpecAugmentConfig(time_masks=0, freq_masks=0)), x)


def test_freq_mixstyle_mixes_per_band_statistics_between_examples():
    torch.manual_seed(0)
    # two examples whose bands have very different means and spreads over time
    x = torch.stack(
        [torch.randn(49, 10) * (0.5 if i % 2 else 2.0) + (-4.0 if i % 2 else 6.0) for i in range(8)]
    )
    assert torch.equal(freq_mixstyle(x, FreqMixStyleConfig(p=0.0)), x)  # off: untouched
    torch.manual_seed(1)
    y = freq_mixstyle(x, FreqMixStyleConfig(p=1.0, alpha=0.4))
    torch.manual_seed(1)
    assert torch.equal(freq_mixstyle(x, FreqMixStyleConfig(p=1.0, alpha=0.4)), y)  # global generator
    assert y.shape == x.shape
    mu_x, mu_y = x.mean(dim=1), y.mean(dim=1)  # [2, F]
    lo, hi = mu_x.min(dim=0).values, mu_x.max(dim=0).values
    assert ((mu_y >= lo - 1e-4) & (mu_y <= hi + 1e-4)).all()  # each band's mean: between the two
    assert (mu_y - mu_x).abs().max() > 1.0  # and moved
    # the pattern within a band (normalised over time) is the example's own
    z = lambda t: (t - t.mean(dim=1, keepdim=True)) / t.std(dim=1, keepdim=True)  # noqa: E731
    assert torch.allclose(z(y), z(x), atol=1e-3)


@pytest.mark.parametrize("field, value", [("p", 1.5), ("p", -0.1), ("alpha", 0.0)])
def test_freq_mixstyle_config_validation(field, value):
    from audio_nas.errors import ConfigError

    with pytest.raises(ConfigError, match=f"freq_mixstyle.{field}"):
        FreqMixStyleConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value", [("epochs", 0), ("lr", -1.0), ("label_smoothing", 1.0), ("device", "tpu")]
)
def test_train_config_validation(field, value):
    from audio_nas.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_qat_fine_tunes_with_tflm_rounding_and_round_trips(tmp_path):
    from audio_nas.export.qat import is_qat, round_half_away

    assert round_half_away(torch.tensor([0.5, -0.5, 1.5, 2.5])).tolist() == [
        1.0,
        -1.0,
        2.0,
        3.0,
    ]  # not half-to-even
    feats = make_features()
    res = train(
        tiny_spec(), feats, TrainConfig(**{**CFG.__dict__, "epochs": 10, "qat": True, "qat_epochs": 3})
    )
    assert is_qat(res.model) and res.best_epoch >= 7  # chosen among the QAT epochs
    assert res.test_accuracy > 0.6
    save_checkpoint(tmp_path / "q", tiny_spec(), res.model, {}, feats.class_names)
    _, model2, meta = load_checkpoint(tmp_path / "q")
    assert meta["qat"] and is_qat(model2)
    x = torch.from_numpy(feats.x[:4])
    assert torch.equal(res.model(x), model2(x))


def test_epoch_budget_raises_the_cap_for_cheap_networks_only():
    from audio_nas.errors import ConfigError
    from audio_nas.space import ArchSpec, plan_layers
    from audio_nas.training.trainer import train_examples_cap

    cheap = ArchSpec.from_str(
        "fe:logmel_w30_h30_m32|stem:c1d_k5_s2_c8_hswish|ds_k5_s1_c16_r2_relu6|head:c0|n12"
    )
    dear = ArchSpec.from_str(
        "fe:logmel_w30_h20_m40|stem:c1d_k5_s2_c24_relu6|ds_k5_s1_c24_r3_relu6|uib_a5_k0_e2_s1_c64_r2_relu6|"
        "head:c128_relu|n12"
    )
    macs = sum(layer.macs for layer in plan_layers(cheap))
    assert train_examples_cap(cheap, TrainConfig()) is None
    assert train_examples_cap(cheap, TrainConfig(max_train_examples=100)) == 100
    budget = TrainConfig(max_train_examples=100, epoch_budget_macs=macs * 250.0)
    assert train_examples_cap(cheap, budget) == 250
    assert train_examples_cap(dear, budget) == 100  # an epoch at the cap already costs more than the budget
    with pytest.raises(ConfigError, match="max_train_examples too"):
        TrainConfig(epoch_budget_macs=1e9)
    with pytest.raises(ConfigError, match="must be > 0"):
        TrainConfig(max_train_examples=10, epoch_budget_macs=0)
