"""Where trials run: local worker processes (default) or a Ray cluster. One tiny interface."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Callable
from typing import Any, Protocol

from audio_nas.errors import SearchError


class Executor(Protocol):
    def submit(self, fn: Callable[[dict], dict], payload: dict) -> Any: ...

    def wait_any(self, handles: list[Any], timeout_s: float | None = None) -> list[Any]: ...

    def result(self, handle: Any) -> dict: ...

    def shutdown(self) -> None: ...


def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class LocalExecutor:
    """A spawn-context process pool; each worker gets cores // workers torch threads."""

    def __init__(self, workers: int):
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )

    def submit(self, fn, payload):
        return self.pool.submit(fn, payload)

    def wait_any(self, handles, timeout_s=None):
        done, _ = cf.wait(handles, timeout=timeout_s, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle) -> dict:
        try:
            return handle.result()
        except Exception as exc:  # a worker died (e.g. killed by the OOM killer)
            return {"state": "failed", "error": f"worker process failed: {type(exc).__name__}: {exc}"}

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray tasks; ``address=None`` starts a local Ray instance with ``workers`` CPUs."""

    def __init__(self, workers: int, address: str | None):
        try:
            import ray
        except ImportError as exc:
            raise SearchError("executor 'ray' needs Ray: pip install 'audio-nas[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            if address:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=workers, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False
                )
        self._remote = {}

    def submit(self, fn, payload):
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(num_cpus=1)(fn)
        return self._remote[fn].remote(payload)

    def wait_any(self, handles, timeout_s=None):
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout_s)
        return done

    def result(self, handle) -> dict:
        try:
            return self.ray.get(handle)
        except Exception as exc:
            return {"state": "failed", "error": f"ray task failed: {type(exc).__name__}: {exc}"}

    def shutdown(self) -> None:
        self.ray.shutdown()


def make_executor(kind: str, workers: int, address: str | None = None) -> Executor:
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers, address)
    raise SearchError(f"unknown executor {kind!r}; choose local or ray")
