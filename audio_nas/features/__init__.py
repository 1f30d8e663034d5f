"""Front-ends (log-mel, MFCC, PCEN, fixed-point), feature cache and front-end cost model."""

from audio_nas.features.cache import FeatureSet, compute_features
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.cost import FrontEndCost, frontend_cost
from audio_nas.features.frontends import FRONTENDS, make_frontend

__all__ = [
    "FrontEndConfig",
    "FeatureSet",
    "compute_features",
    "FRONTENDS",
    "make_frontend",
    "FrontEndCost",
    "frontend_cost",
]
