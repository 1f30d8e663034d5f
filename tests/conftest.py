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
