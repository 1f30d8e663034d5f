"""Objectives, Pareto fronts and hypervolume.

The search minimises three objectives: accuracy (as ``1 - accuracy``) and two costs, chosen by the config
key ``objectives`` from the registry ``OBJECTIVES`` (default ``[accuracy, energy_uj, ram_bytes]``):

- ``energy_uj``: energy per inference on the config's board (``energy_source``), log10 µJ;
- ``ram_bytes``: the board's total RAM for the model (``energy.boards.board_memory``: the model's share + the
  firmware's; ``search.evaluate.cheap_objectives``), log10 bytes;
- ``ace_v2``: ACEv2 bit-operations per inference (PikeLPN: MACs x weight bits x activation bits, plus the
  elementwise work: requantisation, activations, residual rescales, int4 unpacking;
  ``space.costs.arch_costs``), log10; hardware-agnostic, so int4 layers count half the bit-operations of
  int8 ones whatever a board's kernels make of them;
- ``flash_bytes``: the board's total flash for the model (flatbuffer with int4 weights packed, front-end
  tables, firmware), log10 bytes;
- ``latency_ms``: latency per inference on the board, log10 ms.

Logs because the costs span orders of magnitude and the research compares them by ratio. Hypervolume uses
pymoo's indicator with a reference point: the config's ``hv_reference``, by default each objective's entry in
the registry (for the default objectives (1.0, 5.0, 6.0): accuracy 0, 100 mJ per inference, 1 MB of RAM —
worse than any useful always-on model, so every sensible trial counts). Points beyond the reference
contribute nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from audio_nas.errors import ConfigError
from audio_nas.space import ArchSpec, arch_costs


@functools.lru_cache(maxsize=4096)
def _ace_v2(spec: str) -> float:
    return float(arch_costs(ArchSpec.from_str(spec)).ace_v2)


@dataclass(frozen=True)
class Objective:
    """One objective: how to read it from a trial's values and how it is minimised."""

    name: str
    unit: str
    log10: bool  # minimise log10(value); else minimise 1 - value (accuracy)
    hv_reference: float  # in the minimised scale
    read: Callable[[Mapping], float]  # value from a trial's fields (store columns + ``spec``)
    about: str

    def minimised(self, values: Mapping) -> float:
        v = float(self.read(values))
        if self.log10:
            return math.log10(max(v, 1e-9))
        return 1.0 - v


_REGISTRY = (
    # name, unit, log10, hv reference (minimised scale), reader, what it is
    ("accuracy", "fraction", False, 1.0, lambda v: v["accuracy"], "validation accuracy"),
    ("energy_uj", "µJ", True, 5.0, lambda v: v["energy_uj"], "energy per inference (ref 100 mJ)"),
    ("ram_bytes", "bytes", True, 6.0, lambda v: v["peak_ram_bytes"], "board RAM (ref 1 MB)"),
    ("ace_v2", "bit-ops", True, 12.0, lambda v: _ace_v2(v["spec"]), "ACEv2 bit-operations (ref 1e12)"),
    ("flash_bytes", "bytes", True, 7.0, lambda v: v["flash_bytes"], "board flash (ref 10 MB)"),
    ("latency_ms", "ms", True, 4.0, lambda v: v["latency_ms"], "latency per inference (ref 10 s)"),
)
OBJECTIVES: dict[str, Objective] = {r[0]: Objective(*r) for r in _REGISTRY}
DEFAULT_OBJECTIVES: tuple[str, ...] = ("accuracy", "energy_uj", "ram_bytes")


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as the search uses them: accuracy first, then two different cost objectives."""
    names = tuple(names)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ConfigError(f"objective {unknown[0]!r} is unknown; objectives: {', '.join(OBJECTIVES)}")
    if len(names) != 3 or names[0] != "accuracy" or len(set(names)) != 3:
        raise ConfigError(
            f"objectives must be accuracy followed by two different costs, e.g. {list(DEFAULT_OBJECTIVES)} "
            f"or [accuracy, ace_v2, ram_bytes]; got {list(names)}"
        )
    return names


def default_hv_reference(names: Sequence[str]) -> tuple[float, ...]:
    return tuple(OBJECTIVES[n].hv_reference for n in check_objectives(names))


def objective_values(values: Mapping, names: Sequence[str] = DEFAULT_OBJECTIVES) -> np.ndarray:
    """The minimised vector of a trial (``values``: its store columns and ``spec``, e.g. ``vars(trial)``)."""
    return np.array([OBJECTIVES[n].minimised(values) for n in names])


def cost_values(values: Mapping, names: Sequence[str] = DEFAULT_OBJECTIVES) -> tuple[float, ...]:
    """The cost objectives alone (known before training): what the strategies see as cheap objectives."""
    return tuple(OBJECTIVES[n].minimised(values) for n in names if n != "accuracy")


def objective_vector(accuracy: float, energy_uj: float, ram_bytes: float) -> np.ndarray:
    """The default objectives' vector (1 - accuracy, log10 energy_uj, log10 ram_bytes)."""
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
