"""Latency, energy, arena and flash of any int8 .tflite file (not only the ones this project exports).

The ops are read from the flatbuffer (``op_model.ops_from_tflite``) and priced by the board's emulated
energy model (``models.EmulatedModel``: the fitted per-op model, or the reference-kernel cycle model on
boards that run TFLM's portable kernels), the TFLM host interpreter gives the arena, and the file size is
the flash the model takes. An op the energy model has no entry for is refused by name, with the list of
supported ops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from audio_nas.energy.boards import BoardProfile
from audio_nas.energy.models import EmulatedModel
from audio_nas.energy.op_model import TFLITE_OPS, ops_from_tflite
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
    """Emulated latency/energy on ``board`` and the TFLM arena of an int8 .tflite; raises EnergyModelError
    naming the ops the energy model does not cover (and VerificationError for a file that is not a model)."""
    names = {r["op"] for r in parse_tflite_ops(model_bytes)}
    unsupported = sorted(names - set(TFLITE_OPS))
    if unsupported:
        raise EnergyModelError(
            f"op {', '.join(unsupported)} has no energy model; supported ops: {', '.join(TFLITE_OPS)}"
        )
    ops = ops_from_tflite(model_bytes)
    e = EmulatedModel().estimate(None, board, layers=ops)
    return TfliteEstimate(
        board=board.name,
        kernels=board.kernels,
        latency_ms=e.latency_ms,
        energy_uj=e.energy_uj,
        cycles=float(e.cycles),
        arena_bytes=tflm_arena_bytes(model_bytes),
        flash_bytes=len(model_bytes),
        ops=len(ops),
    )
