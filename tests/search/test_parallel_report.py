"""Baselines and Pareto retraining run in the search's worker pool when it has more than one worker."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from search_helpers import tone_folder

from audio_nas.search import SearchConfig
from audio_nas.search.report import evaluate_baselines, export_front
from audio_nas.search.runner import SearchRunner
from audio_nas.space import resolve_arch
from audio_nas.training import TrainConfig


@pytest.fixture()
def folder_dataset(tmp_path):
    """Two tone classes, 1 s clips, 6 train and 3 validation / test clips per class."""
    return tone_folder(tmp_path, train_per_class=6, other_per_class=3)


@pytest.mark.slow
def test_baselines_and_front_train_in_the_worker_pool(folder_dataset, tmp_path, audio_nas_home):
    cfg = SearchConfig(
        name="par",
        dataset=folder_dataset,
        evaluator="train",
        workers=2,
        n_trials=1,
        n_initial=1,
        train=TrainConfig(epochs=1, batch_size=8, num_threads=1),
        baselines=("ds_cnn_s", "micro_speech_tiny_conv"),
    )
    runner = SearchRunner(cfg, tmp_path / "run")
    try:
        base = evaluate_baselines(runner)
        assert set(base) == {"ds_cnn_s", "micro_speech_tiny_conv"}
        assert all(0.0 <= b["accuracy"] <= 1.0 and b["spec"] for b in base.values())
        spec = dataclasses.replace(resolve_arch("micro_speech_tiny_conv"), n_classes=2)
        front = [SimpleNamespace(id=7, spec=spec.to_str())]
        out = export_front(runner, front)
        target = tmp_path / "run" / "pareto" / "trial-0007"
        assert (target / "model.tflite").exists() and (target / "checkpoint").is_dir()
        assert out[7]["arena_bytes"] > 0
        assert export_front(runner, front)[7]["arena_bytes"] == out[7]["arena_bytes"]  # resumed, not redone
    finally:
        runner.store.close()
