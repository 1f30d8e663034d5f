"""Latency/energy sources behind one interface; every value carries where it came from.

Sources, best first: measured (a board over the bridge) > predicted (random forest fitted on
measurements) > emulated (per-op instruction model fitted on measured TFLM + CMSIS-NN counts, on the
exported/planned ops, x the board's cycles per instruction) > analytic (MACs-linear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from audio_nas.energy.boards import BoardProfile
from audio_nas.energy.cycle_model import CORE_FACTOR, model_cycles
from audio_nas.energy.op_model import OpShape, ops_from_plan
from audio_nas.energy.op_model import model_cycles as op_model_cycles
from audio_nas.energy.op_records import TFLITE_TO_OP, OpRecord
from audio_nas.errors import EnergyModelError
from audio_nas.features.cost import frontend_cost
from audio_nas.space import arch_costs

SOURCES: tuple[str, ...] = ("measured", "predicted", "emulated", "analytic")
SECONDS_PER_DAY = 86_400
# analytic fallback: DS-CNN's published 21.83 M cycles over its 2.66 M MACs (reference kernels)
ANALYTIC_CYCLES_PER_MAC = {"tflm-reference": 8.2, "cmsis-nn": 2.84}


@dataclass(frozen=True)
class EnergyEstimate:
    latency_ms: float
    energy_uj: float
    source: str
    uncertainty_uj: float = 0.0
    cycles: float | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise EnergyModelError(f"unknown energy source {self.source!r}; sources: {SOURCES}")


def energy_from_cycles(
    cycles: float, board: BoardProfile, source: str, uncertainty_cycles: float = 0.0
) -> EnergyEstimate:
    latency_s = cycles / board.clock_hz
    uj_per_cycle = board.active_power_mw * 1e3 / board.clock_hz
    return EnergyEstimate(
        latency_ms=latency_s * 1e3,
        energy_uj=latency_s * board.active_power_mw * 1e3,
        source=source,
        uncertainty_uj=uncertainty_cycles * uj_per_cycle,
        cycles=cycles,
    )


class EnergyModel(Protocol):
    source: str

    def estimate(self, spec: Any, board: BoardProfile, *, layers: Any = None) -> EnergyEstimate: ...


class AnalyticModel:
    """MACs x cycles-per-MAC of the board's kernel library: the fallback everyone can compute."""

    source = "analytic"

    def estimate(self, spec, board, *, layers=None):

        macs = arch_costs(spec).macs
        cycles = macs * ANALYTIC_CYCLES_PER_MAC[board.kernels] * CORE_FACTOR[board.core]
        return energy_from_cycles(cycles, board, self.source)


class EmulatedModel:
    """Per-op model on the model's op list (the exported .tflite's ops when given, as
    ``op_model.ops_from_tflite`` or ``op_records.OpRecord`` records; else the layer plan).

    Boards running CMSIS-NN (and the Nucleo-L4R5ZI's MLPerf Tiny stack, TFLM + 2020 CMSIS-NN): instructions
    from the per-op model FITTED on measured TFLM + CMSIS-NN counts (``energy.op_model``), times the board's
    cycles per instruction (calibrated on the one published point, emulated, or assumed from the core), plus
    a flash term. The emulated board running TFLM's portable reference kernels (``mps2-an386``) keeps the
    hand-set reference-kernel cycle model (``energy.cycle_model``): nothing was measured per op for it.
    """

    source = "emulated"

    def estimate(self, spec, board, *, layers=None):
        if layers is None:
            layers = arch_costs(spec).layers
        if board.kernels == "tflm-reference" and board.emulated:
            records = [
                OpRecord(f"op{i}", TFLITE_TO_OP[x.op], x.in_shape, x.out_shape, x.kernel, x.macs)
                if isinstance(x, OpShape)
                else x
                for i, x in enumerate(layers)
            ]
            cycles, _ = model_cycles(records, board.kernels, board.core)
        else:
            cycles, _ = op_model_cycles(ops_from_plan(layers), board)
        return energy_from_cycles(cycles, board, self.source)


def always_on_energy_per_day_j(
    estimate: EnergyEstimate, spec: Any, board: BoardProfile, inferences_per_s: float
) -> dict:
    """Joules per day of an always-on detector: inferences + front-end (every hop) + sleep in between."""

    fe = frontend_cost(spec.frontend, core=board.core)
    inf_j = estimate.energy_uj * 1e-6 * inferences_per_s * SECONDS_PER_DAY
    fe_j = fe.energy_per_s_uj(board.clock_hz, board.active_power_mw) * 1e-6 * SECONDS_PER_DAY
    busy_s = (
        estimate.latency_ms * 1e-3 * inferences_per_s + fe.cycles_per_s / board.clock_hz
    ) * SECONDS_PER_DAY
    if busy_s > SECONDS_PER_DAY:
        raise EnergyModelError(
            f"at {inferences_per_s}/s the core is busy {busy_s / SECONDS_PER_DAY:.0%} of the time: the model "
            f"cannot run that often on {board.name}; lower the inference rate"
        )
    sleep_j = board.sleep_power_mw * 1e-3 * (SECONDS_PER_DAY - busy_s)
    return {"inference_j": inf_j, "frontend_j": fe_j, "sleep_j": sleep_j, "total_j": inf_j + fe_j + sleep_j}
