"""The ask/tell interface and what every strategy shares.

A strategy proposes specs (``ask``) and learns from finished trials (``tell``). Its whole
state (random generator, history, its own structures) is a JSON-able ``state_dict`` that the
runner stores in the trial store after every ask and tell, so a resumed run continues exactly.
Cheap objectives (energy, RAM) and the board's hard constraints are known before training, so
strategies only propose feasible specs and model-based ones need a surrogate for accuracy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from audio_nas.search.objectives import non_dominated
from audio_nas.space import ArchSpec, SearchSpace, sample_spec


@dataclass
class StrategyContext:
    space: SearchSpace
    # spec -> (log10 energy_uj, log10 ram_bytes), or None when the spec breaks a board constraint
    cheap_objectives: Callable[[ArchSpec], tuple[float, float] | None]
    hv_reference: tuple[float, float, float] = (1.0, 5.0, 6.0)
    seen: set[str] = field(default_factory=set)  # spec strings asked so far (shared by hybrid parts)


class Strategy(Protocol):
    name: str

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        """n new specs with the name of the part that proposed each."""

    def tell(self, spec: ArchSpec, objectives: np.ndarray | None) -> None:
        """A finished trial: its objective vector (minimised) or None if it failed."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class BaseStrategy:
    name = "base"
    max_tries = 200

    def __init__(self, ctx: StrategyContext, seed: int = 0):
        self.ctx = ctx
        self.rng = np.random.default_rng(seed)
        self.history: list[tuple[str, list[float] | None]] = []

    # -- helpers
    def feasible_new(self, spec: ArchSpec) -> bool:
        s = spec.to_str()
        return s not in self.ctx.seen and self.ctx.cheap_objectives(spec) is not None

    def claim(self, spec: ArchSpec) -> ArchSpec:
        self.ctx.seen.add(spec.to_str())
        return spec

    def random_feasible(self) -> ArchSpec:
        for _ in range(self.max_tries):
            s = sample_spec(self.rng, self.ctx.space)
            if self.feasible_new(s):
                return self.claim(s)
        raise RuntimeError(
            "no feasible unseen spec found in 200 samples: the board constraints exclude the space"
        )

    def observed(self) -> tuple[list[str], np.ndarray]:
        done = [(s, f) for s, f in self.history if f is not None]
        return [s for s, _ in done], np.array([f for _, f in done], float).reshape(-1, 3)

    def front(self) -> tuple[list[str], np.ndarray]:
        specs, F = self.observed()
        idx = non_dominated(F)
        return [specs[i] for i in idx], F[idx]

    # -- protocol
    def tell(self, spec: ArchSpec, objectives: np.ndarray | None) -> None:
        self.history.append((spec.to_str(), None if objectives is None else [float(v) for v in objectives]))
        self.ctx.seen.add(spec.to_str())

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "history": self.history, "seen": sorted(self.ctx.seen)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.history = [(s, f) for s, f in state["history"]]
        self.ctx.seen.update(state.get("seen", []))


def normalise(F: np.ndarray) -> np.ndarray:
    if len(F) == 0:
        return F
    lo, hi = F.min(axis=0), F.max(axis=0)
    return (F - lo) / np.where(hi > lo, hi - lo, 1.0)


def random_weights(rng: np.random.Generator, k: int = 3) -> np.ndarray:
    return rng.dirichlet(np.ones(k))
