"""Strategy registry: name -> class taking (ctx, seed, **kwargs)."""

from audio_nas.search.strategies.base import BaseStrategy, Strategy, StrategyContext
from audio_nas.search.strategies.gp_bo import GPBayesOpt
from audio_nas.search.strategies.hybrid import CreditHybrid, Hybrid
from audio_nas.search.strategies.model_based import MOBayesOpt, ParticleSwarm
from audio_nas.search.strategies.simple import RandomSearch, RegularizedEvolution

STRATEGIES: dict[str, type[BaseStrategy]] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "bo": MOBayesOpt,
    "bo-gp": GPBayesOpt,
    "pso": ParticleSwarm,
    "hybrid": Hybrid,
    "hybrid-credit": CreditHybrid,
}

__all__ = [
    "STRATEGIES",
    "Strategy",
    "StrategyContext",
    "BaseStrategy",
    "RandomSearch",
    "RegularizedEvolution",
    "MOBayesOpt",
    "GPBayesOpt",
    "ParticleSwarm",
    "Hybrid",
    "CreditHybrid",
]
