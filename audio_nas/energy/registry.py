"""The energy models by source name (a registry, not an if/elif chain)."""

from __future__ import annotations

from collections.abc import Callable

from audio_nas.energy.models import AnalyticModel, EmulatedModel, EnergyModel
from audio_nas.energy.predictor import PredictedModel
from audio_nas.errors import EnergyModelError

ENERGY_MODELS: dict[str, Callable[[], EnergyModel]] = {
    "analytic": AnalyticModel,
    "emulated": EmulatedModel,
    "predicted": PredictedModel,
}


def make_energy_model(name: str) -> EnergyModel:
    try:
        return ENERGY_MODELS[name]()
    except KeyError:
        raise EnergyModelError(
            f"unknown energy model {name!r}; choose one of {', '.join(ENERGY_MODELS)}"
        ) from None
