"""Training recipe: one frozen config, loadable from YAML with strict keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from audio_nas.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class SpecAugmentConfig:
    """SpecAugment (Park et al. 2019) on [T, F] features: masks per example."""

    time_masks: int = 2
    time_mask_frames: int = 5  # max width of one time mask
    freq_masks: int = 2
    freq_mask_bins: int = 4  # max width of one frequency mask

    def __post_init__(self) -> None:
        for name in ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins"):
            if getattr(self, name) < 0:
                raise ConfigError(f"specaugment.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class FreqMixStyleConfig:
    """Freq-MixStyle (Kim et al. 2022): each example's per-band feature mean and spread over time are
    mixed with another example's, so the model cannot key on a voice's or channel's spectral colouring."""

    p: float = 0.0  # share of batches mixed (0 = off)
    alpha: float = 0.4  # mixing weight ~ Beta(alpha, alpha)

    def __post_init__(self) -> None:
        if not (0 <= self.p <= 1):
            raise ConfigError(f"freq_mixstyle.p must be in [0, 1], got {self.p}")
        if not (self.alpha > 0):
            raise ConfigError(f"freq_mixstyle.alpha must be > 0, got {self.alpha}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    specaugment: SpecAugmentConfig = SpecAugmentConfig()
    freq_mixstyle: FreqMixStyleConfig = FreqMixStyleConfig()  # off by default (p = 0)
    seed: int = 0
    num_threads: int | None = None  # None: leave torch's setting alone
    distill_alpha: float = 0.0  # weight of the KD loss (0 = off)
    distill_temperature: float = 4.0
    qat: bool = False  # quantisation-aware fine-tuning in the last qat_epochs
    qat_epochs: int = 2
    max_train_examples: int | None = None  # subsample the train split (search budgets)
    # with max_train_examples: raise a cheap candidate's cap until one epoch costs this many forward MACs
    # (examples x the network's MACs per example), never beyond the split; None: the cap is the same for all
    epoch_budget_macs: float | None = None
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    domain_adversarial: float = 0.0  # DANN weight on the reversed domain-head gradient (0 = off)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0):
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if not (0 <= self.label_smoothing < 1):
            raise ConfigError(f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (0 <= self.distill_alpha <= 1):
            raise ConfigError(f"train.distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if self.distill_temperature <= 0:
            raise ConfigError(f"train.distill_temperature must be > 0, got {self.distill_temperature}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"train.num_threads must be >= 1, got {self.num_threads}")
        if self.qat and not (1 <= self.qat_epochs <= self.epochs):
            raise ConfigError(f"train.qat_epochs must be in 1..epochs ({self.epochs}), got {self.qat_epochs}")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ConfigError(f"train.max_train_examples must be >= 1, got {self.max_train_examples}")
        if self.epoch_budget_macs is not None:
            if not (self.epoch_budget_macs > 0):
                raise ConfigError(f"train.epoch_budget_macs must be > 0, got {self.epoch_budget_macs}")
            if self.max_train_examples is None:
                raise ConfigError(
                    "train.epoch_budget_macs raises train.max_train_examples for cheap candidates; set "
                    "max_train_examples too, or leave epoch_budget_macs out (then every candidate sees the "
                    "whole split)"
                )
        if not (self.domain_adversarial >= 0):
            raise ConfigError(f"train.domain_adversarial must be >= 0, got {self.domain_adversarial}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"train.device must be cpu, cuda or auto, got {self.device!r}")
