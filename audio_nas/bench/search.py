"""Search benchmark (issue 14, item 3): our strategies against Optuna and pymoo on equal terms.

Objective: the learning-curve surrogate fitted on the table of trained architectures
(``audio_nas.search.surrogate``; its held-out fidelity is reported beside the results) for accuracy, the
real cost models for energy (emulated per-op model, ``BOARD``) and board RAM. Minimised vector
(1 - accuracy, log10 µJ, log10 bytes), hypervolume with reference ``REF``.

Fairness, the rules every method plays by (``Oracle``):
- the same encoded space ([0, 1]^D decoded to the nearest valid spec) and the same budget of evaluations;
- the same feasibility information: a spec that breaks the board's RAM/flash limit is answered at once
  with the reference point and costs no evaluation; a spec already evaluated is answered with its known
  result and costs nothing. Our strategies learn feasibility from the same cheap costs before asking; the
  peers are told the answer and asked again. A method that cannot find a new feasible spec within
  ``MAX_FREE_ANSWERS_PER_EVAL`` free answers per evaluation stops early (reported).
- the same seeds; peers' population sizes are set for the budget (NSGA-II: ``budget // 10``, at least 10).

Reported: median and interquartile range of hypervolume at 25/50/100/200 evaluations over >= 20 seeds,
a one-sided Mann-Whitney U test of the default strategy against the best peer at the full budget, and
the evaluations the default needs to reach the best peer's median hypervolume at the full budget.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.config import load_yaml
from audio_nas.energy import load_board
from audio_nas.errors import ConfigError
from audio_nas.search import SearchConfig
from audio_nas.search.evaluate import cheap_objectives
from audio_nas.search.objectives import hypervolume, objective_vector
from audio_nas.search.strategies import STRATEGIES, StrategyContext
from audio_nas.search.surrogate import CurveSurrogate, cross_validate, load_surrogate
from audio_nas.search.table import read_table
from audio_nas.space import DEFAULT_SPACE, ArchSpec, decode
from audio_nas.space.sampling import encoding_dim

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "search" / "configs" / "default.yaml"

REF = (1.0, 5.0, 6.0)
BOARD = "nucleo-l4r5zi"
DEFAULT_TABLE = "datasets/nas-table/synth-kws.csv.gz"
MAX_FREE_ANSWERS_PER_EVAL = 50


@functools.lru_cache(maxsize=1)
def _board():
    return load_board(BOARD)


@functools.lru_cache(maxsize=100_000)
def _cheap(spec_str: str) -> dict:
    return cheap_objectives(ArchSpec.from_str(spec_str), _board())


class BudgetExhausted(Exception):
    """The method used its budget of evaluations (or of free answers)."""


class Oracle:
    """Answers proposals: an infeasible or repeated spec is free, a new feasible one spends an evaluation.

    ``history`` holds the objective vectors of the spent evaluations in order (what the hypervolume
    curve is computed from).
    """

    def __init__(self, surrogate: CurveSurrogate, budget: int, seed: int):
        self.surrogate, self.budget, self.seed = surrogate, budget, seed
        self.known: dict[str, np.ndarray] = {}
        self.history: list[np.ndarray] = []
        self.free_answers = 0

    @property
    def done(self) -> bool:
        return len(self.history) >= self.budget

    def __call__(self, spec: ArchSpec) -> np.ndarray:
        if self.done:
            raise BudgetExhausted
        key = spec.to_str()
        c = _cheap(key)
        if c["infeasible"] or key in self.known:
            self.free_answers += 1
            if self.free_answers > MAX_FREE_ANSWERS_PER_EVAL * self.budget:
                raise BudgetExhausted
            return np.array(REF, float) if c["infeasible"] else self.known[key]
        curve, _ = self.surrogate.predict_curve(spec, seed=self.seed)
        f = objective_vector(max(curve), c["energy_uj"], c["peak_ram_bytes"])
        self.known[key] = f
        self.history.append(f)
        return f


def _ctx() -> StrategyContext:
    def cheap(spec):
        c = _cheap(spec.to_str())
        return None if c["infeasible"] else (np.log10(c["energy_uj"]), np.log10(c["peak_ram_bytes"]))

    return StrategyContext(DEFAULT_SPACE, cheap, REF)


def run_ours(name: str, oracle: Oracle, seed: int) -> None:
    kw = {"n_initial": 10} if name.startswith("hybrid") else {}
    strat = STRATEGIES[name](_ctx(), seed=seed, **kw)
    while not oracle.done:
        spec, _ = strat.ask(1)[0]
        strat.tell(spec, oracle(spec))


def _optuna_sampler(kind: str, seed: int, budget: int):
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(10, budget // 10))
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(kind)


def run_optuna(kind: str, oracle: Oracle, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["minimize"] * 3, sampler=_optuna_sampler(kind, seed, oracle.budget)
    )
    dists = {
        f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(encoding_dim(DEFAULT_SPACE))
    }
    while not oracle.done:
        trial = study.ask(dists)
        x = np.array([trial.params[f"x{i}"] for i in range(len(dists))])
        study.tell(trial, [float(v) for v in oracle(decode(x))])


def run_pymoo(oracle: Oracle, seed: int) -> None:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem

    problem = Problem(n_var=encoding_dim(DEFAULT_SPACE), n_obj=3, xl=0.0, xu=1.0)
    algorithm = NSGA2(pop_size=max(10, oracle.budget // 10))
    algorithm.setup(problem, termination=("n_gen", 10**6), seed=seed, verbose=False)
    while not oracle.done:
        pop = algorithm.ask()
        F = []
        for x in pop.get("X"):
            F.append(oracle(decode(x)) if not oracle.done else np.array(REF, float))
        pop.set("F", np.stack(F))
        algorithm.tell(infills=pop)


def run_botorch(oracle: Oracle, seed: int) -> None:
    from audio_nas.bench.botorch_peer import run_botorch as run

    ctx = _ctx()
    run(oracle, seed, ctx.cheap_objectives, DEFAULT_SPACE, REF)


METHODS: dict[str, Callable[[Oracle, int], None]] = {
    **{
        name: functools.partial(run_ours, name)
        for name in ("random", "evolution", "bo", "bo-gp", "pso", "hybrid", "hybrid-credit")
    },
    "optuna-tpe": functools.partial(run_optuna, "tpe"),
    "optuna-nsga2": functools.partial(run_optuna, "nsga2"),
    "optuna-gp": functools.partial(run_optuna, "gp"),
    "pymoo-nsga2": run_pymoo,
    "botorch-qehvi": run_botorch,
}
PEERS = ("random", "optuna-tpe", "optuna-nsga2", "optuna-gp", "pymoo-nsga2", "botorch-qehvi")
# Gaussian-process methods: minutes per run at 100 evaluations here, so the full grid leaves them out unless
# AUDIO_NAS_BENCH_GP=1; `python -m audio_nas.bench.search --methods ...` runs them at a smaller budget
GP_METHODS = ("optuna-gp", "bo-gp", "botorch-qehvi")


def run_method(name: str, surrogate: CurveSurrogate, seed: int, budget: int) -> tuple[np.ndarray, dict]:
    """Hypervolume after each spent evaluation (padded with the last value if the method stopped early)."""
    oracle = Oracle(surrogate, budget, seed)
    t0 = time.perf_counter()
    try:
        METHODS[name](oracle, seed)
    except BudgetExhausted:
        pass
    F = np.stack(oracle.history) if oracle.history else np.zeros((0, 3))
    hv = np.array([hypervolume(F[:k], REF) for k in range(1, len(F) + 1)] or [0.0])
    hv = np.concatenate([hv, np.full(budget - len(hv), hv[-1])]) if len(hv) < budget else hv
    return hv, {"evals": len(F), "free": oracle.free_answers, "s": time.perf_counter() - t0}


DEFAULT_STRATEGY = load_yaml(SearchConfig, DEFAULT_CONFIG).strategy  # what `make search` runs


@functools.cache
def user_budget() -> int:
    """``n_trials`` of the default search config: the budget a user's `make search` spends."""
    return int(load_yaml(SearchConfig, DEFAULT_CONFIG).n_trials)


def _q(x: np.ndarray) -> str:
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"{med:.3f} [{q1:.3f}, {q3:.3f}]"


def _run_job(name: str, table: str, seed: int, budget: int) -> tuple[np.ndarray, dict]:
    """One (method, seed) run in a worker process: the surrogate is fitted once per process; one thread
    per process, as the pool already has a process per core (GP methods oversubscribed the cores)."""
    import torch

    torch.set_num_threads(1)
    return run_method(name, load_surrogate(table), seed, budget)


def compare(
    surrogate: CurveSurrogate | str,
    seeds: list[int],
    budget: int,
    methods: list[str],
    progress=None,
    jobs: int = 1,
    cache: Path | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, list[dict]]]:
    """Every (method, seed) run; ``jobs`` > 1 runs them in that many processes (``surrogate`` is then the
    table path, so that each process fits its own). Results do not depend on ``jobs``.

    ``cache``: a folder where each finished run is kept (``<method>-s<seed>-b<budget>.npz``) and from which
    a later call takes it, so that an interrupted multi-hour comparison resumes instead of starting over."""
    runs: dict[tuple[str, int], tuple[np.ndarray, dict]] = {}
    for m in methods:
        for s in seeds:
            hit = _cached(cache, m, s, budget)
            if hit is not None:
                runs[m, s] = hit
    todo = [(m, s) for s in seeds for m in methods if (m, s) not in runs]  # seed-major: balanced if cut short
    if progress and len(todo) < len(methods) * len(seeds):
        progress(f"{len(methods) * len(seeds) - len(todo)} runs taken from {cache}")

    def keep(key: tuple[str, int], result: tuple[np.ndarray, dict]) -> None:
        runs[key] = result
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f"{key[0]}-s{key[1]}-b{budget}.tmp.npz"
            np.savez(tmp, hv=result[0], info=json.dumps(result[1]))
            tmp.replace(_cache_file(cache, key[0], key[1], budget))  # atomic: a kill leaves no half file

    if jobs > 1 and todo:
        if not isinstance(surrogate, str):
            raise TypeError("compare(jobs > 1) needs the table path, not a fitted surrogate")
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(_run_job, m, surrogate, s, budget): (m, s) for m, s in todo}
            for n, fut in enumerate(cf.as_completed(futs), 1):
                keep(futs[fut], fut.result())
                if progress:
                    progress(f"[{n}/{len(futs)}] {futs[fut][0]} seed {futs[fut][1]} done")
    elif todo:
        sur = load_surrogate(surrogate) if isinstance(surrogate, str) else surrogate
        for m in methods:
            for s in seeds:
                if (m, s) in todo:
                    keep((m, s), run_method(m, sur, s, budget))
            if progress:
                progress(f"{m}: done")
    curves = {m: np.stack([runs[m, s][0] for s in seeds]) for m in methods}
    info = {m: [runs[m, s][1] for s in seeds] for m in methods}
    return curves, info


def _cache_file(cache: Path, method: str, seed: int, budget: int) -> Path:
    return cache / f"{method}-s{seed}-b{budget}.npz"


def _cached(cache: Path | None, method: str, seed: int, budget: int) -> tuple[np.ndarray, dict] | None:
    if cache is None or not _cache_file(cache, method, seed, budget).exists():
        return None
    with np.load(_cache_file(cache, method, seed, budget), allow_pickle=False) as z:
        return z["hv"], json.loads(str(z["info"]))


def summary_md(
    curves: dict[str, np.ndarray], info: dict[str, list[dict]], budget: int, default: str = DEFAULT_STRATEGY
) -> str:
    checkpoints = sorted({k for k in (25, 50, user_budget(), 100, 200) if k <= budget}) or [budget]
    rows = []
    for name, c in curves.items():
        evals = [i["evals"] for i in info[name]]
        rows.append(
            [name]
            + [_q(c[:, k - 1]) for k in checkpoints]
            + [
                f"{np.median([i['free'] for i in info[name]]):.0f}",
                f"{min(evals)}",
                f"{np.median([i['s'] for i in info[name]]):.1f}",
            ]
        )
    table = markdown_table(
        ["method"] + [f"HV@{k} median [IQR]" for k in checkpoints] + ["free answers", "min evals", "s/run"],
        rows,
    )
    peers = [p for p in curves if p in PEERS]
    if default not in curves or not peers:
        return table
    best_peer = max(peers, key=lambda p: np.median(curves[p][:, -1]))
    target = float(np.median(curves[best_peer][:, -1]))
    med = np.median(curves[default], axis=0)
    reach = next((k + 1 for k, v in enumerate(med) if v >= target), None)
    p = mannwhitneyu(curves[default][:, -1], curves[best_peer][:, -1], alternative="greater").pvalue
    return (
        table
        + f"\n\nBest peer at {budget}: **{best_peer}** (median HV {target:.3f}). The default ({default}) "
        + (f"reaches it at **{reach}** evaluations" if reach else f"does **not** reach it within {budget}")
        + f" (2x sample efficiency, the issue's goal: at most {budget // 2}). "
        f"One-sided Mann-Whitney U, {default} > {best_peer} at {budget}: "
        f"p = {p:.3g} over {curves[default].shape[0]} seeds." + _against_own_parts(curves, default, budget)
    )


def _against_own_parts(curves: dict[str, np.ndarray], default: str, budget: int) -> str:
    """One-sided Mann-Whitney U of the default against each of our other strategies at the default config's
    budget, 100 and ``budget`` evaluations: is the default better than its parts (issue 14, item 4)?"""
    ours = [m for m in curves if m != default and m not in PEERS]
    if not ours:
        return ""
    at = sorted({k for k in (user_budget(), 100) if k <= budget} | {budget})
    parts = []
    for m in ours:
        ps = [
            mannwhitneyu(curves[default][:, k - 1], curves[m][:, k - 1], alternative="greater").pvalue
            for k in at
        ]
        parts.append(f"{m} " + " / ".join(f"{v:.2g}" for v in ps))
    return (
        f" Against our other strategies ({default} > each, p at "
        + " / ".join(str(k) for k in at)
        + " evaluations): "
        + "; ".join(parts)
        + "."
    )


def run_bench(quick: bool = False, table: str = DEFAULT_TABLE, jobs: int | None = None) -> None:
    """Full: 20 seeds x 200 evaluations. Quick: 5 seeds x 100. Both leave out the GP methods
    (``GP_METHODS``) unless ``AUDIO_NAS_BENCH_GP=1``: their per-step cost grows with the history (Optuna's
    GP sampler about 100 s for a 30-evaluation run here; bo-gp 79 s and the BoTorch peer 200 s at 100).
    ``jobs`` (default: every core) runs the (method, seed) grid in parallel."""
    seeds = list(range(5 if quick else 20))
    budget = 100 if quick else 200
    with_gp = os.environ.get("AUDIO_NAS_BENCH_GP") == "1"
    methods = [m for m in METHODS if with_gp or m not in GP_METHODS]
    left_out = f" ({', '.join(GP_METHODS)} left out: AUDIO_NAS_BENCH_GP=1 adds them)"
    rows = read_table(_table_path(table))
    surrogate = load_surrogate(str(_table_path(table)))
    fid = cross_validate(rows, folds=5)
    jobs = jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    curves, info = compare(
        str(_table_path(table)) if jobs > 1 else surrogate, seeds, budget, methods, progress=print, jobs=jobs
    )
    wall_min = (time.perf_counter() - t0) / 60
    body = (
        f"Objective: the table surrogate (`{table}`, {surrogate.n_rows} rows, {fid['archs']} architectures "
        f"between {fid['macs_range'][0]:,} and {fid['macs_range'][1]:,} MACs; held-out Kendall tau "
        f"{fid['kendall_tau']:.3f}, two-seed noise floor tau "
        f"{_fmt(fid['noise_floor'].get('kendall_tau'))} over {fid['noise_floor'].get('pairs', 0)} pairs) for "
        f"accuracy, the emulated energy model ({BOARD}) and board RAM for costs. {len(seeds)} seeds, "
        f"{budget} evaluations"
        f"{'' if with_gp else left_out}; "
        f"{wall_min:.0f} min on {jobs} processes. Infeasible and repeated proposals are answered free for "
        "every method. "
        f"Hypervolume of (1 - acc, log10 µJ, log10 B), reference {REF}. Not equalised: our model-based "
        "strategies use a candidate's energy and RAM (known from the spec) when choosing it and model only "
        "accuracy; the peers see those costs only as results.\n\n" + summary_md(curves, info, budget)
    )
    write_section(
        "search",
        "Search strategies vs Optuna and pymoo (fair, on the table surrogate)",
        "audio-nas bench search" + (" --quick" if quick else ""),
        body,
    )


SUBSET_SECTIONS = {
    "search-subset": "Search strategies: a subset at a smaller budget (Optuna GP)",
    "search-botorch": "Search strategies: BoTorch's GP and qLogEHVI as a peer and inside bo (bo-gp)",
    "search-botorch-200": "Search strategies at 200 evaluations: bo-gp against the BoTorch peer",
}


def _subset_store(section: str) -> Path:
    from audio_nas.paths import runs_dir

    return runs_dir() / "bench-search" / f"{section}.npz"


def run_subset(
    methods: list[str],
    n_seeds: int,
    budget: int,
    jobs: int | None = None,
    section: str = "search-subset",
    report_only: bool = False,
    table: str = DEFAULT_TABLE,
) -> str:
    """A few methods on more evaluations than ``--quick`` and fewer than the full run, in their own section
    (``SUBSET_SECTIONS``): e.g. the GP-based methods, too slow for the full grid, against the default.

    The hypervolume curves are kept in ``runs/bench-search/<section>.npz``; ``report_only`` writes the
    section again from them (e.g. after the default strategy changed) without running anything. Each
    finished run is also kept in ``runs/bench-search/<section>/`` and taken from there by the next call with
    the same budget (an interrupted subset resumes; fewer seeds report the ones done). The key is method,
    seed and budget, not the code: delete that folder after changing a strategy."""
    if section not in SUBSET_SECTIONS:
        raise ConfigError(f"unknown section {section!r}; available: {', '.join(SUBSET_SECTIONS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; available: {', '.join(METHODS)}")
    store = _subset_store(section)
    if report_only:
        if not store.exists():
            raise ConfigError(f"no stored runs at {store}; run the subset without --report-only first")
        saved = np.load(store, allow_pickle=False)
        meta = json.loads(str(saved["meta"]))
        missing = [m for m in methods if m not in meta["methods"]]
        if missing or meta["seeds"] != n_seeds or meta["budget"] != budget:
            raise ConfigError(
                f"{store} holds {meta['methods']} x {meta['seeds']} seeds x {meta['budget']} evaluations; "
                f"asked for {methods} x {n_seeds} x {budget}{f' (missing {missing})' if missing else ''}"
            )
        curves = {m: saved[f"hv__{m}"] for m in methods}
        info = {m: meta["info"][m] for m in methods}
        minutes, jobs = meta["minutes"], meta["jobs"]
    else:
        jobs = jobs or os.cpu_count() or 1
        t0 = time.perf_counter()
        curves, info = compare(
            str(_table_path(table)),
            list(range(n_seeds)),
            budget,
            methods,
            progress=print,
            jobs=jobs,
            cache=store.with_suffix(""),  # each finished run: an interrupted subset resumes
        )
        minutes = (time.perf_counter() - t0) / 60
        meta = {"methods": methods, "seeds": n_seeds, "budget": budget, "info": info}
        store.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            store,
            meta=json.dumps({**meta, "minutes": minutes, "jobs": jobs}),
            **{f"hv__{m}": c for m, c in curves.items()},
        )
    # the runs' own time, summed: a wall time means little when some runs were taken from the cache
    run_min = sum(i["s"] for runs in info.values() for i in runs) / 60
    body = (
        f"The table surrogate as in the full benchmark; {n_seeds} seeds (0-{n_seeds - 1}, as there), "
        f"{budget} evaluations; the runs took {run_min:.0f} min in all (sum over runs, {jobs} processes; "
        f"{minutes:.0f} min wall in the last call).\n\n" + summary_md(curves, info, budget)
    )
    command = (
        f"python -m audio_nas.bench.search --methods {' '.join(methods)} --seeds {n_seeds} --budget {budget}"
    )
    write_section(
        section,
        SUBSET_SECTIONS[section],
        command + ("" if section == "search-subset" else f" --section {section}"),
        body,
    )
    return body


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Some strategies on the table surrogate (section search-subset)")
    ap.add_argument("--methods", nargs="+", required=True, help=", ".join(METHODS))
    ap.add_argument("--seeds", type=int, default=20, help="number of seeds (0..N-1)")
    ap.add_argument("--budget", type=int, default=100, help="evaluations per run")
    ap.add_argument("--jobs", type=int, default=None, help="processes (default: every core)")
    ap.add_argument("--section", default="search-subset", choices=sorted(SUBSET_SECTIONS))
    ap.add_argument(
        "--report-only", action="store_true", help="write the section from the stored runs, run nothing"
    )
    a = ap.parse_args(argv)
    print(run_subset(a.methods, a.seeds, a.budget, a.jobs, a.section, a.report_only))


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _table_path(table: str) -> Path:
    p = Path(table)
    return p if p.exists() or p.is_absolute() else Path(__file__).resolve().parents[2] / p


if __name__ == "__main__":
    main()
