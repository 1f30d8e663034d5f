"""audio_nas.progress: log lines when stderr is not a terminal, a tqdm bar when it is."""

from __future__ import annotations

import logging
import time

import pytest

from audio_nas.progress import Progress, format_duration, track


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "audio_nas.progress"]


def test_log_lines_every_interval_with_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="audio_nas.progress")
    clock = FakeClock()
    with Progress(
        "generating x", total=10, unit="clip", interval_s=30, terminal=False, heartbeat=False, clock=clock
    ) as p:
        for i in range(10):
            clock.t += 10  # one clip every 10 s -> a line every third clip
            p.update(1, best=f"{i / 10:.1f}")
    lines = _lines(caplog)
    assert lines[0] == "generating x: started, 0/10 clips (0%)"
    periodic = lines[1:-1]
    assert len(periodic) == 3  # at 30 s, 60 s, 90 s
    assert periodic[0] == "generating x: 3/10 clips (30%), 0.1 clips/s, ETA 1m10s, best 0.2"
    assert lines[-1] == "generating x: done, 10/10 clips (100%) in 1m40s (0.1 clips/s), best 0.9"


def test_no_line_before_interval(caplog):
    caplog.set_level(logging.INFO, logger="audio_nas.progress")
    clock = FakeClock()
    p = Progress("step", total=100, interval_s=30, terminal=False, heartbeat=False, clock=clock)
    for _ in range(50):
        clock.t += 0.5
        p.update()
    assert len(_lines(caplog)) == 1  # only "started"
    p.close()
    assert _lines(caplog)[-1].startswith("step: done, 50/100 items (50%) in 25s")


def test_heartbeat_logs_while_one_item_takes_long(caplog):
    """A search trial can take minutes: the line still comes every interval, without an update."""
    caplog.set_level(logging.INFO, logger="audio_nas.progress")
    clock = FakeClock()
    with Progress("search", total=3, unit="trial", interval_s=30, terminal=False, clock=clock) as p:
        clock.t += 31
        deadline = time.monotonic() + 5
        while len(_lines(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _lines(caplog)[1] == "search: 0/3 trials (0%), 0 trials/s, 31s elapsed"
        p.update(1)
    assert _lines(caplog)[-1].startswith("search: done, 1/3 trials")


def test_tiny_interval_does_not_spin_the_heartbeat(caplog):
    caplog.set_level(logging.INFO, logger="audio_nas.progress")
    with Progress("fast", total=2, interval_s=1e-9, terminal=False):
        time.sleep(0.5)
    assert len(_lines(caplog)) == 2  # started, done: no heartbeat line within the first second


def test_track_wraps_an_iterable_and_logs_stopped_on_error(caplog):
    caplog.set_level(logging.INFO, logger="audio_nas.progress")
    assert list(track(range(4), "squares", terminal=False, interval_s=1e-9, heartbeat=False)) == [0, 1, 2, 3]
    assert _lines(caplog)[-1].startswith("squares: done, 4/4 items")
    with pytest.raises(RuntimeError):
        with Progress("boom", total=2, terminal=False, heartbeat=False):
            raise RuntimeError("x")
    assert _lines(caplog)[-1].startswith("boom: stopped, 0/2 items")


def test_disabled_and_logger_choice(caplog):
    caplog.set_level(logging.INFO)
    with Progress("quiet", total=2, enabled=False) as p:
        p.update(2)
    other = logging.getLogger("audio_nas.somewhere")
    with Progress("named", total=1, logger=other, terminal=False, heartbeat=False) as p:
        p.update()
    msgs = [(r.name, r.getMessage()) for r in caplog.records]
    assert not any("quiet" in m for _, m in msgs)
    assert ("audio_nas.somewhere", "named: started, 0/1 items (0%)") in msgs


def test_terminal_uses_tqdm_and_no_log_lines(caplog, capsys, monkeypatch):
    import tqdm

    caplog.set_level(logging.INFO, logger="audio_nas.progress")
    monkeypatch.delenv("AUDIO_NAS_NO_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    with Progress("bar", total=3, unit="clip", interval_s=1e-9) as p:
        assert isinstance(p.bar, tqdm.tqdm)
        for _ in range(3):
            p.update(1, hv="0.5")
    assert _lines(caplog) == []
    err = capsys.readouterr().err
    assert "bar" in err and "3/3" in err and "hv=0.5" in err


def test_no_progress_env_gives_log_lines(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="audio_nas.progress")
    monkeypatch.setenv("AUDIO_NAS_NO_PROGRESS", "1")
    with Progress("env", total=1, heartbeat=False) as p:
        assert p.bar is None
        p.update()
    assert _lines(caplog)[-1].startswith("env: done")


def test_interval_from_environment(monkeypatch):
    monkeypatch.setenv("AUDIO_NAS_PROGRESS_INTERVAL_S", "2.5")
    assert Progress("x", enabled=False).interval_s == 2.5
    monkeypatch.setenv("AUDIO_NAS_PROGRESS_INTERVAL_S", "soon")
    assert Progress("x", enabled=False).interval_s == 30.0


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.4, 61, 3599, 3720)] == [
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "1h02m",
    ]
