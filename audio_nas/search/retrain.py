"""How long the final Pareto models are retrained: the search's ``train`` recipe, with more epochs for the
cheap networks that need them and cost little to give them.

Why: a search ranks candidates after ``train.epochs`` epochs (15 by default), which is far from converged
for the small networks at the cheap end of a front. Two ~40 k-MAC networks of a real search on synth-kws
reached 0.28 / 0.38 real test accuracy at 8 epochs, 0.55 / 0.68 at 32 and 0.67 / 0.75 at 128 (3 training
seeds each; docs/benchmarks.md, "A compute budget for the cap, and the fair comparison it exposed"), while
their rank stayed the same. Those networks are also the cheapest to train, so ``retrain.budget_macs``
buys each Pareto model as many epochs as that many forward MACs (train examples per epoch x MACs per
example x epochs) pay for, never fewer than the search's epochs and never more than
``retrain.max_epochs``: cheap models train long, expensive ones keep the search's recipe and time.
"""

from __future__ import annotations

from typing import Any

from audio_nas.space import arch_costs
from audio_nas.training.config import TrainConfig


def retrain_epochs(
    spec: Any, train_examples: int, train: TrainConfig, max_epochs: int | None, budget_macs: float | None
) -> int:
    """Epochs for one Pareto model's retraining (see the module docstring). ``max_epochs`` None: the
    search's ``train.epochs`` (retraining as the search trained); ``budget_macs`` None: ``max_epochs``
    for every model."""
    if max_epochs is None:
        return train.epochs
    if budget_macs is None:
        return max_epochs
    macs = max(1, arch_costs(spec).macs)  # the MACs the report and pareto.csv state
    affordable = int(budget_macs // (macs * max(1, train_examples)))
    return max(train.epochs, min(max_epochs, affordable))
