"""``bo-gp``: our ``bo`` with BoTorch's Gaussian process and qLogEHVI in place of the forest and UCB.

``bo`` ranks its candidates (random samples and mutations of the front, plus the hybrid's extras) by the
hypervolume each would add at an optimistic accuracy from a random forest's per-tree spread. The issue
behind this module asked for a better-calibrated surrogate and batch-aware acquisition; BoTorch, the
well-kept library for both, provides them:

- accuracy: ``SingleTaskGP`` (Matern 5/2 with automatic relevance determination over the encoding, the
  dimension-scaled length-scale prior of BoTorch's defaults, a learned noise level, standardised outcome);
- energy and RAM, known before training, enter as a deterministic model that reads two extra columns of
  each candidate row; the GP's kernel does not see them (``active_dims``);
- acquisition: qLogEHVI (log expected hypervolume improvement, Ament et al. 2023) over the front of the
  observed trials at their posterior mean accuracy, maximised over the candidate pool
  (``optimize_acqf_discrete``); trials asked but not yet told (other workers') are ``X_pending``, so
  parallel proposals are batch-aware without our believer heuristics.

``qlogehvi_pick`` is the shared core; the benchmark's BoTorch peer calls it with a plain Sobol pool.
"""

from __future__ import annotations

import warnings

import numpy as np

from audio_nas.search.strategies.model_based import MOBayesOpt
from audio_nas.space import ArchSpec, encode


def qlogehvi_pick(
    X_obs: np.ndarray,
    acc_obs: np.ndarray,
    choices: np.ndarray,
    ref: tuple[float, float, float],
    q: int,
    seed: int,
    pending: np.ndarray | None = None,
) -> list[int]:
    """Indices of ``q`` rows of ``choices`` picked by qLogEHVI (sequential greedy for q > 1).

    Rows are ``[encoding (D), log10 µJ, log10 bytes]``; ``acc_obs`` the accuracies of ``X_obs``; ``ref`` the
    minimised reference point (1 - accuracy, log10 µJ, log10 bytes).
    """
    import torch
    from botorch.acquisition.multi_objective.logei import qLogExpectedHypervolumeImprovement
    from botorch.exceptions import InputDataWarning
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.deterministic import GenericDeterministicModel
    from botorch.models.model import ModelList
    from botorch.models.transforms import Standardize
    from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
    from botorch.optim import optimize_acqf_discrete
    from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
    from gpytorch.mlls import ExactMarginalLogLikelihood

    dim = X_obs.shape[1] - 2

    def maximised(rows: np.ndarray) -> torch.Tensor:  # BoTorch maximises: negate the two cost columns
        t = torch.tensor(rows, dtype=torch.float64)
        t[:, dim:] = -t[:, dim:]
        return t

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        X = maximised(X_obs)
        y = torch.tensor(np.asarray(acc_obs, float), dtype=torch.float64)[:, None]
        covar = get_covar_module_with_dim_scaled_prior(ard_num_dims=dim, active_dims=list(range(dim)))
        with warnings.catch_warnings():
            # the two cost columns are not in [0, 1]; the kernel never sees them (active_dims)
            warnings.simplefilter("ignore", InputDataWarning)
            gp = SingleTaskGP(X, y, covar_module=covar, outcome_transform=Standardize(1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        model = ModelList(gp, GenericDeterministicModel(lambda Z: Z[..., dim : dim + 2], num_outputs=2))
        ref_max = torch.tensor([1.0 - ref[0], -ref[1], -ref[2]], dtype=torch.float64)
        with torch.no_grad():
            # the front to improve on: observed trials at the GP's posterior mean accuracy (the noise-aware
            # form of EHVI in BoTorch's tutorials; qLogNEHVI, which integrates over the front, partitioned
            # the space once per MC sample and took minutes per step at 60 trials here)
            front = model.posterior(X).mean
        acqf = qLogExpectedHypervolumeImprovement(
            model=model,
            ref_point=ref_max,
            partitioning=FastNondominatedPartitioning(ref_point=ref_max, Y=front),
            X_pending=maximised(pending) if pending is not None and len(pending) else None,
        )
        C = maximised(choices)
        best, _ = optimize_acqf_discrete(acqf, q=min(q, len(C)), choices=C, unique=True)
        return [int(torch.argmin(torch.abs(C - b).sum(dim=1))) for b in best]


class GPBayesOpt(MOBayesOpt):
    """``bo``'s candidates and loop; BoTorch's GP and qLogEHVI choose among them."""

    name = "bo-gp"

    def _row(self, spec: ArchSpec, costs) -> np.ndarray:
        return np.concatenate([encode(spec, self.ctx.space), [float(costs[0]), float(costs[1])]])

    def ask(self, n: int) -> list[tuple[ArchSpec, str]]:
        specs, F = self.observed()
        if len(specs) < max(self.n_initial, 2):
            return [(self.random_feasible(), "random") for _ in range(n)]
        front_specs, _ = self.front()
        cands = self._candidates(front_specs)  # feasible, unseen, unclaimed
        if not cands:
            return [(self.random_feasible(), "random") for _ in range(n)]
        X = np.stack([self._row(ArchSpec.from_str(s), f[1:]) for s, f in zip(specs, F, strict=True)])
        told = {s for s, _ in self.history}
        pending = []
        for s in sorted(self.ctx.seen - told):
            spec = ArchSpec.from_str(s)
            c = self.ctx.cheap_objectives(spec)
            if c is not None:
                pending.append(self._row(spec, c))
        choices = np.stack([self._row(s, c) for s, c, _ in cands])
        from botorch.exceptions.errors import ModelFittingError

        try:
            picks = qlogehvi_pick(
                X,
                1.0 - F[:, 0],
                choices,
                self.ctx.hv_reference,
                q=n,
                seed=int(self.rng.integers(2**31)),
                pending=np.stack(pending) if pending else None,
            )
        except (ModelFittingError, RuntimeError) as exc:  # RuntimeError: e.g. a covariance not PSD
            # a search must not die on one failed GP fit: rank this batch as bo does, and say so
            warnings.warn(f"bo-gp: GP fit failed ({exc}); this batch is ranked by bo's forest", stacklevel=2)
            return super().ask(n)
        out = [(self.claim(cands[i][0]), cands[i][2]) for i in picks]
        return out + [(self.random_feasible(), "random") for _ in range(n - len(out))]
