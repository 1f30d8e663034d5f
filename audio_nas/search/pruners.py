"""Early-stopping rules (a registry) and their replay on the table's real learning curves (issue 14, item 5).

Every rule answers one question after each epoch: stop this trial now? It sees the trial's accuracy so
far, its log10 energy, and ``peers``: (log10 energy, validation curve) of the complete trials told before
it was asked (``search/ordering.py`` makes that set independent of timing). Rules:

- ``none``: never stop.
- ``pareto-median`` (the project's): after ``warmup_epochs``, stop when at least ``min_peers`` peers that
  cost no more energy had a higher median accuracy at the same epoch. Cheap models compete only with
  models as cheap or cheaper, which keeps the low-energy end of the front.
- ``asha``: asynchronous successive halving (Li et al. 2020): rungs at ``warmup_epochs * eta^k``; at a rung,
  stop unless the accuracy is in the top ``1 / eta`` of the peers' accuracies at that epoch. Single
  objective, as published.
- ``pareto-asha``: the same rungs and quantile over the cheaper peers only.
- ``lc-extrapolation``: from ``warmup_epochs + 1`` epochs on, fit ``acc(e) = a - b (e + 1)^-c`` to the
  curve so far (three-parameter power law, a common learning-curve family; scipy's least squares), and
  stop when the extrapolated final accuracy is below the median final accuracy of the cheaper peers.

``replay(rows, rule)`` runs a rule over the table's curves in random arrival order, as a random search would
see them, and returns the epochs trained and the hypervolume of the resulting trials (a pruned trial keeps
the best accuracy it reached) against training everything.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from audio_nas.search.objectives import hypervolume, non_dominated, objective_vector

Peers = Sequence[tuple[float, Sequence[float]]]
Rule = Callable[[int, float, float, Peers, dict], bool]
PRUNERS: dict[str, Rule] = {}


def register(name: str) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        PRUNERS[name] = fn
        return fn

    return deco


def _cheaper(epoch: int, log_energy: float, peers: Peers) -> list[float]:
    return [curve[epoch] for le, curve in peers if le <= log_energy and len(curve) > epoch]


@register("none")
def _never(epoch, acc, log_energy, peers, cfg) -> bool:
    return False


@register("pareto-median")
def pareto_median(epoch, acc, log_energy, peers, cfg) -> bool:
    if epoch + 1 < cfg["warmup_epochs"]:
        return False
    cheaper = _cheaper(epoch, log_energy, peers)
    return len(cheaper) >= cfg["min_peers"] and acc < float(np.median(cheaper))


def _is_rung(epoch: int, cfg: dict) -> bool:
    eta, r = cfg.get("eta", 3), cfg["warmup_epochs"]
    e = epoch + 1
    while r <= e:
        if r == e:
            return True
        r *= eta
    return False


def _asha(epoch, acc, values: list[float], cfg) -> bool:
    if not _is_rung(epoch, cfg) or len(values) < cfg["min_peers"]:
        return False
    return acc < float(np.quantile(values, 1.0 - 1.0 / cfg.get("eta", 3)))


@register("asha")
def asha(epoch, acc, log_energy, peers, cfg) -> bool:
    return _asha(epoch, acc, [curve[epoch] for _, curve in peers if len(curve) > epoch], cfg)


@register("pareto-asha")
def pareto_asha(epoch, acc, log_energy, peers, cfg) -> bool:
    return _asha(epoch, acc, _cheaper(epoch, log_energy, peers), cfg)


def _power_law(e, a, b, c):
    return a - b * np.power(e + 1.0, -c)


def extrapolate_final(curve: Sequence[float], epochs: int) -> float:
    """The power-law fit of ``curve`` evaluated at the last epoch (the last value if the fit fails)."""
    y = np.asarray(curve, float)
    x = np.arange(len(y), dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # a short curve leaves the covariance undefined
            p, _ = curve_fit(
                _power_law,
                x,
                y,
                p0=(min(1.0, y[-1] + 0.1), 0.5, 0.5),
                bounds=([0, 0, 0], [1.0, 5.0, 5.0]),
                maxfev=2000,
            )
        return float(np.clip(_power_law(epochs - 1, *p), y.max(), 1.0))
    except (RuntimeError, ValueError):
        return float(y.max())


@register("lc-extrapolation")
def lc_extrapolation(epoch, acc, log_energy, peers, cfg, curve: Sequence[float] | None = None) -> bool:
    if epoch < cfg["warmup_epochs"] or curve is None:
        return False
    finals = [max(c) for le, c in peers if le <= log_energy and c]
    if len(finals) < cfg["min_peers"]:
        return False
    return extrapolate_final(curve[: epoch + 1], cfg["epochs"]) < float(np.median(finals))


def should_stop(
    name: str, epoch: int, curve: Sequence[float], log_energy: float, peers: Peers, cfg: dict
) -> bool:
    """One rule's decision after ``epoch`` (0-based) given the curve so far."""
    if name == "lc-extrapolation":
        return lc_extrapolation(epoch, curve[epoch], log_energy, peers, cfg, curve=curve)
    return PRUNERS[name](epoch, curve[epoch], log_energy, peers, cfg)


def replay(
    trials: list[dict[str, Any]], rule: str, cfg: dict, *, order_seed: int, ref: Sequence[float]
) -> dict[str, Any]:
    """trials: dicts with ``curve`` (full validation curve), ``energy_uj``, ``ram_bytes``. In a random order
    (``order_seed``), each trial trains epoch by epoch until ``rule`` stops it; peers are the complete
    trials before it. Returns epochs trained, hypervolume, and how many of the full-training front's
    members were stopped."""
    order = np.random.default_rng(order_seed).permutation(len(trials))
    epochs = len(trials[0]["curve"])
    cfg = {**cfg, "epochs": epochs}
    peers: list[tuple[float, list[float]]] = []
    trained, F_pruned, F_full = 0, [], []
    stopped = np.zeros(len(trials), bool)
    for rank, i in enumerate(order):
        t = trials[i]
        log_e = math.log10(max(t["energy_uj"], 1e-9))
        curve = list(t["curve"])
        run = epochs
        for e in range(epochs - 1):
            if should_stop(rule, e, curve, log_e, peers, cfg):
                run = e + 1
                break
        trained += run
        stopped[rank] = run < epochs
        if run == epochs:
            peers.append((log_e, curve))
        F_pruned.append(objective_vector(max(curve[:run]), t["energy_uj"], t["ram_bytes"]))
        F_full.append(objective_vector(max(curve), t["energy_uj"], t["ram_bytes"]))
    F_full_a = np.stack(F_full)
    front = non_dominated(F_full_a)
    return {
        "epochs_trained": trained,
        "epochs_full": epochs * len(trials),
        "hv": hypervolume(np.stack(F_pruned), ref),
        "hv_full": hypervolume(F_full_a, ref),
        "front_members_stopped": int(stopped[front].sum()),
        "front_size": int(len(front)),
    }
