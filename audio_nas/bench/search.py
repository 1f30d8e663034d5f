"""Search benchmark: our strategies against Optuna (NSGA-II, TPE) and pymoo NSGA-II at equal budgets.

Objective (a): the synthetic objective of ``audio_nas.search.evaluate`` (real energy/RAM cost models,
capacity-saturating accuracy with spec-dependent structure; see that module's doc for why it is faithful).
All methods see the same encoded space ([0,1]^D decoded to the nearest valid spec) and the same board
constraint (an infeasible spec scores the reference point, i.e. adds no hypervolume).
Reported: mean hypervolume at 50/100/200 evaluations over seeds, and at how many evaluations the
default hybrid first reaches Optuna NSGA-II's mean hypervolume at 200.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.energy import load_board
from audio_nas.search.evaluate import cheap_objectives, synthetic_curve
from audio_nas.search.objectives import hypervolume, objective_vector
from audio_nas.search.strategies import STRATEGIES, StrategyContext
from audio_nas.space import DEFAULT_SPACE, ArchSpec, decode
from audio_nas.space.sampling import encoding_dim

REF = (1.0, 5.0, 6.0)
EPOCHS = 6
BOARD = "nucleo-l4r5zi"


@functools.lru_cache(maxsize=1)
def _board():
    return load_board(BOARD)


@functools.lru_cache(maxsize=50_000)
def _cheap(spec_str: str) -> dict:
    return cheap_objectives(ArchSpec.from_str(spec_str), _board())


def evaluate(spec: ArchSpec) -> np.ndarray:
    c = _cheap(spec.to_str())
    if c["infeasible"]:
        return np.array(REF, float)
    acc = synthetic_curve(spec, EPOCHS, c)[-1]
    return objective_vector(acc, c["energy_uj"], c["peak_ram_bytes"])


def _ctx() -> StrategyContext:
    def cheap(spec):
        c = _cheap(spec.to_str())
        return None if c["infeasible"] else (np.log10(c["energy_uj"]), np.log10(c["peak_ram_bytes"]))

    return StrategyContext(DEFAULT_SPACE, cheap, REF)


def run_ours(name: str, seed: int, n: int) -> list[np.ndarray]:
    kw = {"n_initial": 10} if name == "hybrid" else {}
    strat = STRATEGIES[name](_ctx(), seed=seed, **kw)
    out = []
    for _ in range(n):
        spec, _ = strat.ask(1)[0]
        f = evaluate(spec)
        strat.tell(spec, f)
        out.append(f)
    return out


def run_optuna(sampler_name: str, seed: int, n: int) -> list[np.ndarray]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.NSGAIISampler(seed=seed)
        if sampler_name == "nsga2"
        else optuna.samplers.TPESampler(seed=seed, multivariate=True)
    )
    study = optuna.create_study(directions=["minimize"] * 3, sampler=sampler)
    out = []
    d = encoding_dim(DEFAULT_SPACE)

    def objective(trial):
        x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(d)])
        f = evaluate(decode(x))
        out.append(f)
        return tuple(f)

    study.optimize(objective, n_trials=n)
    return out


def run_pymoo(seed: int, n: int) -> list[np.ndarray]:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize

    out: list[np.ndarray] = []

    class P(Problem):
        def __init__(self):
            super().__init__(n_var=encoding_dim(DEFAULT_SPACE), n_obj=3, xl=0.0, xu=1.0)

        def _evaluate(self, X, res, *args, **kwargs):
            F = np.stack([evaluate(decode(x)) for x in X])
            out.extend(F)
            res["F"] = F

    minimize(P(), NSGA2(pop_size=20), ("n_evals", n), seed=seed, verbose=False)
    return out[:n]


METHODS = {
    **{name: functools.partial(run_ours, name) for name in ("random", "evolution", "bo", "pso", "hybrid")},
    "optuna-nsga2": lambda s, n: run_optuna("nsga2", s, n),
    "optuna-tpe": lambda s, n: run_optuna("tpe", s, n),
    "pymoo-nsga2": run_pymoo,
}


def hv_at(F: list[np.ndarray], ks: list[int]) -> list[float]:
    A = np.stack(F)
    return [hypervolume(A[:k], REF) for k in ks]


def run_bench(quick: bool = False) -> None:
    seeds = [0, 1] if quick else [0, 1, 2, 3, 4]
    n = 60 if quick else 200
    checkpoints = [k for k in (25, 50, 100, 150, 200) if k <= n]
    results: dict[str, np.ndarray] = {}
    times: dict[str, float] = {}
    for name, fn in METHODS.items():
        t0 = time.perf_counter()
        results[name] = np.array([hv_at(fn(seed, n), list(range(1, n + 1))) for seed in seeds])
        times[name] = (time.perf_counter() - t0) / len(seeds)
    rows = []
    for name, curves in results.items():
        mean = curves.mean(axis=0)
        rows.append(
            [name]
            + [f"{mean[k - 1]:.3f} ± {curves[:, k - 1].std():.3f}" for k in checkpoints]
            + [f"{times[name]:.0f}"]
        )
    target = results["optuna-nsga2"].mean(axis=0)[n - 1]
    hybrid = results["hybrid"].mean(axis=0)
    reach = next((k + 1 for k, v in enumerate(hybrid) if v >= target), None)
    outcome = f"reached at {reach} evaluations" if reach else f"not reached within {n}"
    body = (
        f"Objective (a): synthetic accuracy with the real energy (emulated cycle model, {BOARD}) and RAM "
        f"models; {len(seeds)} seeds, {n} evaluations each; hypervolume of (1 - acc, log10 µJ, log10 B) with "
        f"reference {REF}. Mean ± std over seeds.\n\n"
        + markdown_table(["method"] + [f"HV@{k}" for k in checkpoints] + ["s per run"], rows)
        + f"\n\nGoal: the hybrid reaches Optuna NSGA-II's mean HV at {n} evaluations ({target:.3f}) in at "
        f"most {n // 2}. Result: **{outcome}**."
    )
    write_section(
        "search",
        "Search strategies vs Optuna and pymoo",
        "audio-nas bench search" + (" --quick" if quick else ""),
        body,
    )
    if not quick:
        run_pruning_section()


def run_pruning_bench(seeds=(0, 1, 2), n_trials: int = 60) -> str:
    """Early stopping: epochs saved and hypervolume lost, same strategy/seeds with and without the pruner."""
    import tempfile

    from audio_nas.search.config import PrunerConfig, SearchConfig
    from audio_nas.search.runner import SearchRunner

    rows = []
    for seed in seeds:
        res = {}
        for kind in ("none", "pareto-median"):
            with tempfile.TemporaryDirectory() as d:
                cfg = SearchConfig(
                    name="p",
                    evaluator="synthetic",
                    n_trials=n_trials,
                    workers=1,
                    seed=seed,
                    pruner=PrunerConfig(kind=kind),
                )
                r = SearchRunner(cfg, d)
                out = r.run()
                epochs = sum(t.epochs_run or 0 for t in r.store.trials())
                res[kind] = (out.hypervolume, epochs, cfg.train.epochs * n_trials)
                r.store.close()
        hv0, e0, full = res["none"]
        hv1, e1, _ = res["pareto-median"]
        rows.append(
            [
                seed,
                f"{hv0:.3f}",
                f"{hv1:.3f}",
                f"{100 * (hv0 - hv1) / hv0:+.1f}%",
                f"{e1}/{full}",
                f"{100 * (full - e1) / full:.0f}%",
            ]
        )
    return markdown_table(
        ["seed", "HV no pruning", "HV pareto-median", "HV lost", "epochs trained", "compute saved"], rows
    )


def run_pruning_section() -> None:
    body = (
        "Early stopping (`pruner.kind: pareto-median`, warm-up 2 epochs, 4 cheaper peers) against no "
        "pruning, hybrid strategy, synthetic objective with learning curves, 60 trials of 15 epochs, same "
        "seeds.\n\n" + run_pruning_bench()
    )
    write_section(
        "search-pruning",
        "Search: early stopping, compute saved vs hypervolume lost",
        "python -c 'from audio_nas.bench.search import run_pruning_section; run_pruning_section()'",
        body,
    )
