"""Progress for long steps, for a person at a terminal *and* for a log file.

``Progress`` shows a tqdm bar when ``paths.progress_enabled()`` (stderr is a terminal and
``AUDIO_NAS_NO_PROGRESS`` is not 1). Otherwise it logs plain lines through ``logging``::

    generating synth-kws: 120/3600 clips (3%), 2.10 clips/s, ETA 27m37s

one when the step starts, then at least every ``interval_s`` seconds while it runs (a heartbeat
thread writes the line even when one item takes longer than the interval, e.g. a search trial;
heartbeat lines come at most once a second), and a final ``done`` line with the total time.
The interval defaults to ``$AUDIO_NAS_PROGRESS_INTERVAL_S`` or 30 s. The CLI configures
logging at INFO on stderr, so ``make search > log 2>&1`` shows where the run is.

    with Progress("features logmel", total=len(batches), unit="batch", logger=log) as p:
        for b in batches:
            ...
            p.update(1, hv=f"{hv:.3f}")   # keyword arguments appear after the counts

    for item in track(items, "baselines", unit="model"):  # the same, as an iterator wrapper
        ...
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from audio_nas.paths import progress_enabled

T = TypeVar("T")
DEFAULT_INTERVAL_S = 30.0
HEARTBEAT_MIN_S = 1.0
_log = logging.getLogger(__name__)


def default_interval_s() -> float:
    raw = os.environ.get("AUDIO_NAS_PROGRESS_INTERVAL_S")
    if raw is None:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        _log.warning("AUDIO_NAS_PROGRESS_INTERVAL_S=%r is not a positive number; using 30 s", raw)
        return DEFAULT_INTERVAL_S
    return value


_PLURALS = {"batch": "batches"}


def _plural(unit: str) -> str:
    return _PLURALS.get(unit, unit if unit.endswith("s") else unit + "s")


def format_duration(seconds: float) -> str:
    """``45s``, ``3m07s``, ``1h02m``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """A tqdm bar on a terminal, periodic log lines otherwise (see the module doc).

    ``enabled=False`` shows nothing at all (for callers that run many small steps).
    ``clock`` is injectable for tests; ``heartbeat=False`` turns the background thread off, so
    lines are written only from ``update`` (and at the start and the end).
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        *,
        unit: str = "item",
        initial: int = 0,
        interval_s: float | None = None,
        logger: logging.Logger | None = None,
        enabled: bool = True,
        terminal: bool | None = None,
        heartbeat: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.desc, self.total, self.unit = desc, total, unit
        self.n = self.initial = initial
        self.interval_s = default_interval_s() if interval_s is None else float(interval_s)
        self.log = logger or _log
        self.enabled = enabled
        self.clock = clock
        self.postfix: dict[str, Any] = {}
        self.closed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = self._last_line = clock()
        self.bar = None
        if not enabled:
            return
        if progress_enabled() if terminal is None else terminal:
            from tqdm import tqdm  # the terminal path only

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit)
            return
        self._emit("started")
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, name=f"progress {desc}", daemon=True)
            self._thread.start()

    # -- public
    def update(self, n: int = 1, **postfix: Any) -> None:
        with self._lock:
            self.n += n
            if postfix:
                self.postfix.update(postfix)
            if self.bar is not None:
                if postfix:
                    self.bar.set_postfix(self.postfix, refresh=False)
                self.bar.update(n)
            elif self.enabled and not self.closed and self.clock() - self._last_line >= self.interval_s:
                self._emit()

    def set_postfix(self, **postfix: Any) -> None:
        self.update(0, **postfix)

    def close(self, state: str = "done") -> None:
        """End the bar, or write the final line (``done``; ``stopped`` when the step raised)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._stop.set()
            if self.bar is not None:
                self.bar.close()
            elif self.enabled:
                self._emit(state)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close("done" if exc_type is None else "stopped")

    # -- lines
    def line(self, state: str | None = None) -> str:
        """The text of one log line (also used by the tests)."""
        elapsed = self.clock() - self.t0
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        units = _plural(self.unit)
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        if self.total:
            count += f" {units} ({100 * self.n / self.total:.0f}%)"
        else:
            count += f" {units}"
        if state == "started":
            text = f"{self.desc}: started, {count}"
        elif state in ("done", "stopped"):
            text = f"{self.desc}: {state}, {count} in {format_duration(elapsed)}"
            if done and elapsed > 0:
                text += f" ({rate:.3g} {units}/s)"
        else:
            text = f"{self.desc}: {count}, {rate:.3g} {units}/s"
            if self.total is not None and rate > 0 and self.n < self.total:
                text += f", ETA {format_duration((self.total - self.n) / rate)}"
            elif done == 0:
                text += f", {format_duration(elapsed)} elapsed"
        if self.postfix:
            text += ", " + ", ".join(f"{k} {v}" for k, v in self.postfix.items())
        return text

    def _emit(self, state: str | None = None) -> None:
        self._last_line = self.clock()
        self.log.info("%s", self.line(state))

    def _beat(self) -> None:
        # heartbeat lines (no update for a while) come at most once per HEARTBEAT_MIN_S, however small
        # the interval: a tiny interval means "a line at every update", not a busy thread
        wake_s = min(max(self.interval_s, 0.1), 1.0)
        every_s = max(self.interval_s, HEARTBEAT_MIN_S)
        while not self._stop.wait(wake_s):
            with self._lock:
                if self.closed:
                    return
                if self.clock() - self._last_line >= every_s:
                    self._emit()


def track(
    iterable: Iterable[T],
    desc: str,
    total: int | None = None,
    **kwargs: Any,
) -> Iterator[T]:
    """Iterate over ``iterable`` with a ``Progress`` (``total`` from ``len()`` when it has one)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    p = Progress(desc, total, **kwargs)
    try:
        for item in iterable:
            yield item
            p.update(1)
    except BaseException:  # the consumer raised or stopped early (GeneratorExit)
        p.close("stopped")
        raise
    p.close()
