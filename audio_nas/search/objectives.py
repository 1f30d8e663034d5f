"""Objectives, Pareto fronts and hypervolume.

All objectives are minimised in the vector ``(1 - accuracy, log10 energy_uj, log10 peak_ram_bytes)``, where
``peak_ram_bytes`` is the board's total RAM for the model (``energy.boards.board_memory``: the model's share
+ the firmware's; ``search.evaluate.cheap_objectives``).
Logs because energy and memory span orders of magnitude and the research compares them by ratio.
Hypervolume uses pymoo's indicator with the reference point from the config, by default
(1.0, 5.0, 6.0): accuracy 0, 100 mJ per inference, 1 MB of RAM — worse than any useful always-on
model, so every sensible trial counts. Points beyond the reference contribute nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def objective_vector(accuracy: float, energy_uj: float, ram_bytes: float) -> np.ndarray:
    return np.array([1.0 - accuracy, math.log10(max(energy_uj, 1e-9)), math.log10(max(ram_bytes, 1.0))])


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of F (minimisation); empty input -> empty."""
    F = np.asarray(F, float)
    if len(F) == 0:
        return np.zeros(0, int)
    return NonDominatedSorting().do(F, only_non_dominated_front=True)


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    F = np.asarray(F, float)
    if len(F) == 0:
        return 0.0
    F = F[np.all(F < np.asarray(ref), axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(ref, float))(F))


def hypervolume_curve(F: np.ndarray, ref: Sequence[float]) -> list[float]:
    """Hypervolume of the first k evaluations, k = 1..n."""
    return [hypervolume(F[: k + 1], ref) for k in range(len(F))]
