"""``audio-nas bench table build|info``: build and inspect the table of trained architectures.

The library part (plan, rows, storage, summaries) is ``audio_nas.search.table``; this entry point runs
the plan in worker processes, appends each finished row to ``<out>.work.jsonl`` (kill -9 safe; a re-run
skips the (spec, seed) pairs already there), prints one progress line per row, and rewrites the CSV and
the manifest JSON beside it at the start, every ``checkpoint_every`` rows or ``checkpoint_s`` seconds,
and at the end.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from audio_nas.config import from_dict, load_yaml, to_dict
from audio_nas.data import load_dataset
from audio_nas.errors import ConfigError
from audio_nas.search.config import SearchConfig
from audio_nas.search.table import (
    BLOCK_TYPES,
    ROW_COLUMNS,
    RowLog,
    coverage,
    manifest,
    noise_floor,
    read_table,
    sample_plan,
    train_row,
    write_table,
)
from audio_nas.space import ArchSpec, SearchSpace
from audio_nas.space.plan import plan_layers
from audio_nas.training import TrainConfig

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "search" / "configs" / "default.yaml"
DEFAULT_OUT = Path("datasets/nas-table/synth-kws.csv.gz")


def work_path(out: Path) -> Path:
    name = out.name
    for suffix in (".csv.gz", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return out.with_name(f"{name}.work.jsonl")


def manifest_path(out: Path) -> Path:
    return work_path(out).with_name(work_path(out).name.replace(".work.jsonl", ".manifest.json"))


def spec_macs(spec: str) -> int:
    return sum(layer.macs for layer in plan_layers(ArchSpec.from_str(spec)))


def cost_weight(spec: str) -> float:
    """Relative training time of a row for the ETA: time ~ MACs^0.85 above ~0.3 M MACs, a floor below
    (a probe of 20 plan specs, 1 thread: 15 epochs took 7 s at 35 k MACs, 65 s at 2.2 M, 1-4 h at 200 M)."""
    return max(spec_macs(spec), 300_000) ** 0.85


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    if device != "cpu" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _init_worker(threads: int) -> None:
    """Worker process: torch threads, and exit when the parent dies (a kill -9 of the build must not
    leave orphans training on a shared machine)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(2.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _recipe(config: Path, device: str | None, epochs: int | None) -> TrainConfig:
    cfg = load_yaml(SearchConfig, config)
    overrides = {k: v for k, v in {"device": device, "epochs": epochs}.items() if v is not None}
    return from_dict(TrainConfig, {**to_dict(cfg.train), **overrides})


def _fmt_h(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def build(
    *,
    dataset: str = "synth-kws",
    count: int = 1000,
    seeds_for: int = 100,
    workers: int = 1,
    out: Path = DEFAULT_OUT,
    device: str | None = None,
    config: Path = DEFAULT_CONFIG,
    epochs: int | None = None,
    presets: tuple[str, ...] | None = None,
    plan_seed: int = 0,
    checkpoint_every: int = 25,
    checkpoint_s: float = 900.0,
    limit: int | None = None,
    min_macs: int | None = None,
    max_macs: int | None = None,
    echo=print,
) -> dict[str, Any]:
    """Train the plan's missing rows; returns the manifest. ``limit`` stops after that many new rows;
    ``min_macs``/``max_macs`` train only the rows in that MAC range (e.g. the cheap rows on CPUs and the
    expensive ones on a GPU machine; the working files of two machines concatenate into one)."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    recipe = _recipe(config, device, epochs)
    ds = load_dataset(dataset)  # generates the embedded dataset on first use
    space = SearchSpace(n_classes=len(ds.class_names), sample_rate_hz=ds.sample_rate_hz, clip_ms=ds.clip_ms)
    plan_args = {"count": count, "seeds_for": seeds_for, "plan_seed": plan_seed, "presets": presets}
    plan = sample_plan(count, seeds_for=seeds_for, space=space, seed=plan_seed, presets=presets)
    out = Path(out)
    if not work_path(out).exists() and out.exists():
        # a committed table resumes without its (git-ignored) working file: its rows seed a new one
        rows = read_table(out)
        seeded = RowLog(work_path(out))
        for r in rows:
            seeded.append({c: r.get(c) for c in ROW_COLUMNS})
        echo(f"resuming from {out}: {len(rows)} rows copied into {work_path(out)}")
    log = RowLog(work_path(out))
    done = log.done()
    todo = [it for it in plan if it.key not in done]
    if min_macs is not None or max_macs is not None:
        lo, hi = min_macs or 0, max_macs if max_macs is not None else float("inf")
        todo = [it for it in todo if lo <= spec_macs(it.spec) <= hi]
    if limit is not None:
        todo = todo[:limit]
    n_done = sum(it.key in done for it in plan)
    echo(
        f"table {out}: plan {len(plan)} rows ({count} sampled archs, {seeds_for} with a second seed, "
        f"{len(plan) - count - seeds_for} presets); {n_done} done, {len(todo)} to train with {workers} "
        f"worker(s) on {recipe.device}, {recipe.epochs} epochs each"
    )
    t0 = time.time()
    commit, machine = _git_commit(), _machine(recipe.device)

    earlier: list[dict[str, Any]] = []
    if manifest_path(out).exists():
        try:
            old = json.loads(manifest_path(out).read_text())
            earlier = old.get("machines") or ([old["machine"]] if old.get("machine") else [])
        except (OSError, ValueError):
            earlier = []

    def write(rows: list[dict[str, Any]]) -> dict[str, Any]:
        write_table(rows, out, plan)
        man = manifest(
            dataset=dataset,
            dataset_hash=ds.content_hash,
            recipe=to_dict(recipe),
            plan_args=plan_args,
            plan=plan,
            rows=rows,
            git_commit=commit,
            machine=machine,
            wall_s=time.time() - t0,
            space=space,
            earlier_machines=earlier,
        )
        tmp = manifest_path(out).with_suffix(".tmp")
        tmp.write_text(json.dumps(man, indent=1) + "\n")
        os.replace(tmp, manifest_path(out))
        return man

    if todo:
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )
        base = {"dataset": dataset, "train": to_dict(recipe)}
        pending: dict[cf.Future, Any] = {}
        queue = list(todo)
        finished = 0
        total_w, done_w = sum(cost_weight(it.spec) for it in todo), 0.0
        write(log.rows())  # the manifest from the start: what is planned, on what, with which recipe
        last_write = time.time()
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    it = queue.pop(0)
                    payload = {
                        **base,
                        "spec": it.spec,
                        "seed": it.seed,
                        "origin": it.origin,
                        "block_type": it.block_type,
                        "stratum": it.stratum,
                    }
                    pending[pool.submit(train_row, payload)] = it
                done_now, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
                for fut in done_now:
                    it = pending.pop(fut)
                    try:
                        row = fut.result()
                    except Exception as exc:  # the worker process died (OOM killer, ...)
                        row = {
                            "spec": it.spec,
                            "spec_hash": it.key[0],
                            "seed": it.seed,
                            "origin": it.origin,
                            "block_type": it.block_type,
                            "stratum": it.stratum,
                            "error": f"worker process failed: {type(exc).__name__}: {exc}",
                        }
                    log.append(row)
                    finished += 1
                    done_w += cost_weight(it.spec)
                    elapsed = time.time() - t0
                    rate = elapsed / finished
                    left = elapsed / done_w * (total_w - done_w)  # rows differ ~1000x in cost: weigh by MACs
                    what = (
                        f"val {row['val_acc']:.3f} test {row['test_acc']:.3f} in {row['train_time_s']:.1f} s"
                        if not row.get("error")
                        else f"ERROR {row['error'].splitlines()[0][:120]}"
                    )
                    echo(
                        f"[{finished}/{len(todo)}] {row['block_type']:<12} seed {row['seed']} "
                        f"{(row.get('macs') or 0) / 1e6:7.2f} MMACs  {what} | {rate:.1f} s/row, "
                        f"ETA {_fmt_h(left)}",
                    )
                    if finished % checkpoint_every == 0 or time.time() - last_write > checkpoint_s:
                        write(log.rows())
                        last_write = time.time()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    man = write(log.rows())
    echo(
        f"wrote {out} ({man['counts']['rows_ok']} rows, {man['counts']['errors']} errors) and "
        f"{manifest_path(out)}; plan {man['plan']['done']}/{man['plan']['items']} done"
    )
    return man


def info(path: Path, echo=print) -> dict[str, Any]:
    """Counts, coverage per block type and MAC decile, and the seed-noise floor of a table."""
    rows = read_table(path)
    cov = coverage(rows)
    echo(
        f"{path}: {cov['rows']} rows ({cov['errors']} errors), {cov['archs']} architectures "
        f"({cov['presets']} presets), rows per seed {cov['seeds']}, {cov['train_hours']:.2f} h of training"
    )
    echo("block type     dominant  present")
    for k in (*BLOCK_TYPES, *sorted(set(cov["dominant_block_type"]) - set(BLOCK_TYPES))):
        echo(f"  {k:<12} {cov['dominant_block_type'].get(k, 0):>8}  {cov['block_type_present'].get(k, 0):>7}")
    echo("MAC decile   MACs from..to            archs  mean test acc")
    for d in cov["mac_deciles"]:
        acc = f"{d['mean_test_acc']:.3f}" if d["mean_test_acc"] is not None else "-"
        echo(f"  {d['decile']:>2}       {d['macs_from']:>10,}..{d['macs_to']:<12,} {d['archs']:>5}  {acc}")
    floors = {m: noise_floor(rows, m) for m in ("val_acc", "test_acc")}
    for m, nf in floors.items():
        if not nf["pairs"]:
            echo(f"seed noise ({m}): no architecture has two seeds yet")
            continue
        echo(
            f"seed noise ({m}, {nf['pairs']} archs with 2 seeds): |acc(s0)-acc(s1)| median "
            f"{nf['median_abs_diff']:.4f}, IQR {nf['iqr_abs_diff'][0]:.4f}-{nf['iqr_abs_diff'][1]:.4f}, "
            f"max {nf['max_abs_diff']:.4f}; Kendall tau between seeds "
            + (f"{nf['kendall_tau']:.3f}" if nf["kendall_tau"] is not None else "- (needs 2+ archs)")
        )
    return {"coverage": cov, "noise_floor": floors}
