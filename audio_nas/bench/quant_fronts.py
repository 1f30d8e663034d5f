"""8-bit-only against mixed 4/8-bit weights at equal search budget (issue 15, item 4).

Two arms of the same search on synth-kws, identical but for the config key ``weight_bits``: ``[8]`` (int8
weights everywhere) and ``[4, 8]`` (a weight bit-width gene per block and the head). Both train every
candidate with quantisation-aware fine-tuning in the last ``QAT_EPOCHS`` epochs (``train.qat``; the best
checkpoint is chosen among QAT epochs only), so an int4 block's accuracy is its fake-quantised accuracy and an
int8 one's likewise. Costs are the search's own: energy per inference on the Nucleo-L4R5ZI from the per-op
model with the measured int4 (CMSIS-NN s4) kernels, the board's RAM, and the model's flash (int4 packed).

Reported per arm and seed: hypervolume of the complete trials in the search's objectives (1 - val acc,
log10 µJ, log10 board RAM bytes) and in (1 - val acc, log10 model flash bytes); the best validation and test
accuracy at equal flash and at equal energy (best complete trial whose cost is at most the budget). Then, for
the mixed arm's Pareto models that have int4 layers, the same spec at int8 trained with the same recipe and
seed: the accuracy 4-bit costs on these models.

    python -m audio_nas.bench.quant_fronts [--seeds 0 1] [--trials 40] [--epochs 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from audio_nas.bench.report import markdown_table, write_section

log = logging.getLogger(__name__)

ARMS = (("w8", (8,)), ("w4/8", (4, 8)))
SEEDS, N_TRIALS, EPOCHS, QAT_EPOCHS = (0, 1), 24, 8, 3
FLASH_BUDGETS_BYTES = (10_000, 15_000, 25_000, 40_000, 60_000)
ENERGY_BUDGETS_UJ = (200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0)
FLASH_HV_REF = (1.0, 7.0)  # (1 - acc, log10 bytes): accuracy 0, 10 MB


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What every trial of both arms trains with (and how the search starts)."""

    qat_epochs: int = QAT_EPOCHS
    max_train_examples: int | None = None  # None: the whole train split
    n_initial: int = 8
    tag: str = ""  # run directory suffix: a different recipe is a different study


def arm_config(arm: str, bits: tuple[int, ...], seed: int, n_trials: int, epochs: int, recipe=Recipe()):
    from audio_nas.search import SearchConfig
    from audio_nas.training.config import TrainConfig

    train = TrainConfig(
        epochs=epochs,
        batch_size=64,
        num_threads=1,
        qat=True,
        qat_epochs=recipe.qat_epochs,
        max_train_examples=recipe.max_train_examples,
    )
    return SearchConfig(
        name=f"quant-fronts-{arm.replace('/', '')}-s{seed}{recipe.tag}",
        dataset="synth-kws",
        n_trials=n_trials,
        workers=2,
        seed=seed,
        n_initial=min(recipe.n_initial, n_trials),
        weight_bits=bits,
        train=train,
        baselines=(),
        export_pareto=False,
    )


def run_dir_of(cfg) -> Path:
    from audio_nas.paths import runs_dir

    return runs_dir() / "bench-quant-fronts" / cfg.name


def has_w4(spec_text: str) -> bool:
    from audio_nas.space import ArchSpec

    s = ArchSpec.from_str(spec_text)
    return any(b.weight_bits == 4 for b in s.blocks) or s.head.weight_bits == 4


def trial_rows(run_dir: Path, budget: int | None = None) -> list[dict]:
    """Complete trials with their costs (model flash from the spec: int4 packed); with ``budget``, among the
    first ``budget`` trials the search asked (by trial id), so runs of different length compare at equal
    budget."""
    from audio_nas.search.store import TrialStore
    from audio_nas.space import ArchSpec, arch_costs

    store = TrialStore(run_dir / "study.sqlite")
    try:
        rows = []
        first = sorted(t.id for t in store.trials())[:budget] if budget else None
        for t in store.trials(("complete",)):
            if not t.has_objectives or (first is not None and t.id not in first):
                continue
            rows.append(
                {
                    "spec": t.spec,
                    "acc": t.accuracy,
                    "test_acc": t.test_accuracy,
                    "energy_uj": t.energy_uj,
                    "ram_bytes": t.peak_ram_bytes,
                    "flash_bytes": arch_costs(ArchSpec.from_str(t.spec)).flash_bytes,
                    "w4": has_w4(t.spec),
                }
            )
        return rows
    finally:
        store.close()


def wall_minutes(run_dir: Path) -> float:
    """Wall-clock of a search: first trial asked to last trial finished (resumes included)."""
    import sqlite3

    db = sqlite3.connect(run_dir / "study.sqlite")
    try:
        lo, hi = db.execute("SELECT MIN(created), MAX(finished) FROM trials").fetchone()
    finally:
        db.close()
    return (hi - lo) / 60 if lo and hi else float("nan")


def summarise(rows: list[dict]) -> dict:
    from audio_nas.search.objectives import hypervolume, non_dominated

    F3 = np.array([[1 - r["acc"], math.log10(r["energy_uj"]), math.log10(r["ram_bytes"])] for r in rows])
    F2 = np.array([[1 - r["acc"], math.log10(r["flash_bytes"])] for r in rows])
    front = [rows[i] for i in non_dominated(F3)]

    def best_under(key: str, budget: float) -> tuple[float, float] | None:
        ok = [r for r in rows if r[key] <= budget]
        if not ok:
            return None
        b = max(ok, key=lambda r: r["acc"])
        return b["acc"], b["test_acc"]

    return {
        "n_complete": len(rows),
        "hv": hypervolume(F3, (1.0, 5.0, 6.0)),
        "hv_flash": hypervolume(F2, FLASH_HV_REF),
        "front": front,
        "front_w4": sum(r["w4"] for r in front),
        "w4_trials": sum(r["w4"] for r in rows),
        "at_flash": {b: best_under("flash_bytes", b) for b in FLASH_BUDGETS_BYTES},
        "at_energy": {b: best_under("energy_uj", b) for b in ENERGY_BUDGETS_UJ},
    }


def int8_twin(spec_text: str) -> str:
    from audio_nas.space import ArchSpec

    s = ArchSpec.from_str(spec_text)
    return dataclasses.replace(
        s,
        blocks=tuple(dataclasses.replace(b, weight_bits=8) for b in s.blocks),
        head=dataclasses.replace(s.head, weight_bits=8),
    ).to_str()


def twin_accuracies(cfg, front: list[dict], cache_path: Path) -> list[dict]:
    """The mixed arm's int4 Pareto models trained again at int8 (same recipe and seed); cached per spec."""
    from audio_nas.data import load_dataset
    from audio_nas.features import compute_features
    from audio_nas.space import ArchSpec
    from audio_nas.training.trainer import train

    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    ds = load_dataset(cfg.dataset)
    out = []
    for r in front:
        if not r["w4"]:
            continue
        twin = int8_twin(r["spec"])
        key = f"{twin}|{cfg.train.seed}|{cfg.train.epochs}"
        if key not in cache:
            spec = ArchSpec.from_str(twin)
            res = train(spec, compute_features(ds, spec.frontend), cfg.train)
            cache[key] = {"acc": res.val_accuracy, "test_acc": res.test_accuracy}
            cache_path.write_text(json.dumps(cache, indent=1))
        out.append({**r, "twin_acc": cache[key]["acc"], "twin_test_acc": cache[key]["test_acc"]})
    return out


def _fmt(v: tuple[float, float] | None) -> str:
    return "-" if v is None else f"{v[0]:.3f} / {v[1]:.3f}"


def _med(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return f"{np.median(xs):.3f} [{min(xs):.3f}, {max(xs):.3f}]"


def run(
    seeds=SEEDS,
    n_trials: int = N_TRIALS,
    epochs: int = EPOCHS,
    write: bool = True,
    budget: int | None = None,
    search: bool = True,
    arms: tuple[str, ...] | None = None,
    recipe: Recipe = Recipe(),
) -> dict:
    from audio_nas.search import run_search

    t_start = time.perf_counter()
    results: dict = {}
    for seed in seeds:
        for arm, bits in ARMS:
            if arms is not None and arm not in arms:
                continue
            cfg = arm_config(arm, bits, seed, n_trials, epochs, recipe)
            t0 = time.perf_counter()
            if not search:
                results[(arm, seed)] = summarise(trial_rows(run_dir_of(cfg), budget))
                results[(arm, seed)]["wall_min"] = wall_minutes(run_dir_of(cfg))
                continue
            res = run_search(cfg, run_dir_of(cfg))
            log.info(
                "%s seed %d: %d trials, hv %.4f (%.0f s)",
                arm,
                seed,
                res.n_finished,
                res.hypervolume,
                time.perf_counter() - t0,
            )
            results[(arm, seed)] = summarise(trial_rows(run_dir_of(cfg), budget))
            results[(arm, seed)]["wall_min"] = wall_minutes(run_dir_of(cfg))
    if arms is not None:  # one arm's searches only (run beside the other arm's process)
        return {"results": results}
    twins = {}
    for seed in seeds:
        cfg = arm_config("w4/8", (4, 8), seed, n_trials, epochs, recipe)
        twins[seed] = twin_accuracies(
            cfg, results[("w4/8", seed)]["front"], run_dir_of(cfg).parent / f"int8-twins{recipe.tag}.json"
        )
    minutes = (time.perf_counter() - t_start) / 60
    if write:
        _write(results, twins, seeds, n_trials, epochs, minutes, budget, recipe)
    return {"results": results, "twins": twins}


def _write(results, twins, seeds, n_trials, epochs, minutes, budget=None, recipe=Recipe()) -> None:
    per_run = []
    for (arm, seed), s in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        per_run.append(
            [
                arm,
                seed,
                s["n_complete"],
                s["w4_trials"],
                f"{s['hv']:.4f}",
                f"{s['hv_flash']:.4f}",
                len(s["front"]),
                s["front_w4"],
                f"{s.get('wall_min', float('nan')):.0f}",
            ]
        )
    summary = []
    for arm, _ in ARMS:
        runs = [results[(arm, sd)] for sd in seeds]
        summary.append([arm, "hypervolume (acc, energy, RAM)", _med([r["hv"] for r in runs])])
        summary.append([arm, "hypervolume (acc, flash)", _med([r["hv_flash"] for r in runs])])
    budget_rows = []
    for key, budgets, unit in (
        ("at_flash", FLASH_BUDGETS_BYTES, "B flash"),
        ("at_energy", ENERGY_BUDGETS_UJ, "µJ"),
    ):
        for b in budgets:
            row = [f"≤ {b:g} {unit}"]
            for arm, _ in ARMS:
                vals = [results[(arm, sd)][key][b] for sd in seeds]
                row.append(_med([v[0] if v else None for v in vals]))
                row.append(_med([v[1] if v else None for v in vals]))
            budget_rows.append(row)
    twin_rows = []
    for seed in seeds:
        for r in twins[seed]:
            twin_rows.append(
                [
                    seed,
                    "`" + r["spec"].replace("|", "\\|") + "`",
                    f"{r['acc']:.3f}",
                    f"{r['twin_acc']:.3f}",
                    f"{r['test_acc']:.3f}",
                    f"{r['twin_test_acc']:.3f}",
                    r["flash_bytes"],
                    f"{r['energy_uj']:.0f}",
                ]
            )
    deltas = [r["acc"] - r["twin_acc"] for sd in seeds for r in twins[sd]]
    tdeltas = [r["test_acc"] - r["twin_test_acc"] for sd in seeds for r in twins[sd]]
    body = (
        f"Two arms of the same search on synth-kws, equal budget: {budget or n_trials} trials each"
        + (f" (the first {budget} asked of {n_trials}-trial runs)" if budget else "")
        + f", hybrid strategy (n_initial {recipe.n_initial}), "
        f"`train: epochs {epochs}, qat: true, qat_epochs {recipe.qat_epochs}, max_train_examples "
        f"{recipe.max_train_examples}` (both arms fine-tune with fake "
        f"quantisation, best checkpoint among the QAT epochs), pareto-median pruning, 2 workers, board "
        f"nucleo-l4r5zi, seeds {list(seeds)}; the arms differ only in `weight_bits` ([8] vs [4, 8]). "
        "Energy is "
        "the per-op model with the measured int4 kernels. Total "
        f"{minutes:.0f} min for the invocation that wrote this (stored searches resume, not rerun) on "
        "the shared 2-core machine (nice 5).\n\n"
        "Per run (complete trials only; `w4 trials`: trials with at least one int4 layer; front: "
        "non-dominated in (1 - val acc, log10 µJ, log10 board RAM)):\n\n"
        + markdown_table(
            [
                "arm",
                "seed",
                "complete",
                "w4 trials",
                "HV acc/energy/RAM",
                "HV acc/flash",
                "front",
                "front w4",
                "search min",
            ],
            per_run,
        )
        + "\n\nMedian [min, max] over seeds:\n\n"
        + markdown_table(["arm", "metric", "median [min, max]"], summary)
        + "\n\nBest validation / test accuracy at equal cost (best complete trial at most the budget; "
        "median [min, max] over seeds):\n\n"
        + markdown_table(["budget", "w8 val", "w8 test", "w4/8 val", "w4/8 test"], budget_rows)
        + "\n\nThe mixed arm's Pareto models with int4 layers, trained again with every layer at int8 (same "
        "recipe and seed): the accuracy int4 costs on these models"
        + (
            f" (val: median {np.median(deltas):+.3f}, test: median {np.median(tdeltas):+.3f} over "
            f"{len(deltas)} models; positive = int4 better)"
            if deltas
            else ""
        )
        + ":\n\n"
        + markdown_table(
            ["seed", "spec", "w4 val", "w8 val", "w4 test", "w8 test", "flash B (w4)", "µJ (w4)"], twin_rows
        )
    )
    write_section(
        "quant-fronts",
        "Quantisation: 8-bit-only vs mixed 4/8-bit fronts at equal search budget",
        f"python -m audio_nas.bench.quant_fronts --seeds {' '.join(map(str, seeds))} --trials {n_trials} "
        f"--epochs {epochs} --qat-epochs {recipe.qat_epochs} --n-initial {recipe.n_initial}"
        + (f" --max-train {recipe.max_train_examples}" if recipe.max_train_examples else "")
        + (f" --tag={recipe.tag}" if recipe.tag else "")
        + (f" --budget {budget}" if budget else ""),
        body,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m audio_nas.bench.quant_fronts", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--trials", type=int, default=N_TRIALS)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    ap.add_argument("--budget", type=int, default=None, help="compare the first N trials of each run")
    ap.add_argument("--analyse-only", action="store_true", help="summarise the stored runs, run no search")
    ap.add_argument("--arms", nargs="+", default=None, help="run only these arms' searches (w8, w4/8)")
    ap.add_argument("--qat-epochs", type=int, default=QAT_EPOCHS)
    ap.add_argument("--max-train", type=int, default=None, help="train examples per trial (default: all)")
    ap.add_argument("--n-initial", type=int, default=8, help="random trials before the model-based parts")
    ap.add_argument("--tag", default="", help="run directory suffix (a different recipe is another study)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(
        tuple(args.seeds),
        args.trials,
        args.epochs,
        write=not args.no_write,
        budget=args.budget,
        search=not args.analyse_only,
        arms=tuple(args.arms) if args.arms else None,
        recipe=Recipe(args.qat_epochs, args.max_train, args.n_initial, args.tag),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
