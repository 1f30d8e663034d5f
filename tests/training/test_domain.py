"""Domain-adversarial training (DANN): the reversal layer, the ramp, and the trainer's checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_trainer import CFG, make_features, tiny_spec

from audio_nas.errors import ConfigError, TrainingError
from audio_nas.space import build_model
from audio_nas.training import TrainConfig, train
from audio_nas.training.domain import DomainHead, grad_reverse, reversal_scale


def test_grad_reverse_is_identity_forward_and_flips_the_gradient():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [-1.5, -2.0]


def test_reversal_scale_ramps_from_zero_to_the_weight():
    assert reversal_scale(2.0, 0.0) == 0.0
    assert 0.0 < reversal_scale(2.0, 0.1) < reversal_scale(2.0, 0.5) < 2.0
    assert reversal_scale(2.0, 1.0) == pytest.approx(2.0, abs=1e-3)
    assert reversal_scale(2.0, 5.0) == reversal_scale(2.0, 1.0)  # clamped


def test_embed_then_classifier_is_forward():
    model = build_model(tiny_spec()).eval()
    x = torch.from_numpy(make_features().x[:4])
    assert torch.allclose(model.classifier(model.embed(x)), model(x))
    assert DomainHead(model.embed(x).shape[1], 3)(model.embed(x), 1.0).shape == (4, 3)


def _domains(feats, n_domains=2):
    n_train = int((feats.split == 0).sum())
    d = np.arange(n_train) % n_domains
    d[:3] = -1  # clips without a domain are left out of the domain loss
    return d


def test_dann_trains_changes_the_run_and_returns_a_plain_model():
    feats = make_features()
    cfg = TrainConfig(**{**CFG.__dict__, "domain_adversarial": 1.0})
    plain = train(tiny_spec(), feats, CFG)
    dann = train(tiny_spec(), feats, cfg, domain_labels=_domains(feats))
    assert dann.loss_curve != plain.loss_curve
    assert set(dann.model.state_dict()) == set(build_model(tiny_spec()).state_dict())  # no head inside


def test_dann_with_subsampling_and_qat_runs():
    feats = make_features()
    cfg = TrainConfig(
        **{**CFG.__dict__, "domain_adversarial": 0.5, "max_train_examples": 40, "qat": True, "qat_epochs": 1}
    )
    res = train(tiny_spec(), feats, cfg, domain_labels=_domains(feats))
    assert res.epochs_run == CFG.epochs


def test_dann_errors_name_the_problem():
    feats = make_features()
    cfg = TrainConfig(**{**CFG.__dict__, "domain_adversarial": 1.0})
    with pytest.raises(TrainingError, match="needs domain labels"):
        train(tiny_spec(), feats, cfg)
    with pytest.raises(TrainingError, match="one entry per train example"):
        train(tiny_spec(), feats, cfg, domain_labels=_domains(feats)[:-1])
    with pytest.raises(TrainingError, match="two or more domains"):
        train(tiny_spec(), feats, cfg, domain_labels=_domains(feats, n_domains=1))
    with pytest.raises(ConfigError, match="domain_adversarial"):
        TrainConfig(domain_adversarial=-1.0)
