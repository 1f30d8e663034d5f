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


@pytest.mark.parametrize(("env", "expected"), [(None, 1), ("0", 0)])
def test_the_cli_applies_it_unless_told_not_to(monkeypatch, env, expected):
    import audio_nas.cli as cli

    calls = []
    monkeypatch.setattr(heap, "retain_freed_memory", lambda: calls.append(1) or True)
    if env is None:
        monkeypatch.delenv("AUDIO_NAS_RETAIN_HEAP", raising=False)
    else:
        monkeypatch.setenv("AUDIO_NAS_RETAIN_HEAP", env)
    monkeypatch.setattr(sys, "argv", ["audio-nas", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0 and len(calls) == expected
