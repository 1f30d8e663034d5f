"""The long steps log progress lines when stderr is not a terminal (search loop, baselines, features,
training epochs); data generation is covered through the CLI in tests/data/test_bad_audio.py."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from audio_nas.data.dataset import AudioDataset, content_hash
from audio_nas.features import compute_features
from audio_nas.features.config import FrontEndConfig


@pytest.fixture()
def every_update(monkeypatch, caplog):
    """A line at every update (interval ~0), no terminal, INFO captured."""
    monkeypatch.setenv("AUDIO_NAS_PROGRESS_INTERVAL_S", "1e-9")
    monkeypatch.setenv("AUDIO_NAS_NO_PROGRESS", "1")
    caplog.set_level(logging.INFO)
    return caplog


def _messages(caplog, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


def test_search_loop_and_baselines_log_progress(tmp_path, every_update):
    from audio_nas.search import SearchConfig
    from audio_nas.search.report import evaluate_baselines
    from audio_nas.search.runner import SearchRunner

    table = Path(__file__).resolve().parents[1] / "search" / "data" / "nas-table-fixture.csv.gz"
    cfg = SearchConfig(
        name="p",
        evaluator="surrogate",
        surrogate_table=str(table),
        n_trials=5,
        workers=1,
        n_initial=2,
        seed=0,
    )
    runner = SearchRunner(cfg, tmp_path / "p")
    try:
        runner.run()
        lines = _messages(every_update, "search p:")
        assert lines[0] == "search p: started, 0/5 trials (0%)"
        assert any(
            ln.startswith("search p: 3/5 trials (60%)") and "ETA" in ln and ", hv " in ln for ln in lines
        )
        assert lines[-1].startswith("search p: done, 5/5 trials (100%)") and "best_acc" in lines[-1]

        evaluate_baselines(runner)
        lines = _messages(every_update, "baselines:")
        assert lines[0] == "baselines: started, 0/3 models (0%)"
        assert lines[-1].startswith("baselines: done, 3/3 models (100%)")
        assert "ds_cnn_s acc 0." in lines[-1]
        every_update.clear()
        evaluate_baselines(runner)  # cached in the store: nothing to do, nothing logged
        assert _messages(every_update, "baselines:") == []
    finally:
        runner.store.close()


def test_feature_extraction_logs_progress(tmp_path, every_update):
    n = 300  # two batches of 256
    rng = np.random.default_rng(0)
    w = (0.1 * rng.standard_normal((n, 16_000))).astype(np.float32)
    labels, split = np.arange(n) % 2, (np.arange(n) % 10 >= 8).astype(np.uint8)
    ds = AudioDataset("p", w, labels, split, ("a", "b"), 16_000, content_hash(w, labels, split, ("a", "b")))
    cfg = FrontEndConfig(n_mels=20)
    compute_features(ds, cfg, tmp_path)
    lines = _messages(every_update, "features logmel")
    assert lines[0].endswith("of 300 clips: started, 0/2 batches (0%)")
    assert lines[-1].startswith(f"features logmel {cfg.output_shape} of 300 clips: done, 2/2 batches")
    every_update.clear()
    compute_features(ds, cfg, tmp_path)  # cached: no extraction, no lines
    assert _messages(every_update, "features") == []


def test_training_epochs_log_progress_only_when_asked(every_update):
    space = pytest.importorskip("audio_nas.space")
    from audio_nas.training import TrainConfig, train

    fe = FrontEndConfig(kind="mfcc", window_ms=40, hop_ms=20, n_mfcc=10)
    rng = np.random.default_rng(0)
    n = 30

    @dataclasses.dataclass
    class Feats:
        x: np.ndarray
        labels: np.ndarray
        split: np.ndarray
        class_names: tuple[str, ...]
        frontend: FrontEndConfig

    feats = Feats(
        rng.normal(size=(n, *fe.output_shape)).astype(np.float32),
        np.arange(n) % 2,
        np.array([0] * 20 + [1] * 5 + [2] * 5, np.uint8),
        ("a", "b"),
        fe,
    )
    spec = dataclasses.replace(space.resolve_arch("ds_cnn_s"), frontend=fe, n_classes=2)
    cfg = TrainConfig(epochs=2, batch_size=16)
    train(spec, feats, cfg)
    assert _messages(every_update, "training") == []  # search workers: quiet by default
    train(spec, feats, cfg, progress=True)
    lines = _messages(every_update, "training (20 clips/epoch)")
    assert lines[0] == "training (20 clips/epoch): started, 0/2 epochs (0%)"
    assert "val_acc" in lines[1] and "loss" in lines[1]
    assert lines[-1].startswith("training (20 clips/epoch): done, 2/2 epochs (100%)")
