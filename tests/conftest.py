"""Shared test setup: one thread per test worker, no progress bars, isolated data home."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("AUDIO_NAS_NO_PROGRESS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture()
def audio_nas_home(tmp_path, monkeypatch):
    """A fresh AUDIO_NAS_HOME for tests that write data/, cache/ or runs/."""
    monkeypatch.setenv("AUDIO_NAS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def make_tiny_teacher():
    """``make(path, spec, class_names)``: a checkpoint of an untrained search-space model whose BN layers
    hold non-trivial running statistics (a teacher for the data-free tests)."""

    def make(path, spec_str: str, class_names: tuple[str, ...]):
        import torch

        from audio_nas.space import build_model, resolve_arch
        from audio_nas.training import save_checkpoint

        torch.manual_seed(0)
        spec = resolve_arch(spec_str)
        model = build_model(spec)
        model.train()
        with torch.no_grad():
            for _ in range(8):
                model(torch.randn(16, *spec.frontend.output_shape) * 2 - 6)
        return save_checkpoint(path, spec, model.eval(), {}, class_names)

    return make
