"""The default: Bayesian proposals and regularized evolution working together with particle swarms.

Budget sharing: the first ``n_initial`` trials are random (all parts need data). After that each
trial slot goes to one part, drawn with probability proportional to that part's credit:
    credit = (1 + its trials on the current Pareto front) / (2 + its finished trials),
floored at ``min_share`` so no part starves. A part that keeps putting trials on the front gets more
of the budget; one that stops doing so decays to the floor. All parts learn from every finished trial
(evolution's population, BO's surrogate and PSO's global guide all see the whole history), so they
exchange information through the shared front rather than running as separate searches.
"""

from __future__ import annotations

import numpy as np

from audio_nas.search.objectives import non_dominated
from audio_nas.search.strategies.base import BaseStrategy, StrategyContext
from audio_nas.search.strategies.model_based import MOBayesOpt, ParticleSwarm
from audio_nas.search.strategies.simple import RegularizedEvolution
from audio_nas.space import ArchSpec


class Hybrid(BaseStrategy):
    name = "hybrid"

    def __init__(self, ctx: StrategyContext, seed: int = 0, n_initial: int = 8, min_share: float = 0.15):
        super().__init__(ctx, seed)
        self.n_initial, self.min_share = n_initial, min_share
        ss = np.random.SeedSequence(seed).spawn(3)
        seeds = [int(s.generate_state(1)[0]) for s in ss]
        self.parts = {
            "evolution": RegularizedEvolution(ctx, seeds[0]),
            "bo": MOBayesOpt(ctx, seeds[1]),
            "pso": ParticleSwarm(ctx, seeds[2]),
        }
        self.origin: dict[str, str] = {}  # spec -> part that proposed it
        self.asked = 0

    def credits(self) -> dict[str, float]:
        specs, F = self.observed()
        on_front = {specs[i] for i in non_dominated(F)}
        credit = {}
        for name in self.parts:
            mine = [s for s in specs if self.origin.get(s) == name]
            credit[name] = (1 + sum(s in on_front for s in mine)) / (2 + len(mine))
        total = sum(credit.values())
        share = {k: max(self.min_share, v / total) for k, v in credit.items()}
        z = sum(share.values())
        return {k: v / z for k, v in share.items()}

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        out: list[tuple[ArchSpec, str]] = []
        for _ in range(n):
            if self.asked < self.n_initial:
                spec, origin = self.random_feasible(), "random"
            else:
                share = self.credits()
                names = list(share)
                part = names[int(self.rng.choice(len(names), p=[share[k] for k in names]))]
                spec, origin = self.parts[part].ask(1)[0]
            self.origin[spec.to_str()] = origin
            self.asked += 1
            out.append((spec, origin))
        return out

    def tell(self, spec: ArchSpec, objectives: np.ndarray | None) -> None:
        super().tell(spec, objectives)
        for part in self.parts.values():
            part.tell(spec, objectives)

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "origin": self.origin,
            "asked": self.asked,
            "parts": {k: p.state_dict() for k, p in self.parts.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.origin, self.asked = dict(state["origin"]), state["asked"]
        for k, p in self.parts.items():
            p.load_state_dict(state["parts"][k])
