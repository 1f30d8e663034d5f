"""The final Pareto models' retraining: more epochs for cheap networks within a MAC budget
(search/retrain.py), recorded per model, redone when the recipe changes."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
from search_helpers import tone_folder

from audio_nas.errors import ConfigError
from audio_nas.search import SearchConfig
from audio_nas.search.config import RetrainConfig
from audio_nas.search.report import export_front
from audio_nas.search.retrain import retrain_epochs
from audio_nas.search.runner import SearchRunner
from audio_nas.space import arch_costs, resolve_arch
from audio_nas.training import TrainConfig


def _macs(spec) -> int:
    return arch_costs(spec).macs


def test_cheap_models_get_more_epochs_expensive_ones_keep_the_search_recipe():
    train = TrainConfig(epochs=15)
    cheap, costly = resolve_arch("micro_speech_tiny_conv"), resolve_arch("ds_cnn_s")
    assert _macs(cheap) < _macs(costly)
    n = 2447
    budget = 40 * _macs(cheap) * n  # pays 40 epochs of the cheap network
    assert retrain_epochs(cheap, n, train, 120, budget) == 40
    assert retrain_epochs(cheap, n, train, 30, budget) == 30  # capped at max_epochs
    assert retrain_epochs(costly, n, train, 120, budget) == 15  # never fewer than the search's epochs
    assert retrain_epochs(costly, n, train, 120, None) == 120  # no budget: max_epochs for every model
    assert retrain_epochs(costly, n, train, None, None) == 15  # off: the search's recipe


@pytest.mark.parametrize(
    ("retrain", "needle"),
    [
        ({"budget_macs": 1e10}, "set max_epochs too"),
        ({"max_epochs": 10}, "below train.epochs"),
        ({"max_epochs": 0}, "retrain.max_epochs must be >= 1"),
        ({"max_epochs": 60, "budget_macs": -1.0}, "retrain.budget_macs must be > 0"),
    ],
)
def test_bad_retrain_config_names_the_key(retrain, needle):
    with pytest.raises(ConfigError, match=needle):
        SearchConfig(train=TrainConfig(epochs=15), retrain=RetrainConfig(**retrain))


def test_retrain_key_loads_from_yaml_floats(tmp_path):
    from audio_nas.config import load_yaml

    path = tmp_path / "c.yaml"
    path.write_text("retrain:\n  max_epochs: 120\n  budget_macs: 1.2e10\n")
    cfg = load_yaml(SearchConfig, path)
    assert cfg.retrain == RetrainConfig(max_epochs=120, budget_macs=1.2e10)


@pytest.fixture()
def folder_dataset(tmp_path):
    """Two tone classes, 1 s clips, 6 train and 3 validation / test clips per class."""
    return tone_folder(tmp_path, train_per_class=6, other_per_class=3)


@pytest.mark.slow  # ~10 s: a 1- and a 2-epoch training of a tiny network on 12 clips, TFLM export
def test_front_is_retrained_with_the_budgeted_epochs_and_redone_when_the_recipe_changes(
    folder_dataset, tmp_path, audio_nas_home
):
    spec = dataclasses.replace(resolve_arch("micro_speech_tiny_conv"), n_classes=2)
    front = [SimpleNamespace(id=3, spec=spec.to_str())]
    target = tmp_path / "run" / "pareto" / "trial-0003"

    def run(retrain: RetrainConfig) -> dict:
        cfg = SearchConfig(
            name="rt",
            dataset=folder_dataset,
            workers=1,
            n_trials=1,
            n_initial=1,
            train=TrainConfig(epochs=1, batch_size=4, num_threads=1),
            retrain=retrain,
            baselines=(),
        )
        runner = SearchRunner(cfg, tmp_path / "run")
        try:
            return export_front(runner, front)[3]
        finally:
            runner.store.close()

    out = run(RetrainConfig())
    assert out["retrain_epochs"] == 1 and 0.0 <= out["test_accuracy"] <= 1.0
    two_epochs = 2 * _macs(spec) * 12  # 12 train clips: the budget pays exactly 2 epochs
    out = run(RetrainConfig(max_epochs=3, budget_macs=two_epochs))
    record = json.loads((target / "retrain.json").read_text())
    assert out["retrain_epochs"] == record["epochs"] == 2
    assert record["recipe"]["retrain"] == {"max_epochs": 3, "budget_macs": two_epochs}
    mtime = (target / "model.tflite").stat().st_mtime_ns
    again = run(RetrainConfig(max_epochs=3, budget_macs=two_epochs))  # same recipe: reused, not redone
    assert again["retrain_epochs"] == 2 and again["test_accuracy"] == out["test_accuracy"]
    assert (target / "model.tflite").stat().st_mtime_ns == mtime
