"""Bayesian proposals and regularized evolution working together with particle swarms.

Not the default: on the strategy benchmark (20 seeds on the table surrogate) it ties plain ``bo``, whose
proposals it ranks, and on real training (3 seeds x 60 trials) bo's median is ahead; the extra candidates
from evolution and the swarm neither help nor hurt measurably, so the simpler ``bo`` is the default
(docs/benchmarks.md, README).

``hybrid`` (pool-ranked): after ``n_initial`` random trials, every proposal is the Bayesian optimiser's
pick from one candidate pool that all three parts fill: BO's own random samples and front mutations,
``n_children`` children of regularized evolution's tournaments, and every particle's next swarm position.
The random-forest surrogate ranks the whole pool by optimistic hypervolume improvement (with running
trials as fantasies, see ``MOBayesOpt``); evolution and the swarm supply good places to look, the
surrogate decides which to spend a trial on. A pick from the swarm moves that particle; evolution's
population and the swarm's guides learn from every finished trial. The origin of each trial records
which part generated it.

``hybrid-credit`` (the first design, kept for comparison): each trial slot goes to one part, drawn with
probability proportional to its credit ``(1 + its trials on the front) / (2 + its finished trials)``,
floored at ``min_share``.

``audio-nas bench search`` compares both with their parts and the peers (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np

from audio_nas.search.objectives import non_dominated
from audio_nas.search.strategies.base import BaseStrategy, StrategyContext
from audio_nas.search.strategies.model_based import MOBayesOpt, ParticleSwarm
from audio_nas.search.strategies.simple import RegularizedEvolution
from audio_nas.space import ArchSpec


class _Parts(BaseStrategy):
    def __init__(self, ctx: StrategyContext, seed: int, n_initial: int):
        super().__init__(ctx, seed)
        self.n_initial = n_initial
        ss = np.random.SeedSequence(seed).spawn(3)
        seeds = [int(s.generate_state(1)[0]) for s in ss]
        self.parts = {
            "evolution": RegularizedEvolution(ctx, seeds[0]),
            "bo": MOBayesOpt(ctx, seeds[1]),
            "pso": ParticleSwarm(ctx, seeds[2]),
        }
        self.origin: dict[str, str] = {}  # spec -> part that proposed it
        self.asked = 0

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


class Hybrid(_Parts):
    name = "hybrid"

    def __init__(self, ctx: StrategyContext, seed: int = 0, n_initial: int = 8, n_children: int = 20):
        super().__init__(ctx, seed, n_initial)
        self.n_children = n_children
        evolution, swarm = self.parts["evolution"], self.parts["pso"]
        self.parts["bo"].extra_candidates = lambda: evolution.children(self.n_children) + swarm.moves()

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        out: list[tuple[ArchSpec, str]] = []
        for _ in range(n):
            if self.asked < self.n_initial:
                spec, origin = self.random_feasible(), "random"
            else:
                spec, origin = self.parts["bo"].ask(1)[0]
                if origin == "pso":
                    self.parts["pso"].commit(spec)
            self.origin[spec.to_str()] = origin
            self.asked += 1
            out.append((spec, origin))
        return out


class CreditHybrid(_Parts):
    name = "hybrid-credit"

    def __init__(self, ctx: StrategyContext, seed: int = 0, n_initial: int = 8, min_share: float = 0.15):
        super().__init__(ctx, seed, n_initial)
        self.min_share = min_share

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
