"""Random search and regularized (aging) evolution."""

from __future__ import annotations

import numpy as np

from audio_nas.search.strategies.base import BaseStrategy, StrategyContext, normalise, random_weights
from audio_nas.space import ArchSpec, crossover, mutate


class RandomSearch(BaseStrategy):
    """The baseline every other strategy must beat."""

    name = "random"

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        return [(self.random_feasible(), "random") for _ in range(n)]


class RegularizedEvolution(BaseStrategy):
    """Aging evolution (Real et al. 2019) made multi-objective.

    The population is the ``population_size`` most recent finished trials (old ones die, good or not).
    A tournament samples ``tournament_size`` members and picks the best under a random Chebyshev
    scalarisation of the normalised objectives (a fresh weight vector per tournament, so the whole
    front gets parents). The child is a mutation of the winner, or with ``crossover_prob`` a crossover
    of two winners then a mutation. Until the population has ``tournament_size`` members it samples randomly.
    """

    name = "evolution"

    def __init__(
        self,
        ctx: StrategyContext,
        seed: int = 0,
        population_size: int = 20,
        tournament_size: int = 5,
        crossover_prob: float = 0.2,
    ):
        super().__init__(ctx, seed)
        self.population_size, self.tournament_size, self.crossover_prob = (
            population_size,
            tournament_size,
            crossover_prob,
        )

    def _population(self) -> tuple[list[str], np.ndarray]:
        specs, F = self.observed()
        return specs[-self.population_size :], F[-self.population_size :]

    def _tournament(self, specs: list[str], F: np.ndarray) -> ArchSpec:
        idx = self.rng.choice(len(specs), size=min(self.tournament_size, len(specs)), replace=False)
        w = random_weights(self.rng)
        scores = np.max(normalise(F)[idx] * w, axis=1)  # Chebyshev: lower is better
        return ArchSpec.from_str(specs[int(idx[int(np.argmin(scores))])])

    def propose(self) -> ArchSpec:
        specs, F = self._population()
        if len(specs) < self.tournament_size:
            return self.random_feasible()
        for _ in range(self.max_tries):
            parent = self._tournament(specs, F)
            if self.rng.random() < self.crossover_prob:
                parent = crossover(parent, self._tournament(specs, F), self.rng, self.ctx.space)
            child = mutate(parent, self.rng, self.ctx.space)
            if self.feasible_new(child):
                return self.claim(child)
        return self.random_feasible()

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        return [(self.propose(), self.name) for _ in range(n)]

    def children(self, k: int) -> list[tuple[ArchSpec, str]]:
        """Up to ``k`` feasible unseen children of tournament winners, not claimed (candidates for the
        hybrid's ranking); none before the population can hold a tournament."""
        specs, F = self._population()
        if len(specs) < self.tournament_size:
            return []
        out: dict[str, ArchSpec] = {}
        for _ in range(k * 4):
            parent = self._tournament(specs, F)
            if self.rng.random() < self.crossover_prob:
                parent = crossover(parent, self._tournament(specs, F), self.rng, self.ctx.space)
            child = mutate(parent, self.rng, self.ctx.space)
            if self.feasible_new(child):
                out.setdefault(child.to_str(), child)
            if len(out) >= k:
                break
        return [(c, self.name) for c in out.values()]
