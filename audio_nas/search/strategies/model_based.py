"""Multi-objective Bayesian optimisation and particle swarm optimisation over the encoded space."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from audio_nas.search.objectives import hypervolume
from audio_nas.search.strategies.base import BaseStrategy, StrategyContext
from audio_nas.space import ArchSpec, decode, encode, mutate, sample_spec
from audio_nas.space.sampling import encoding_dim


class MOBayesOpt(BaseStrategy):
    """Bayesian optimisation with an optimistic hypervolume-improvement acquisition.

    Only accuracy is unknown before training (energy and RAM come from the cost models), so the
    surrogate is a random forest (scikit-learn) from ``encode(spec)`` to accuracy; its per-tree spread
    is the uncertainty. A candidate's acquisition is the hypervolume it would add to the current front
    at its optimistic accuracy ``mean + kappa * std`` and its known energy and RAM (an upper-confidence
    form of expected hypervolume improvement). Candidates: random samples plus mutations of the front,
    plus whatever ``extra_candidates`` supplies (the hybrid adds evolution's children and the swarm's
    moves). Trials asked but not yet told (running on other workers) enter the front at their predicted
    mean accuracy as fantasies, and when asked for several, each pick is added at its optimistic value
    before the next (a "believer" batch), so parallel proposals spread over the front.
    """

    name = "bo"

    def __init__(
        self,
        ctx: StrategyContext,
        seed: int = 0,
        n_random: int = 40,
        n_mutants: int = 40,
        kappa: float = 1.0,
        n_initial: int = 5,
    ):
        super().__init__(ctx, seed)
        # n_initial: random proposals until this many trials have finished and the forest can be fitted
        self.n_random, self.n_mutants, self.kappa, self.n_initial = n_random, n_mutants, kappa, n_initial
        # () -> [(spec, origin)]: more candidates to rank (feasible, unseen, not claimed)
        self.extra_candidates: Callable[[], list[tuple[ArchSpec, str]]] | None = None

    def _candidates(self, front_specs: list[str]) -> list[tuple[ArchSpec, tuple[float, float], str]]:
        pool: dict[str, tuple[ArchSpec, tuple[float, float], str]] = {}
        gens = [lambda: (sample_spec(self.rng, self.ctx.space), self.name)] * self.n_random
        if front_specs:
            parents = [ArchSpec.from_str(s) for s in front_specs]
            gens += [
                lambda: (
                    mutate(parents[int(self.rng.integers(len(parents)))], self.rng, self.ctx.space),
                    self.name,
                )
            ] * self.n_mutants
        proposals = [g() for g in gens] + (self.extra_candidates() if self.extra_candidates else [])
        for s, origin in proposals:
            key = s.to_str()
            if key in pool or key in self.ctx.seen:
                continue
            cheap = self.ctx.cheap_objectives(s)
            if cheap is not None:
                pool[key] = (s, cheap, origin)
        return list(pool.values())

    def _fantasies(self, rf: RandomForestRegressor) -> np.ndarray:
        """Asked-but-untold specs at their predicted mean accuracy and known costs."""
        told = {s for s, _ in self.history}
        pending = [ArchSpec.from_str(s) for s in sorted(self.ctx.seen - told)]
        pts = []
        for spec in pending:
            cheap = self.ctx.cheap_objectives(spec)
            if cheap is None:
                continue
            acc = float(np.clip(rf.predict(encode(spec, self.ctx.space)[None])[0], 0, 1))
            pts.append([1 - acc, cheap[0], cheap[1]])
        return np.array(pts, float).reshape(-1, 3)

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        specs, F = self.observed()
        if len(specs) < self.n_initial:
            return [(self.random_feasible(), "random") for _ in range(n)]
        X = np.stack([encode(ArchSpec.from_str(s), self.ctx.space) for s in specs])
        rf = RandomForestRegressor(
            n_estimators=60, min_samples_leaf=2, random_state=int(self.rng.integers(2**31))
        )
        rf.fit(X, 1.0 - F[:, 0])
        front_specs, front = self.front()
        cands = self._candidates(front_specs)
        if not cands:
            return [(self.random_feasible(), "random") for _ in range(n)]
        Xc = np.stack([encode(s, self.ctx.space) for s, _, _ in cands])
        per_tree = np.stack([t.predict(Xc) for t in rf.estimators_])
        acc_opt = np.clip(per_tree.mean(0) + self.kappa * per_tree.std(0), 0, 1)
        pts = np.array([[1 - a, c[0], c[1]] for a, (_, c, _) in zip(acc_opt, cands)])
        ref = self.ctx.hv_reference
        out = []
        current = np.vstack([front, self._fantasies(rf)])
        for _ in range(n):
            base = hypervolume(current, ref)
            # a candidate dominated by the current front adds nothing: only compute HV for the rest
            dominated = np.array(
                [bool(len(current)) and bool(np.any(np.all(current <= p, axis=1))) for p in pts]
            )
            gains = np.zeros(len(pts))
            for j in np.flatnonzero(~dominated):
                gains[j] = hypervolume(np.vstack([current, pts[j]]), ref) - base
            gains[[i for i, (s, _, _) in enumerate(cands) if s.to_str() in self.ctx.seen]] = -1
            i = int(np.argmax(gains))
            if gains[i] < 0:
                out.append((self.random_feasible(), "random"))
                continue
            spec, _, origin = cands[i]
            out.append((self.claim(spec), origin))
            current = np.vstack([current, pts[i]])
        return out


class ParticleSwarm(BaseStrategy):
    """Multi-objective PSO in the encoding space (MOPSO-style).

    Each particle has a position and velocity in [0,1]^D; its guide is a random member of the global
    Pareto front (re-drawn per step) plus its own personal best. Positions decode to the nearest valid
    spec; a position that decodes to a spec already seen is nudged by a mutation.
    Personal best updates: the new point replaces it if it dominates it, or with probability 1/2 if
    neither dominates.
    """

    name = "pso"

    def __init__(
        self,
        ctx: StrategyContext,
        seed: int = 0,
        n_particles: int = 8,
        inertia: float = 0.6,
        c_personal: float = 1.4,
        c_global: float = 1.4,
        v_max: float = 0.3,
    ):
        super().__init__(ctx, seed)
        d = encoding_dim(ctx.space)
        self.n, self.w, self.c1, self.c2, self.v_max = n_particles, inertia, c_personal, c_global, v_max
        self.x = self.rng.random((n_particles, d))
        self.v = np.zeros((n_particles, d))
        self.pbest = self.x.copy()
        self.pbest_f: list[list[float] | None] = [None] * n_particles
        self.next_particle = 0
        self.pending: dict[str, int] = {}

    def moves(self) -> list[tuple[ArchSpec, str]]:
        """Every particle's next position, decoded, without moving it (candidates for the hybrid's ranking;
        ``commit`` moves the particle whose position was chosen)."""
        saved = (self.x.copy(), self.v.copy(), set(self.ctx.seen))
        out, self._tentative = [], {}
        for i in range(self.n):
            spec = self._step(i)
            self._tentative[spec.to_str()] = (i, self.x[i].copy(), self.v[i].copy())
            out.append((spec, self.name))
        self.x, self.v, seen = saved
        self.ctx.seen.clear()
        self.ctx.seen.update(seen)
        return out

    def commit(self, spec: ArchSpec) -> None:
        """Move the particle whose tentative position decoded to ``spec`` there."""
        hit = getattr(self, "_tentative", {}).get(spec.to_str())
        if hit is not None:
            i, x, v = hit
            self.x[i], self.v[i] = x, v
            self.pending[spec.to_str()] = i

    def _step(self, i: int) -> ArchSpec:
        front_specs, _ = self.front()
        if front_specs:
            g = encode(
                ArchSpec.from_str(front_specs[int(self.rng.integers(len(front_specs)))]), self.ctx.space
            )
        else:
            g = self.pbest[i]
        r1, r2 = self.rng.random(self.x.shape[1]), self.rng.random(self.x.shape[1])
        self.v[i] = np.clip(
            self.w * self.v[i] + self.c1 * r1 * (self.pbest[i] - self.x[i]) + self.c2 * r2 * (g - self.x[i]),
            -self.v_max,
            self.v_max,
        )
        self.x[i] = np.clip(self.x[i] + self.v[i], 0, 1)
        spec = decode(self.x[i], self.ctx.space)
        for _ in range(self.max_tries):
            if self.feasible_new(spec):
                return self.claim(spec)
            spec = mutate(spec, self.rng, self.ctx.space)
        return self.random_feasible()

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        out = []
        for _ in range(n):
            i = self.next_particle
            self.next_particle = (i + 1) % self.n
            spec = self._step(i)
            self.pending[spec.to_str()] = i
            out.append((spec, self.name))
        return out

    def tell(self, spec: ArchSpec, objectives: np.ndarray | None) -> None:
        super().tell(spec, objectives)
        i = self.pending.pop(spec.to_str(), None)
        if i is None or objectives is None:
            return
        f = np.asarray(objectives, float)
        old = self.pbest_f[i]
        better = old is None or (np.all(f <= old) and np.any(f < old))
        worse = old is not None and np.all(np.asarray(old) <= f) and np.any(np.asarray(old) < f)
        if better or (not worse and self.rng.random() < 0.5):
            self.pbest[i] = encode(spec, self.ctx.space)
            self.pbest_f[i] = [float(v) for v in f]

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "x": self.x.tolist(),
            "v": self.v.tolist(),
            "pbest": self.pbest.tolist(),
            "pbest_f": self.pbest_f,
            "next_particle": self.next_particle,
            "pending": self.pending,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.x, self.v, self.pbest = (np.array(state[k]) for k in ("x", "v", "pbest"))
        self.pbest_f, self.next_particle, self.pending = (
            state["pbest_f"],
            state["next_particle"],
            dict(state["pending"]),
        )
