"""The search loop: ask -> constraint check -> train (in workers) -> tell, everything in the store.

Resumability: each ask, each start and each result is committed to SQLite before the next step,
and the strategy state is saved with every ask and tell in the same transaction. Results are told in ask
order (search/ordering.py), so the same seed and worker count give the same trials. After ``kill -9``,
running the same command requeues the trials that were running, keeps every finished one, restores the
strategy, tells it the results it had not been told, and continues until the budget is reached exactly.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_nas.config import to_dict
from audio_nas.data import load_dataset
from audio_nas.energy import load_board
from audio_nas.errors import SearchError
from audio_nas.paths import runs_dir
from audio_nas.progress import Progress
from audio_nas.search.config import SearchConfig
from audio_nas.search.datafree import datafree_space, prepare_synthetic, synth_name
from audio_nas.search.evaluate import cheap_objectives, evaluate_trial
from audio_nas.search.executors import make_executor
from audio_nas.search.objectives import (
    DEFAULT_OBJECTIVES,
    cost_values,
    hypervolume,
    non_dominated,
    objective_values,
)
from audio_nas.search.ordering import OrderedAskTell, crash_point, lookahead_for, peer_trials
from audio_nas.search.store import FINISHED, TrialStore
from audio_nas.search.strategies import STRATEGIES, StrategyContext
from audio_nas.space import ArchSpec, SearchSpace

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    run_dir: Path
    n_finished: int
    pareto_ids: list[int]
    hypervolume: float
    wall_s: float


def _space_for(cfg: SearchConfig):

    bits = tuple(sorted(set(cfg.weight_bits)))
    if cfg.evaluator == "surrogate":
        return SearchSpace(weight_bits_choices=bits)

    ds = load_dataset(cfg.dataset, on_error=cfg.on_error)  # generates the embedded dataset on first use
    return SearchSpace(
        n_classes=len(ds.class_names),
        sample_rate_hz=ds.sample_rate_hz,
        clip_ms=ds.clip_ms,
        weight_bits_choices=bits,
    )


def trial_objectives(t, names: Sequence[str] = DEFAULT_OBJECTIVES) -> np.ndarray:
    """A trial's minimised objective vector for the config's ``objectives`` (search/objectives.py)."""
    return objective_values(vars(t), names)


class SearchRunner:
    def __init__(self, cfg: SearchConfig, run_dir: str | Path, *, sleep_s: float = 0.0, evaluate_fn=None):

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.store = TrialStore(self.run_dir / "study.sqlite")
        self.store.check_resumable()
        # evaluate_fn(payload) -> result: a top-level function (process pools pickle it); tests pass a fixture
        self.evaluate_fn = evaluate_fn or evaluate_trial
        self.store.check_config(
            to_dict(cfg), SearchConfig.COMPATIBILITY_KEYS, defaults=to_dict(SearchConfig(name=cfg.name))
        )
        self.board = load_board(cfg.board)
        self.train_dataset = cfg.dataset  # what candidates train on: the dataset, or synth:DIR when data-free
        self.synth = None
        # data-free (search/datafree.py): train on the synthesised set, in any front-end it renders in
        if cfg.data_free:
            self.synth = prepare_synthetic(cfg, self.run_dir)
            self.train_dataset = synth_name(self.synth)
            self.space = datafree_space(self.synth, tuple(sorted(set(cfg.weight_bits))), cfg.pin_frontend)
        else:
            self.space = _space_for(cfg)
        self._cheap: dict[str, dict] = {}
        self.ctx = StrategyContext(
            space=self.space, cheap_objectives=self._cheap_for_strategy, hv_reference=cfg.hv_reference
        )
        strategy_cls = STRATEGIES[cfg.strategy]
        # n_initial goes to every strategy that has a random start (bo, hybrid, hybrid-credit)
        takes_n_initial = "n_initial" in inspect.signature(strategy_cls).parameters
        kwargs = {"n_initial": cfg.n_initial} if takes_n_initial else {}
        self.strategy = strategy_cls(self.ctx, seed=cfg.seed, **kwargs)
        state = self.store.get_meta("strategy_state")
        if state is not None:
            self.strategy.load_state_dict(state)
        self.sleep_s = sleep_s

    # -- cheap objectives, memoised per spec string
    def cheap(self, spec) -> dict:
        key = spec.to_str()
        if key not in self._cheap:
            self._cheap[key] = cheap_objectives(spec, self.board, self.cfg.energy_source)
        return self._cheap[key]

    def _cheap_for_strategy(self, spec):
        c = self.cheap(spec)
        if c["infeasible"]:
            return None
        return cost_values(dict(c, spec=spec.to_str()), self.cfg.objectives)

    def _peers(self, trial_id: int) -> list[tuple[float, list[float]]]:
        # the complete trials told before this one was asked: independent of timing (search/ordering.py)
        peers = peer_trials(self.store.trials(), trial_id, lookahead_for(self.cfg.workers))
        return [(math.log10(t.energy_uj), t.curve) for t in peers]

    def _payload(self, t) -> dict:

        return {
            "spec": t.spec,
            "evaluator": self.cfg.evaluator,
            "surrogate_table": self.cfg.surrogate_table,
            "dataset": self.train_dataset,
            "on_error": self.cfg.on_error,
            "train": to_dict(self.cfg.train),
            "pruner": to_dict(self.cfg.pruner),
            "peers": self._peers(t.id),
            "cheap": self.cheap(ArchSpec.from_str(t.spec)),
            "sleep_s": self.sleep_s,
        }

    def objectives(self, t) -> np.ndarray:
        """A trial's minimised vector for the config's objectives."""
        return trial_objectives(t, self.cfg.objectives)

    def _save_state(self) -> None:
        self.store.set_meta("strategy_state", self.strategy.state_dict())

    def front(self):
        done = [t for t in self.store.trials(("complete",)) if t.has_objectives]
        if not done:
            return [], np.zeros((0, 3))
        F = np.stack([self.objectives(t) for t in done])
        idx = non_dominated(F)
        return [done[i] for i in idx], F[idx]

    def run(self) -> SearchResult:

        cfg, store = self.cfg, self.store
        requeued = store.requeue_running()
        if requeued:
            log.info("resuming: %d trial(s) that were running are queued again", requeued)
        t0 = time.time()
        executor = make_executor(cfg.executor, cfg.workers, cfg.ray_address)
        in_flight: dict[int, object] = {}
        order = OrderedAskTell(
            store,
            self.strategy,
            save_state=self._save_state,
            objectives=self.objectives,
            lookahead=lookahead_for(cfg.workers),
            n_trials=cfg.n_trials,
        )
        bar = Progress(
            f"search {cfg.name}", cfg.n_trials, unit="trial", initial=store.count(FINISHED), logger=log
        )
        try:
            # resume in the order an uninterrupted run follows: every tell is followed by its asks, so first
            # finish the asks a crash cut short, then tell the results stored but not told
            order.ask_ahead()
            order.tell_ready()
            while True:
                order.ask_ahead()
                finished = store.count(FINISHED)
                out_of_time = cfg.time_budget_s is not None and time.time() - t0 > cfg.time_budget_s
                while (
                    not out_of_time
                    and len(in_flight) < cfg.workers
                    and finished + len(in_flight) < cfg.n_trials
                ):
                    queued = [t for t in store.trials(("queued",)) if t.id not in in_flight]
                    if not queued:
                        break
                    t = queued[0]
                    c = self.cheap(ArchSpec.from_str(t.spec))
                    if c["infeasible"]:  # checked before any training
                        store.finish(t.id, "infeasible", {**c, "error": c["infeasible"]})
                        order.tell_ready()
                        finished += 1
                        bar.update(1, infeasible=store.count(("infeasible",)))
                        continue
                    store.mark_running(t.id, cfg.executor)
                    in_flight[t.id] = executor.submit(self.evaluate_fn, self._payload(t))
                if not in_flight:
                    break
                done = executor.wait_any(list(in_flight.values()))
                for tid in [k for k, h in in_flight.items() if h in done]:
                    handle = in_flight.pop(tid)
                    res = executor.result(handle)
                    trial = next(t for t in store.trials() if t.id == tid)
                    spec = ArchSpec.from_str(trial.spec)
                    cheap = self.cheap(spec)
                    state = res.pop("state")
                    store.finish(tid, state, {**cheap, **res})
                    crash_point("finished")
                    if state == "failed":
                        log.warning("trial %d failed: %s", tid, res.get("error", "").splitlines()[0])
                    front, Ff = self.front()
                    best = max((t.accuracy for t in front), default=float("nan"))
                    bar.update(
                        1,
                        front=len(front),
                        best_acc=f"{best:.3f}",
                        hv=f"{hypervolume(Ff, cfg.hv_reference):.4f}",
                        running=len(in_flight),
                    )
                order.tell_ready()  # in ask order: a result that finished early waits for the earlier ones
        except BaseException:
            bar.close("stopped")
            raise
        finally:
            bar.close()
            executor.shutdown()
        front, Ff = self.front()
        return SearchResult(
            self.run_dir,
            store.count(FINISHED),
            [t.id for t in front],
            hypervolume(Ff, cfg.hv_reference),
            time.time() - t0,
        )


def run_search(cfg: SearchConfig, run_dir: str | Path | None = None, **kwargs) -> SearchResult:

    run_dir = Path(run_dir) if run_dir else runs_dir() / cfg.name
    if cfg.n_trials < 1:
        raise SearchError("n_trials must be >= 1")
    runner = SearchRunner(cfg, run_dir, **kwargs)
    try:
        return runner.run()
    finally:
        runner.store.close()
