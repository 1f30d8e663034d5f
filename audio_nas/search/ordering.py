"""Deterministic ask/tell order and crash-safe bookkeeping for the search runner.

Why a fixed order: a strategy's next proposal depends on which results it has been told. If results
were told as they finish, two runs with the same seed would diverge as soon as two workers finish in a
different order (training times vary with the machine's load). So:

- results are told in **ask order** (trial id order); a result that finishes early is kept in the store
  (state finished, ``told = 0``) until every earlier trial has been told;
- trial ``k + lookahead`` is asked right after trial ``k`` is told (``lookahead`` = ``2 * workers - 1``
  asked-but-not-told trials at most), never at a moment that depends on timing;
- the pruner's peers for trial ``k`` are the complete trials told before ``k`` was asked, i.e. the trials
  ``< k - lookahead + 1`` in ask order, again independent of timing.

The sequence of ask and tell calls the strategy sees is then a function of the seed, the worker count
and the results alone; with a deterministic evaluator (the synthetic one, or CPU training with a fixed
thread count) the same seed and worker count give the same trials, interrupted or not. The price: a
worker can idle when ``workers - 1`` results wait behind one slow trial (the extra ``workers - 1`` of
lookahead keeps the others busy meanwhile). One worker gives the plain alternation ask, tell, ask, ...

Durability: each ask inserts the trial and saves the strategy state in one transaction; each tell marks
the trial told and saves the strategy state in one transaction. ``crash_point(name)`` kills the process
at named moments inside those transactions when ``AUDIO_NAS_CRASH_AT`` asks for it (tests only).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

import numpy as np

from audio_nas.search.store import FINISHED, Trial, TrialStore
from audio_nas.space import ArchSpec

log = logging.getLogger(__name__)

CRASH_ENV = "AUDIO_NAS_CRASH_AT"
CRASH_POINTS = ("ask", "asked", "finished", "tell")
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook: ``AUDIO_NAS_CRASH_AT=NAME:N`` SIGKILLs this process the N-th time it passes NAME.

    ask: inside the ask transaction, after the INSERT, before the strategy state is saved;
    asked: right after the ask transaction committed; finished: after a result was stored, before it is
    told; tell: inside the tell transaction, after the strategy state is saved, before the commit.
    """
    want = os.environ.get(CRASH_ENV)
    if not want:
        return
    point, _, nth = want.partition(":")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def lookahead_for(workers: int) -> int:
    return 2 * workers - 1


def peer_trials(trials: list[Trial], trial_id: int, lookahead: int) -> list[Trial]:
    """The complete trials a trial's pruner may compare with: those told before it was asked."""
    ids = [t.id for t in trials]
    k = ids.index(trial_id)
    return [t for t in trials[: max(0, k - lookahead + 1)] if t.state == "complete" and t.curve]


class OrderedAskTell:
    """Asks ahead and tells in ask order, each step one store transaction (see the module doc)."""

    def __init__(
        self,
        store: TrialStore,
        strategy,
        *,
        save_state: Callable[[], None],
        objectives: Callable[[Trial], np.ndarray],
        lookahead: int,
        n_trials: int,
    ):
        if lookahead < 1:
            raise ValueError(f"lookahead must be >= 1, got {lookahead}")
        self.store, self.strategy = store, strategy
        self.save_state, self.objectives = save_state, objectives
        self.lookahead, self.n_trials = lookahead, n_trials

    def ask_ahead(self) -> int:
        """Ask until ``lookahead`` trials are asked and not told, or the whole budget is asked; the count."""
        trials = self.store.trials()
        untold = sum(not t.told for t in trials)
        asked = 0
        while untold < self.lookahead and len(trials) + asked < self.n_trials:
            with self.store.transaction():
                for spec, origin in self.strategy.ask(1):
                    self.store.add(spec.to_str(), spec.spec_hash, origin)
                crash_point("ask")
                self.save_state()
            crash_point("asked")
            untold += 1
            asked += 1
        return asked

    def tell_ready(self) -> int:
        """Tell every finished result whose earlier trials are all told, in ask order, asking ahead after
        each. Returns how many were told."""
        told = 0
        while True:
            head = next((t for t in self.store.trials() if not t.told), None)
            if head is None or head.state not in FINISHED:
                return told
            # a pruned trial's accuracy is that of a partly trained model: a strategy never gets it as if it
            # were final (issue 14, item 5); it learns only that the spec was tried
            F = self.objectives(head) if head.state == "complete" else None
            self.strategy.tell(ArchSpec.from_str(head.spec), F)
            with self.store.transaction():
                self.store.mark_told(head.id)
                self.save_state()
                crash_point("tell")
            told += 1
            self.ask_ahead()
