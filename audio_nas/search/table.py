"""A table of trained architectures (NAS-Bench style) for fast, honest strategy comparisons.

The plan: a deterministic, stratified sample of the default search space plus every preset. Strata are
(dominant block type, log-MAC bin): the dominant block type is the block type with the most MACs in the
spec (``ds``, the four UIB variants ``uib_extradw|uib_ib|uib_convnext|uib_ffn``, ``mqa``; ``conv``/``stem``
only for presets), and the MAC bins split the pool's log10-MAC range into equal widths. A pool of
``pool_factor x count`` random specs is drawn from a seeded generator; each stratum's members are shuffled
and the strata are visited round-robin, one spec each, until ``count`` are taken. So rare strata (MQA,
the very cheap and the very expensive ends) are fully represented and any prefix of the plan is itself
stratified, which keeps a partially built table useful. Every ``count // seeds_for``-th sampled spec is
trained again right after with a second seed, for the noise floor.

Rows (``ROW_COLUMNS``): the spec, the training seed, the validation accuracy after every epoch (JSON
list), best validation and test accuracy, training time, and the cheap costs of ``arch_costs``. Rows are
appended, one JSON line each with fsync, to a working file as they finish (``RowLog``); a crash can
only leave a torn last line, which is dropped on the next open. ``write_table`` writes the CSV (gzip)
in plan order. ``noise_floor`` and ``coverage`` summarise a table.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import logging
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio_nas.config import from_dict
from audio_nas.data import load_dataset
from audio_nas.energy import make_energy_model
from audio_nas.energy.boards import available_boards, board_memory, load_board
from audio_nas.errors import ConfigError, DataError
from audio_nas.features import compute_features
from audio_nas.space import PRESETS, ArchSpec, DSSpec, MQASpec, UIBSpec, arch_costs, sample_spec
from audio_nas.space.plan import plan_layers
from audio_nas.space.sampling import DEFAULT_SPACE, SearchSpace
from audio_nas.training import TrainConfig, train

log = logging.getLogger(__name__)
BLOCK_TYPES: tuple[str, ...] = ("ds", "uib_extradw", "uib_ib", "uib_convnext", "uib_ffn", "mqa")
SAMPLED, PRESET = "sampled", "preset"

ROW_COLUMNS: tuple[str, ...] = (
    "spec",
    "spec_hash",
    "seed",
    "origin",
    "block_type",
    "stratum",
    "val_acc",
    "test_acc",
    "val_acc_curve",
    "epochs",
    "best_epoch",
    "train_time_s",
    "params",
    "macs",
    "flash_bytes",
    "peak_ram_bytes",
    "arena_bytes",
    "frontend_ram_bytes",
    "device",
    "error",
)
INT_COLUMNS = (
    "seed",
    "epochs",
    "best_epoch",
    "params",
    "macs",
    "flash_bytes",
    "peak_ram_bytes",
    "arena_bytes",
)
FLOAT_COLUMNS = ("val_acc", "test_acc", "train_time_s")


def block_type(block: Any) -> str:
    if isinstance(block, DSSpec):
        return "ds"
    if isinstance(block, UIBSpec):
        return f"uib_{block.variant.lower()}"
    if isinstance(block, MQASpec):
        return "mqa"
    return getattr(block, "KIND", type(block).__name__.lower())


def block_macs(spec: ArchSpec) -> dict[str, int]:
    """MACs per block type (the layer plan's ``blocks.I.*`` layers summed per block I's type)."""
    # the plan numbers blocks after expanding repeats (an MQA block has no repeats)
    expanded = [b for b in spec.blocks for _ in range(1 if isinstance(b, MQASpec) else b.repeats)]
    out: dict[str, int] = defaultdict(int)
    for layer in plan_layers(spec):
        parts = layer.name.split(".")
        if parts[0] == "blocks" and len(parts) > 1 and parts[1].isdigit():
            out[block_type(expanded[int(parts[1])])] += layer.macs
    return dict(out)


def dominant_block_type(spec: ArchSpec) -> str:
    macs = block_macs(spec)
    if not macs:
        return "stem"  # no blocks (micro_speech's tiny_conv)
    return max(sorted(macs), key=lambda k: macs[k])


@dataclass(frozen=True)
class PlanItem:
    spec: str
    seed: int
    origin: str  # "sampled" or "preset:NAME"
    block_type: str
    stratum: str  # "TYPE/BIN" ("preset" for presets)

    @property
    def key(self) -> tuple[str, int]:
        return (ArchSpec.from_str(self.spec).spec_hash, self.seed)


def fit_to_space(spec: ArchSpec, space: SearchSpace) -> ArchSpec:
    """A preset adapted to the space's dataset: sample rate, clip length and classes."""
    fe = dataclasses.replace(spec.frontend, sample_rate_hz=space.sample_rate_hz, clip_ms=space.clip_ms)
    return dataclasses.replace(spec, frontend=fe, n_classes=space.n_classes)


def sample_plan(
    count: int,
    *,
    seeds_for: int = 100,
    space: SearchSpace = DEFAULT_SPACE,
    seed: int = 0,
    train_seeds: tuple[int, int] = (0, 1),
    presets: Iterable[str] | None = None,
    pool_factor: int = 10,
    n_mac_bins: int = 10,
) -> list[PlanItem]:
    """The deterministic training plan: presets, then ``count`` stratified samples (see the module doc)."""
    if count < 0 or seeds_for < 0 or seeds_for > count:
        raise ConfigError(f"need 0 <= seeds_for <= count, got count={count}, seeds_for={seeds_for}")
    if pool_factor < 1 or n_mac_bins < 1:
        raise ConfigError("pool_factor and n_mac_bins must be >= 1")
    first, second = train_seeds
    names = list(PRESETS) if presets is None else list(presets)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ConfigError(f"unknown preset(s) {unknown}; presets: {', '.join(PRESETS)}")
    plan: list[PlanItem] = []
    seen: set[str] = set()
    for name in names:
        spec = fit_to_space(ArchSpec.from_str(PRESETS[name]), space)
        seen.add(spec.spec_hash)
        plan.append(PlanItem(spec.to_str(), first, f"{PRESET}:{name}", dominant_block_type(spec), PRESET))
    if count == 0:
        return plan

    rng = np.random.default_rng(seed)
    pool: list[tuple[ArchSpec, float, str]] = []
    for _ in range(50 * pool_factor * count):  # bounded: the space has far more specs than we draw
        if len(pool) >= pool_factor * count:
            break
        spec = sample_spec(rng, space)
        if spec.spec_hash in seen:
            continue
        seen.add(spec.spec_hash)
        macs = sum(block_macs(spec).values()) + _non_block_macs(spec)
        pool.append((spec, math.log10(max(macs, 1)), dominant_block_type(spec)))
    if len(pool) < count:
        raise ConfigError(f"the space gave only {len(pool)} distinct specs, fewer than count={count}")
    lo = min(p[1] for p in pool)
    hi = max(p[1] for p in pool)
    width = (hi - lo) / n_mac_bins or 1.0
    strata: dict[str, list[tuple[ArchSpec, str]]] = defaultdict(list)
    for spec, lm, kind in pool:
        b = min(n_mac_bins - 1, int((lm - lo) / width))
        strata[f"{kind}/{b}"].append((spec, kind))
    order = sorted(strata, key=lambda k: (BLOCK_TYPES.index(k.split("/")[0]), int(k.split("/")[1])))
    for k in order:
        members = strata[k]
        perm = rng.permutation(len(members))
        strata[k] = [members[i] for i in perm]
    picked: list[tuple[ArchSpec, str, str]] = []
    depth = 0
    while len(picked) < count:
        for k in order:
            if depth < len(strata[k]) and len(picked) < count:
                spec, kind = strata[k][depth]
                picked.append((spec, kind, k))
        depth += 1
    every = count // seeds_for if seeds_for else 0
    for i, (spec, kind, k) in enumerate(picked):
        plan.append(PlanItem(spec.to_str(), first, SAMPLED, kind, k))
        if every and i % every == 0 and i // every < seeds_for:
            plan.append(PlanItem(spec.to_str(), second, SAMPLED, kind, k))
    return plan


def _non_block_macs(spec: ArchSpec) -> int:
    return sum(layer.macs for layer in plan_layers(spec) if not layer.name.startswith("blocks."))


# --------------------------------------------------------------------------------------------------
# one row: train one (spec, seed)
# --------------------------------------------------------------------------------------------------

_DATASETS: dict[str, Any] = {}


def train_row(payload: dict[str, Any]) -> dict[str, Any]:
    """Train ``payload['spec']`` with ``payload['seed']`` on ``payload['dataset']``; never raises.

    A top-level function so that process pools can run it. payload: spec, seed, dataset, train
    (TrainConfig dict), origin, block_type, stratum.
    """

    spec = ArchSpec.from_str(payload["spec"])
    row: dict[str, Any] = {
        "spec": payload["spec"],
        "spec_hash": spec.spec_hash,
        "seed": payload["seed"],
        "origin": payload["origin"],
        "block_type": payload["block_type"],
        "stratum": payload["stratum"],
    }
    costs = arch_costs(spec)
    row.update(
        params=costs.params,
        macs=costs.macs,
        flash_bytes=costs.flash_bytes,
        peak_ram_bytes=costs.peak_ram_bytes,
        arena_bytes=getattr(costs, "arena_bytes", None),
        frontend_ram_bytes=costs.frontend_ram_bytes,
    )
    cfg = from_dict(TrainConfig, {**payload["train"], "seed": payload["seed"]})
    row["device"] = cfg.device
    try:
        name = payload["dataset"]
        if name not in _DATASETS:
            _DATASETS.clear()
            _DATASETS[name] = load_dataset(name)
        feats = compute_features(_DATASETS[name], spec.frontend)
        res = train(spec, feats, cfg)
        if not math.isfinite(res.val_accuracy):
            raise FloatingPointError("validation accuracy is NaN")
        row.update(
            val_acc=res.val_accuracy,
            test_acc=res.test_accuracy,
            val_acc_curve=[round(float(a), 6) for a in res.curve],
            epochs=res.epochs_run,
            best_epoch=res.best_epoch,
            train_time_s=round(res.train_time_s, 3),
            error=None,
        )
    except Exception as exc:  # recorded; a later build retries rows with an error
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


# --------------------------------------------------------------------------------------------------
# storage: the append-only working file and the CSV
# --------------------------------------------------------------------------------------------------


class RowLog:
    """Append-only JSON-lines file of finished rows; safe against kill -9 (torn last line dropped)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row; for a (spec, seed) written twice, the last one."""
        if not self.path.exists():
            return []
        latest: dict[tuple[str, int], dict] = {}
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from a crash (only possible at the end)
            latest[(row["spec_hash"], int(row["seed"]))] = row
        return list(latest.values())

    def done(self) -> set[tuple[str, int]]:
        return {(r["spec_hash"], int(r["seed"])) for r in self.rows() if not r.get("error")}

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, separators=(",", ":")) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _csv_value(col: str, v: Any) -> str:
    if v is None:
        return ""
    if col == "val_acc_curve":
        return json.dumps(v, separators=(",", ":"))
    return str(v)


BOARD_COST_PREFIXES = ("energy_uj__", "latency_ms__", "board_ram_bytes__", "board_flash_bytes__")


def board_cost_columns(spec_str: str, boards: Iterable[str] | None = None) -> dict[str, float | int]:
    """Per-board costs of a spec from the current cost models (``energy_uj__<board>``, ``latency_ms__<board>``
    from the ``emulated`` source, ``board_ram_bytes__``/``board_flash_bytes__`` the board totals). They are
    computed when the table is written, never trained, so a better cost model only needs a re-write."""
    spec = ArchSpec.from_str(spec_str)
    costs = arch_costs(spec)
    model = make_energy_model("emulated")
    out: dict[str, float | int] = {}
    for name in boards or available_boards():
        board = load_board(name)
        est = model.estimate(spec, board, layers=costs.layers)
        mem = board_memory(spec, board, costs)
        key = name.replace("-", "_")
        out[f"energy_uj__{key}"] = round(float(est.energy_uj), 3)
        out[f"latency_ms__{key}"] = round(float(est.latency_ms), 4)
        out[f"board_ram_bytes__{key}"] = int(mem.total_ram_bytes)
        out[f"board_flash_bytes__{key}"] = int(mem.total_flash_bytes)
    return out


def write_table(
    rows: list[dict[str, Any]],
    path: str | Path,
    plan: list[PlanItem] | None = None,
    board_costs: bool = True,
) -> Path:
    """Write rows as CSV (gzip when the name ends in .gz), in plan order, atomically (temp + rename), with the
    per-board cost columns of ``board_cost_columns`` after ``ROW_COLUMNS``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if plan is not None:
        rank = {it.key: i for i, it in enumerate(plan)}
        rows = sorted(rows, key=lambda r: rank.get((r["spec_hash"], int(r["seed"])), len(rank)))
    extra: dict[str, dict[str, float | int]] = {}
    if board_costs:
        for r in rows:
            if r["spec"] not in extra:
                try:
                    extra[r["spec"]] = board_cost_columns(r["spec"])
                except Exception as exc:  # noqa: BLE001 - one spec the cost models reject must not lose the table
                    extra[r["spec"]] = {}
                    log.warning("no board costs for %s: %s", r["spec"], exc)
    cost_cols = sorted({c for d in extra.values() for c in d})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(ROW_COLUMNS) + cost_cols)
    for r in rows:
        costs = extra.get(r["spec"], {})
        w.writerow(
            [_csv_value(c, r.get(c)) for c in ROW_COLUMNS] + [_csv_value(c, costs.get(c)) for c in cost_cols]
        )
    tmp = path.with_name(f".{path.name}.tmp")
    data = buf.getvalue().encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a table CSV (.csv or .csv.gz) or of a working .jsonl file, with typed values."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no table at {path}")
    if path.suffix == ".jsonl":
        return RowLog(path).rows()
    raw = gzip.decompress(path.read_bytes()).decode() if path.name.endswith(".gz") else path.read_text()
    out = []
    for r in csv.DictReader(io.StringIO(raw)):
        row: dict[str, Any] = {k: (v if v != "" else None) for k, v in r.items()}
        for c in INT_COLUMNS:
            if row.get(c) is not None:
                row[c] = int(row[c])
        for c in FLOAT_COLUMNS:
            if row.get(c) is not None:
                row[c] = float(row[c])
        for c in row:
            if c.startswith(BOARD_COST_PREFIXES) and row[c] is not None:
                row[c] = float(row[c])
        if row.get("val_acc_curve"):
            row["val_acc_curve"] = json.loads(row["val_acc_curve"])
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------------------


def _kendall_tau(a: np.ndarray, b: np.ndarray) -> float | None:
    """None where undefined (fewer than 2 pairs, or one seed's accuracies all equal): JSON has no NaN."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return None
    tau = float(kendalltau(a, b).statistic)
    return tau if math.isfinite(tau) else None


def noise_floor(rows: list[dict[str, Any]], metric: str = "test_acc") -> dict[str, Any]:
    """Seed noise over the architectures trained with two seeds: |acc(seed a) - acc(seed b)| median and
    IQR, and Kendall tau between the two seeds' accuracies (the rank agreement a table can promise)."""
    by_spec: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        if not r.get("error") and r.get(metric) is not None:
            by_spec[r["spec_hash"]][int(r["seed"])] = float(r[metric])
    pairs = [sorted(d.items())[:2] for d in by_spec.values() if len(d) >= 2]
    if not pairs:
        return {"metric": metric, "pairs": 0}
    a = np.array([p[0][1] for p in pairs])
    b = np.array([p[1][1] for p in pairs])
    diff = np.abs(a - b)
    q1, med, q3 = np.percentile(diff, [25, 50, 75])
    return {
        "metric": metric,
        "pairs": len(pairs),
        "median_abs_diff": float(med),
        "iqr_abs_diff": [float(q1), float(q3)],
        "max_abs_diff": float(diff.max()),
        "kendall_tau": _kendall_tau(a, b),
    }


def coverage(rows: list[dict[str, Any]], n_deciles: int = 10) -> dict[str, Any]:
    """Counts per dominant block type, per block type present, and per MAC decile of the table."""
    ok = [r for r in rows if not r.get("error")]
    specs = {r["spec_hash"]: r for r in ok}
    present: Counter[str] = Counter()
    for r in specs.values():
        for kind in {block_type(b) for b in ArchSpec.from_str(r["spec"]).blocks}:
            present[kind] += 1
    dominant = Counter(r["block_type"] for r in specs.values())
    deciles = []
    if specs:
        lm = np.log10([max(int(r["macs"]), 1) for r in specs.values()])
        edges = np.percentile(lm, np.linspace(0, 100, n_deciles + 1))
        idx = np.clip(np.searchsorted(edges, lm, side="right") - 1, 0, n_deciles - 1)
        accs = np.array(
            [r.get("test_acc") if r.get("test_acc") is not None else np.nan for r in specs.values()]
        )
        for d in range(n_deciles):
            m = idx == d
            deciles.append(
                {
                    "decile": d + 1,
                    "macs_from": int(round(10 ** edges[d])),
                    "macs_to": int(round(10 ** edges[d + 1])),
                    "archs": int(m.sum()),
                    "mean_test_acc": float(np.nanmean(accs[m])) if m.any() else None,
                }
            )
    return {
        "rows": len(rows),
        "rows_ok": len(ok),
        "errors": len(rows) - len(ok),
        "archs": len(specs),
        "presets": sum(1 for r in specs.values() if str(r.get("origin", "")).startswith(PRESET)),
        "seeds": dict(sorted(Counter(int(r["seed"]) for r in ok).items())),
        "dominant_block_type": dict(sorted(dominant.items())),
        "block_type_present": {k: present.get(k, 0) for k in BLOCK_TYPES},
        "mac_deciles": deciles,
        "train_hours": sum(float(r.get("train_time_s") or 0.0) for r in ok) / 3600,
    }


def manifest(
    *,
    dataset: str,
    dataset_hash: str,
    recipe: dict[str, Any],
    plan_args: dict[str, Any],
    plan: list[PlanItem],
    rows: list[dict[str, Any]],
    git_commit: str | None,
    machine: dict[str, Any],
    wall_s: float,
    space: SearchSpace = DEFAULT_SPACE,
    earlier_machines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``machine`` is this build's; ``earlier_machines`` (from the manifest being replaced) are kept, so a
    table trained partly on CPUs and partly on a GPU machine names both; ``rows_by_device`` counts the
    rows by the ``device`` column each row carries."""
    cov = coverage(rows)
    machines = [m for m in (earlier_machines or []) if m != machine] + [machine]
    by_device: dict[str, int] = defaultdict(int)
    for r in rows:
        if not r.get("error"):
            by_device[str(r.get("device") or "unknown")] += 1
    done = {(r["spec_hash"], int(r["seed"])) for r in rows if not r.get("error")}
    return {
        "dataset": dataset,
        "dataset_hash": dataset_hash,
        "recipe": recipe,
        "recipe_source": "audio_nas/search/configs/default.yaml (train:)",
        "space": dataclasses.asdict(space),
        "plan": {**plan_args, "items": len(plan), "done": sum(it.key in done for it in plan)},
        "complete": all(it.key in done for it in plan),
        "git_commit": git_commit,
        "machine": machine,
        "machines": machines,
        "rows_by_device": dict(sorted(by_device.items())),
        "hours": {"train": cov["train_hours"], "wall_this_build": wall_s / 3600},
        "counts": {k: cov[k] for k in ("rows", "rows_ok", "errors", "archs", "presets", "seeds")},
        "noise_floor": noise_floor(rows),
        "columns": list(ROW_COLUMNS),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
