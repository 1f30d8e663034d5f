"""A BoTorch multi-objective Bayesian optimiser as a peer in the search benchmark (issue 14, item 3).

BoTorch is the well-kept reference library for multi-objective BO; the peer uses its qLogEHVI (log
expected hypervolume improvement, Ament et al. 2023) over the observed front at the GP's posterior mean
(qLogNEHVI, the fully noise-integrated form, took minutes per step at 60 trials on this machine). The
peer is given exactly what our strategies are given, so this comparison carries no information caveat:
accuracy is modelled by BoTorch's default GP on the space's encoding, energy and RAM are known (a
deterministic model), and the candidates are feasible, unseen specs (``qlogehvi_pick``, shared with
``bo-gp``).

The space is discrete and mixed (choices decoded from [0, 1]^D), so the acquisition is maximised over a
pool: ``POOL_DRAWS`` scrambled-Sobol points per step, decoded to specs, kept if feasible and new. No
mutation of the front is added to the pool; that is our strategies' device, and the peer should be
BoTorch's standard recipe for a discrete space, not ours.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from audio_nas.search.strategies.gp_bo import qlogehvi_pick
from audio_nas.space import ArchSpec, SearchSpace, decode, encode
from audio_nas.space.sampling import encoding_dim

POOL_DRAWS = 512
N_INITIAL = 5  # random feasible evaluations before the first GP fit (bo's benchmarked n_initial)


def run_botorch(
    oracle,
    seed: int,
    cheap: Callable[[ArchSpec], tuple[float, float] | None],
    space: SearchSpace,
    ref: tuple[float, float, float],
) -> None:
    """Spend ``oracle``'s budget; ``cheap(spec)`` -> (log10 µJ, log10 bytes), or None if infeasible."""
    from torch.quasirandom import SobolEngine

    sobol = SobolEngine(encoding_dim(space), scramble=True, seed=seed)
    X_obs: list[np.ndarray] = []
    acc_obs: list[float] = []
    step = 0
    while not oracle.done:
        pool: dict[str, tuple[ArchSpec, np.ndarray]] = {}
        for x in sobol.draw(POOL_DRAWS).double().numpy():
            spec = decode(x, space)
            key, costs = spec.to_str(), cheap(spec)
            if key not in pool and key not in oracle.known and costs is not None:
                pool[key] = (spec, np.concatenate([encode(spec, space), costs]))
        if not pool:
            continue  # every draw infeasible or seen: draw again
        cands = list(pool.values())
        i = 0
        if len(X_obs) >= N_INITIAL:
            choices = np.stack([row for _, row in cands])
            i = qlogehvi_pick(np.stack(X_obs), np.array(acc_obs), choices, ref, q=1, seed=seed + step)[0]
        spec, row = cands[i]
        f = oracle(spec)
        X_obs.append(row)
        acc_obs.append(1.0 - float(f[0]))
        step += 1
