"""Search configuration (YAML, strict keys)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from audio_nas.errors import ConfigError
from audio_nas.search.objectives import DEFAULT_OBJECTIVES, check_objectives, default_hv_reference
from audio_nas.search.strategies import STRATEGIES
from audio_nas.training.config import TrainConfig
from audio_nas.training.inversion import PRIORS
from audio_nas.training.synthesize import DATAFREE_DISTILL_ALPHA


@dataclass(frozen=True, kw_only=True)
class PrunerConfig:
    # rules in search/pruners.py; `audio-nas bench pruning` replays them on the table's real curves
    kind: Literal["pareto-median", "asha", "pareto-asha", "lc-extrapolation", "none"] = "pareto-median"
    warmup_epochs: int = 2  # never stop before this many epochs (ASHA: the first rung)
    min_peers: int = 4  # (cheaper) completed trials needed before a trial can be stopped
    eta: int = 3  # ASHA: rungs at warmup_epochs * eta^k, keep the top 1/eta

    def __post_init__(self) -> None:
        if self.warmup_epochs < 1:
            raise ConfigError(f"pruner.warmup_epochs must be >= 1, got {self.warmup_epochs}")
        if self.min_peers < 1:
            raise ConfigError(f"pruner.min_peers must be >= 1, got {self.min_peers}")
        if self.eta < 2:
            raise ConfigError(f"pruner.eta must be >= 2, got {self.eta}")


DEFAULT_TRAIN = TrainConfig(epochs=15, batch_size=64, num_threads=1)


@dataclass(frozen=True, kw_only=True)
class RetrainConfig:
    """Epochs of the final Pareto models' retraining (search/retrain.py): each gets as many epochs as
    ``budget_macs`` forward MACs pay for (train examples per epoch x MACs per example x epochs), between
    ``train.epochs`` and ``max_epochs``. ``max_epochs`` None: retrain with the search's own epochs."""

    max_epochs: int | None = None
    budget_macs: float | None = None  # None with max_epochs set: every Pareto model gets max_epochs

    def __post_init__(self) -> None:
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(f"retrain.max_epochs must be >= 1, got {self.max_epochs}")
        if self.budget_macs is not None:
            if not (self.budget_macs > 0):
                raise ConfigError(f"retrain.budget_macs must be > 0, got {self.budget_macs}")
            if self.max_epochs is None:
                raise ConfigError(
                    "retrain.budget_macs buys cheap Pareto models more epochs up to retrain.max_epochs; "
                    "set max_epochs too (e.g. 120), or leave budget_macs out"
                )


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    name: str = "default"
    dataset: str = "synth-kws"
    on_error: Literal["raise", "skip"] = "raise"  # unreadable audio files: fail naming the file, or skip them
    board: str = "nucleo-l4r5zi"
    strategy: str = "bo-gp"
    # train: real training; surrogate: the learning-curve surrogate fitted on a table of trained
    # architectures (search/surrogate.py; strategy benchmarks and tests)
    evaluator: Literal["train", "surrogate"] = "train"
    surrogate_table: str = "datasets/nas-table/synth-kws.csv.gz"
    n_trials: int = 60
    time_budget_s: float | None = None
    workers: int = 2
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    seed: int = 0
    energy_source: Literal["emulated", "analytic", "predicted"] = "emulated"
    train: TrainConfig = DEFAULT_TRAIN
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    # the final Pareto models' retraining: more epochs for cheap networks (search/retrain.py)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    n_initial: int = 5  # random trials before the model-based parts start
    # weight bit-widths the space may choose per block and head: (8,) int8 only; (4, 8) mixed precision (int4
    # weights, bit-exact in TFLM; `audio-nas bench quant` measures their accuracy cost)
    weight_bits: tuple[int, ...] = (8,)
    baselines: tuple[str, ...] = ("ds_cnn_s", "mobilenet_v1_x0.25", "mobilenet_v2_x0.35")
    export_pareto: bool = True
    # FRR at 0.5 / 1 / 2 false alarms per hour of every exported Pareto model on long held-out streams, in
    # the report and pareto.csv (streaming/search_eval.py; about 2 x 1 h of audio scored per model)
    stream_eval: bool = True
    # data-free search (docs/data-free.md): search and retrain on features synthesised from `teacher` (a
    # checkpoint directory) with distillation to its soft labels; `dataset` is then only the real labelled
    # test split the report evaluates the retrained Pareto models on (the search never sees it)
    teacher: str | None = None
    data_free: bool = False
    synthetic_dir: str | None = None  # from `audio-nas data synthesize`; None: synthesise into the run dir
    synth_per_class: int = 100
    synth_steps: int = 200
    synth_mixtures: int = 20_000  # teacher-labelled mixtures added to that set (docs/data-free.md)
    synth_prior: str = "source-filter"  # what the inversion optimises, or grid (docs/data-free.md)
    # a source-filter set renders in any mel front-end (training/portable_synth.py), so the front-end genes
    # are searched; true keeps every candidate on the teacher's front-end (always so for a grid set)
    pin_frontend: bool = False
    # accuracy and two costs from search.objectives.OBJECTIVES (energy_uj, ram_bytes, ace_v2, flash_bytes,
    # latency_ms); hv_reference: one entry per objective in its minimised scale, by default the registry's
    # ((1.0, 5.0, 6.0) for the default objectives: 1 - acc, log10 uJ, log10 bytes)
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    hv_reference: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:

        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy {self.strategy!r} is unknown; choose one of {', '.join(STRATEGIES)}")
        if self.evaluator not in ("train", "surrogate"):
            raise ConfigError(
                f"evaluator {self.evaluator!r} is unknown; choose train or surrogate (the hand-written "
                "'synthetic' objective was removed: use evaluator: surrogate with surrogate_table: a table "
                "of trained architectures, e.g. tests/search/data/nas-table-fixture.csv.gz in tests)"
            )
        if self.n_trials < 1:
            raise ConfigError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.n_initial < 1 or self.n_initial > self.n_trials:
            raise ConfigError(f"n_initial must be in 1..n_trials ({self.n_trials}), got {self.n_initial}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        if self.executor == "ray" and self.ray_address is None:
            pass  # a local Ray instance is started
        if not self.weight_bits or not set(self.weight_bits) <= {4, 8}:
            raise ConfigError(f"weight_bits must be a non-empty subset of (4, 8), got {self.weight_bits}")
        check_objectives(self.objectives)
        if self.retrain.max_epochs is not None and self.retrain.max_epochs < self.train.epochs:
            raise ConfigError(
                f"retrain.max_epochs ({self.retrain.max_epochs}) is below train.epochs "
                f"({self.train.epochs}): the Pareto models would be retrained for less than the search "
                "trained them; raise it or leave it out"
            )
        if self.hv_reference is None:
            object.__setattr__(self, "hv_reference", default_hv_reference(self.objectives))
        elif len(self.hv_reference) != len(self.objectives):
            raise ConfigError(
                f"hv_reference needs one entry per objective ({len(self.objectives)}), "
                f"got {self.hv_reference}"
            )
        if not self.name or "/" in self.name:
            raise ConfigError(f"name must be a non-empty directory name, got {self.name!r}")
        self._check_data_free()

    def _check_data_free(self) -> None:
        if not self.data_free:
            if self.teacher is not None or self.synthetic_dir is not None:
                raise ConfigError(
                    "teacher: and synthetic_dir: are used by data-free search only; add data_free: true "
                    "(or remove them)"
                )
            return
        if self.teacher is None and self.synthetic_dir is None:
            raise ConfigError(
                "data_free: true needs teacher: CHECKPOINT_DIR (or synthetic_dir: DIR from a synthesis)"
            )
        if self.evaluator != "train":
            raise ConfigError(
                f"data_free: true trains candidates; set evaluator: train (got {self.evaluator!r})"
            )
        if self.synth_per_class < 1 or self.synth_steps < 1:
            raise ConfigError("synth_per_class and synth_steps must be >= 1")
        if self.synth_mixtures < 0:
            raise ConfigError(f"synth_mixtures must be >= 0, got {self.synth_mixtures}")
        if self.synth_prior not in PRIORS:
            raise ConfigError(f"synth_prior must be one of {', '.join(PRIORS)}, got {self.synth_prior!r}")
        if self.train.distill_alpha == 0:  # data-free training always distils to the teacher's soft labels
            alpha = DATAFREE_DISTILL_ALPHA
            object.__setattr__(self, "train", dataclasses.replace(self.train, distill_alpha=alpha))

    # keys whose change makes an existing run directory incompatible
    COMPATIBILITY_KEYS = (
        "dataset",
        "board",
        "strategy",
        "evaluator",
        "seed",
        "energy_source",
        "train",
        "pruner",
        "n_initial",
        "hv_reference",
        "weight_bits",
        "objectives",
        "teacher",
        "data_free",
        "synthetic_dir",
        "synth_per_class",
        "synth_steps",
        "synth_mixtures",
        "synth_prior",
        "pin_frontend",
    )
