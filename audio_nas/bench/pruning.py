"""Early stopping replayed on the table's real learning curves (issue 14, item 5).

Every rule of ``audio_nas.search.pruners`` sees the same trials (the table's seed-0 rows: real 15-epoch
validation curves of the search's recipe) in the same random arrival orders; energy and RAM come from the
cost models. Reported per rule: training compute saved, hypervolume lost against training every trial
fully, and how many members of the full-training front were stopped early; medians and IQR over orders.
"""

from __future__ import annotations

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.bench.search import DEFAULT_TABLE, REF, _cheap, _table_path
from audio_nas.search.pruners import PRUNERS, replay
from audio_nas.search.table import read_table
from audio_nas.space import ArchSpec

CFG = {"warmup_epochs": 2, "min_peers": 4, "eta": 3}


def table_trials(rows: list[dict]) -> list[dict]:
    """Seed-0 rows with a full curve, with the board costs of their spec (infeasible ones left out)."""
    out = []
    for r in rows:
        if r.get("error") or int(r["seed"]) != 0 or not r.get("val_acc_curve"):
            continue
        c = _cheap(ArchSpec.from_str(r["spec"]).to_str())
        if c["infeasible"]:
            continue
        out.append(
            {"curve": r["val_acc_curve"], "energy_uj": c["energy_uj"], "ram_bytes": c["peak_ram_bytes"]}
        )
    n = int(np.median([len(t["curve"]) for t in out])) if out else 0
    return [t for t in out if len(t["curve"]) == n]


def _q(x, fmt="{:.1f}") -> str:
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"{fmt.format(med)} [{fmt.format(q1)}, {fmt.format(q3)}]"


def compare(trials: list[dict], orders: int, cfg: dict = CFG) -> list[list[str]]:
    rows = []
    for name in PRUNERS:
        res = [replay(trials, name, cfg, order_seed=s, ref=REF) for s in range(orders)]
        saved = [100 * (1 - r["epochs_trained"] / r["epochs_full"]) for r in res]
        lost = [100 * (r["hv_full"] - r["hv"]) / r["hv_full"] for r in res]
        stopped = [r["front_members_stopped"] for r in res]
        rows.append(
            [name, _q(saved), _q(lost, "{:.2f}"), _q(stopped, "{:.0f}") + f" of {res[0]['front_size']}"]
        )
    return rows


def run_bench(quick: bool = False, table: str = DEFAULT_TABLE) -> None:
    trials = table_trials(read_table(_table_path(table)))
    orders = 5 if quick else 20
    rows = compare(trials, orders)
    body = (
        f"Replayed on `{table}`: {len(trials)} trials (seed-0 rows, {len(trials[0]['curve'])}-epoch real "
        f"validation curves), {orders} random arrival orders; warm-up {CFG['warmup_epochs']} epochs, "
        f"{CFG['min_peers']} peers, eta {CFG['eta']}. Median [IQR] over orders. A stopped trial keeps the "
        f"best accuracy it reached.\n\n"
        + markdown_table(["rule", "compute saved %", "HV lost %", "front members stopped"], rows)
    )
    write_section(
        "search-pruning",
        "Search: early stopping replayed on real learning curves",
        "audio-nas bench pruning" + (" --quick" if quick else ""),
        body,
    )
