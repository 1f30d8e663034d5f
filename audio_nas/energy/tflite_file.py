"""Latency, energy, arena and flash of any int8 .tflite file (not only the ones this project exports).

The ops are read from the flatbuffer (``export.parse_tflite_ops``), the per-op cycle model gives latency and
energy on the board (source "emulated"), the TFLM host interpreter gives the arena, and the file size is the
flash the model takes. An op the cycle model has no entry for is refused by name, with the supported list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from audio_nas.energy.boards import BoardProfile
from audio_nas.energy.cycle_model import model_cycles
from audio_nas.energy.models import energy_from_cycles
from audio_nas.energy.op_records import TFLITE_TO_OP, ops_from_tflite
from audio_nas.errors import EnergyModelError
from audio_nas.export import parse_tflite_ops, tflm_arena_bytes


@dataclass(frozen=True)
class TfliteEstimate:
    board: str
    kernels: str
    latency_ms: float
    energy_uj: float
    cycles: float
    arena_bytes: int  # the smallest arena the TFLM host interpreter accepts (x86-64 build)
    flash_bytes: int  # the flatbuffer's size
    ops: int
    source: str = "emulated"

    def to_json(self) -> dict:
        return asdict(self)


def estimate_tflite(model_bytes: bytes, board: BoardProfile) -> TfliteEstimate:
    """Cycle-model latency/energy on ``board`` and the TFLM arena of an int8 .tflite; raises EnergyModelError
    naming an op the cycle model does not cover (and VerificationError for a file that is not a model)."""
    records = parse_tflite_ops(model_bytes)
    unsupported = sorted({r["op"] for r in records} - set(TFLITE_TO_OP))
    if unsupported:
        supported = ", ".join(sorted(TFLITE_TO_OP))
        raise EnergyModelError(f"op {', '.join(unsupported)} has no cycle model; supported ops: {supported}")
    cycles, _ = model_cycles(ops_from_tflite(records), board.kernels, board.core)
    e = energy_from_cycles(cycles, board, "emulated")
    return TfliteEstimate(
        board=board.name,
        kernels=board.kernels,
        latency_ms=e.latency_ms,
        energy_uj=e.energy_uj,
        cycles=cycles,
        arena_bytes=tflm_arena_bytes(model_bytes),
        flash_bytes=len(model_bytes),
        ops=len(records),
    )
