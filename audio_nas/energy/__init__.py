"""Board profiles, latency/energy models (measured, predicted, emulated, analytic) and the energy
predictor."""

from audio_nas.energy.boards import BoardProfile, available_boards, load_board
from audio_nas.energy.models import SOURCES, EnergyEstimate, always_on_energy_per_day_j, energy_from_cycles
from audio_nas.energy.registry import ENERGY_MODELS, make_energy_model

__all__ = [
    "BoardProfile",
    "load_board",
    "available_boards",
    "EnergyEstimate",
    "ENERGY_MODELS",
    "SOURCES",
    "make_energy_model",
    "energy_from_cycles",
    "always_on_energy_per_day_j",
]
