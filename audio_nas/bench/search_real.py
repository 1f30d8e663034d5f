"""Real-training check of the surrogate benchmark's ranking (issue 14, item 3).

``audio-nas bench search`` ranks the strategies on the table surrogate. This runs the top methods as real
searches on synth-kws (the default config's recipe: 15 epochs, batch 64, the default pruner; one worker
per search, so each search is deterministic; no baselines, no export, no streaming) and compares their
hypervolume after 25 / 50 / N trials, in the search's objectives (1 - validation accuracy, log10 µJ,
log10 board RAM; reference (1, 5, 6); complete trials among the first K asked), with the same methods and
seeds on the surrogate at the same budget beside them.

    python -m audio_nas.bench.search_real [--methods hybrid hybrid-credit bo] [--seeds 0 1 2]
        [--trials 60] [--jobs 2] [--device cpu|cuda|auto] [--report-only]

Stored searches resume (runs/bench-search-real/<method>-s<seed>); each records where it ran
(``machine.json``). ``--report-only`` writes the section from stored searches without touching them, e.g.
after copying them back from the GPU machine that ran them.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.bench.search import DEFAULT_TABLE, REF, _q, _table_path, compare

TOP_METHODS = ("hybrid", "hybrid-credit", "bo")
MACHINE_FILE = "machine.json"  # where a stored search ran


def run_dir(method: str, seed: int) -> Path:
    from audio_nas.paths import runs_dir

    return runs_dir() / "bench-search-real" / f"{method}-s{seed}"


def search_config(method: str, seed: int, n_trials: int, device: str = "cpu"):
    from audio_nas.search import SearchConfig
    from audio_nas.training.config import TrainConfig

    return SearchConfig(
        name=f"search-real-{method}-s{seed}",
        dataset="synth-kws",
        strategy=method,
        n_trials=n_trials,
        workers=1,
        seed=seed,
        # bo's benchmarked n_initial for bo and bo-gp; the hybrids' 8 as in their stored runs of 2026-11-23
        n_initial=min(5 if method in ("bo", "bo-gp") else 8, n_trials),
        train=TrainConfig(epochs=15, batch_size=64, num_threads=1, device=device),
        baselines=(),
        export_pareto=False,
        stream_eval=False,
    )


def _search(method: str, seed: int, n_trials: int, device: str) -> float:
    from audio_nas.bench.report import machine_description
    from audio_nas.search import run_search

    t0 = time.perf_counter()
    run_search(search_config(method, seed, n_trials, device), run_dir(method, seed))
    wall_s = time.perf_counter() - t0
    where = {"machine": machine_description(), "device": device, "gpu": _gpu_name(device), "wall_s": wall_s}
    (run_dir(method, seed) / MACHINE_FILE).write_text(json.dumps(where, indent=1) + "\n")
    return wall_s


def _gpu_name(device: str) -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else None


def ran_on(methods, seeds) -> str:
    """Where the stored searches ran, from their machine.json (written when a search finishes)."""
    seen = set()
    for m in methods:
        for s in seeds:
            f = run_dir(m, s) / MACHINE_FILE
            if f.exists():
                w = json.loads(f.read_text())
                seen.add(
                    f"{w['machine']}, train.device {w['device']}" + (f" ({w['gpu']})" if w["gpu"] else "")
                )
            else:
                seen.add("not recorded")
    return "; ".join(sorted(seen))


def hv_at(method: str, seed: int, budgets: list[int]) -> list[float]:
    """Hypervolume of the complete trials among the first K asked, for each K in ``budgets``."""
    from audio_nas.bench.quant_fronts import summarise, trial_rows  # the same HV (reference REF)

    out = []
    for k in budgets:
        rows = trial_rows(run_dir(method, seed), k)
        out.append(summarise(rows)["hv"] if rows else 0.0)
    return out


def run_searches(methods, seeds, n_trials: int, jobs: int, device: str) -> float:
    """Run (or resume) every (method, seed) search; returns the wall minutes."""
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futs = {pool.submit(_search, m, s, n_trials, device): (m, s) for m in methods for s in seeds}
        for fut in cf.as_completed(futs):
            m, s = futs[fut]
            print(f"{m} seed {s}: {fut.result():.0f} s", flush=True)
    return (time.perf_counter() - t0) / 60


def report(methods, seeds, n_trials: int, jobs: int, device: str, minutes: float | None) -> str:
    """The section from the stored searches, with the surrogate's answer for the same methods and seeds."""
    budgets = sorted({25, 50, n_trials})
    real = {m: np.array([hv_at(m, s, budgets) for s in seeds]) for m in methods}
    cores = min(jobs, os.cpu_count() or 1)  # this machine's, whatever ran the real searches
    sur, _ = compare(str(_table_path(DEFAULT_TABLE)), list(seeds), n_trials, list(methods), jobs=cores)
    rows = []
    for m in methods:
        rows.append([m] + [_q(real[m][:, i]) for i in range(len(budgets))] + [_q(sur[m][:, n_trials - 1])])
    per_seed = [
        [m, s] + [f"{v:.3f}" for v in real[m][i]] + [f"{sur[m][i, n_trials - 1]:.3f}"]
        for m in methods
        for i, s in enumerate(seeds)
    ]
    rank_real = sorted(methods, key=lambda m: -np.median(real[m][:, -1]))
    rank_sur = sorted(methods, key=lambda m: -np.median(sur[m][:, -1]))
    wall = f"{minutes:.0f} min in all" if minutes is not None else "wall time in each run's machine.json"
    body = (
        f"Real searches on synth-kws: {len(seeds)} seeds x {n_trials} trials per method, 15 epochs, "
        f"batch 64, the default pruner (pareto-median), 1 worker per search, "
        + (f"train.device {device}, {jobs} searches at a time; " if minutes is not None else "")
        + f"{wall}. Ran on: {ran_on(methods, seeds)}. Hypervolume of the complete "
        f"trials among the first K asked (1 - val acc, log10 µJ, log10 board RAM; reference {REF}); beside "
        f"it, the same methods and seeds on the table surrogate at {n_trials} evaluations (median [IQR]).\n\n"
        + markdown_table(
            ["method"] + [f"real HV@{k}" for k in budgets] + [f"surrogate HV@{n_trials}"],
            rows,
        )
        + "\n\nPer seed:\n\n"
        + markdown_table(
            ["method", "seed"] + [f"real HV@{k}" for k in budgets] + [f"surrogate HV@{n_trials}"], per_seed
        )
        + f"\n\nRanking by median at {n_trials}: real {' > '.join(rank_real)}; surrogate "
        f"{' > '.join(rank_sur)}. "
        + ("The surrogate's ranking holds." if rank_real == rank_sur else "The rankings differ.")
    )
    write_section(
        "search-real",
        "Search strategies: real-training check of the surrogate ranking",
        f"python -m audio_nas.bench.search_real --methods {' '.join(methods)} --seeds "
        f"{' '.join(map(str, seeds))} --trials {n_trials}"
        + (f" --jobs {jobs} --device {device}" if minutes is not None else " --report-only"),
        body,
    )
    return body


def run(
    methods=TOP_METHODS,
    seeds=(0, 1, 2),
    n_trials: int = 60,
    jobs: int = 2,
    device: str = "cpu",
    report_only: bool = False,
) -> str:
    minutes = None if report_only else run_searches(methods, seeds, n_trials, jobs, device)
    return report(methods, seeds, n_trials, jobs, device, minutes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(TOP_METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="train.device")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="only report the stored searches (e.g. copied back from the GPU machine that ran them)",
    )
    a = ap.parse_args(argv)
    print(run(tuple(a.methods), tuple(a.seeds), a.trials, a.jobs, a.device, a.report_only))


if __name__ == "__main__":
    main()
