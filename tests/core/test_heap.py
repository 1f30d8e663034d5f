"""audio_nas.heap: glibc's trim and mmap thresholds raised once per process, a no-op elsewhere."""

from __future__ import annotations

import sys

import pytest

from audio_nas import heap


def test_thresholds_are_applied_once_and_again_is_a_no_op(monkeypatch):
    monkeypatch.setattr(heap, "_applied", None)
    ok = heap.retain_freed_memory()
    if sys.platform.startswith("linux"):
        assert ok is True and heap._applied == (heap.DEFAULT_TRIM_BYTES, heap.DEFAULT_MMAP_BYTES)
    assert heap.retain_freed_memory() is ok


def test_without_a_c_library_it_says_no(monkeypatch):
    monkeypatch.setattr(heap, "_applied", None)

    def missing(_name):
        raise OSError("no libc")

    monkeypatch.setattr(heap.ctypes, "CDLL", missing)
    if not sys.platform.startswith("linux"):
        pytest.skip("only Linux loads the C library")
    assert heap.retain_freed_memory() is False and heap._applied is None
