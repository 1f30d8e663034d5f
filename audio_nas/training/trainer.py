"""Train one ArchSpec on one FeatureSet.

AdamW + linear warm-up + cosine decay, SpecAugment, label smoothing, optional
knowledge distillation from a teacher's logits, optional domain-adversarial training on per-clip
domain labels (``audio_nas.training.domain``), and optional quantisation-aware
fine-tuning in the last ``qat_epochs`` epochs (``audio_nas.export.qat``). Deterministic for a
given seed (torch's global generator is seeded from ``TrainConfig.seed``; batches are drawn from a separate
numpy Generator). After every epoch ``on_epoch(epoch, val_accuracy, train_loss)``
is called; returning ``False`` stops the run (the search's pruner hooks in here)
and the result is marked ``pruned``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from audio_nas.errors import TrainingError
from audio_nas.export.qat import is_qat, prepare_qat
from audio_nas.progress import Progress
from audio_nas.space import build_model, plan_layers
from audio_nas.training.augment import freq_mixstyle, spec_augment
from audio_nas.training.config import TrainConfig
from audio_nas.training.domain import IGNORE_DOMAIN, DomainHead, reversal_scale
from audio_nas.training.metrics import classification_metrics, predict_logits

log = logging.getLogger(__name__)

SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}

EpochCallback = Callable[[int, float, float], bool | None]


@dataclass
class TrainResult:
    model: torch.nn.Module  # best-validation weights loaded, eval mode, on CPU
    val_accuracy: float
    test_accuracy: float
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]
    curve: list[float]  # validation accuracy after each epoch
    loss_curve: list[float]
    epochs_run: int
    best_epoch: int
    train_time_s: float
    train_examples_seen: int
    pruned: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.train_examples_seen / self.train_time_s if self.train_time_s > 0 else float("nan")


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device is 'cuda' but no CUDA device is available; use device: cpu or auto")
    return torch.device(name)


def _split_arrays(features: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(features.split) == SPLIT_IDS[split]
    idx = np.flatnonzero(mask)
    return np.asarray(features.x[idx], dtype=np.float32), np.asarray(features.labels)[idx].astype(np.int64)


def _check_input(spec: Any, features: Any) -> None:
    expected = tuple(spec.frontend.output_shape)
    got = tuple(features.x.shape[1:])
    if expected != got:
        raise TrainingError(
            f"features have shape {got} per clip but the spec's front-end gives {expected}; "
            f"compute the features with the spec's front-end (compute_features(dataset, spec.frontend))"
        )
    if spec.n_classes != len(features.class_names):
        raise TrainingError(
            f"spec has n_classes={spec.n_classes} but the dataset has {len(features.class_names)} classes; "
            f"set n{len(features.class_names)} in the spec string"
        )


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def _distill_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return (
        F.kl_div(F.log_softmax(logits / t, dim=1), F.softmax(teacher / t, dim=1), reduction="batchmean")
        * t
        * t
    )


def _params(model: torch.nn.Module, head: torch.nn.Module | None) -> list[torch.nn.Parameter]:
    return list(model.parameters()) + (list(head.parameters()) if head is not None else [])


def train_examples_cap(spec: Any, cfg: TrainConfig) -> int | None:
    """How many train examples ``cfg`` lets ``spec`` see: ``max_train_examples``, raised for a cheap
    network until an epoch costs ``epoch_budget_macs`` forward MACs (None: the whole split).

    Why: a search caps a large (synthesised) set to bound the time of its expensive candidates, but a
    fixed cap also starves the cheap ones, which cost little per example: on the data-free set, two ~35 k
    MAC students learnt 22-30 % real test accuracy from 10,000 examples and 33-46 % from all 20,300
    (docs/benchmarks.md, "A compute budget for the cap")."""
    if cfg.max_train_examples is None:
        return None
    if cfg.epoch_budget_macs is None:
        return cfg.max_train_examples
    macs = max(1, sum(layer.macs for layer in plan_layers(spec)))
    return max(cfg.max_train_examples, int(cfg.epoch_budget_macs // macs))


def train(
    spec: Any,
    features: Any,
    cfg: TrainConfig | None = None,
    *,
    on_epoch: EpochCallback | None = None,
    teacher_logits: np.ndarray | None = None,
    domain_labels: np.ndarray | None = None,
    model: torch.nn.Module | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``spec`` (or the given ``model`` built from it) on ``features``; see the module doc.

    ``domain_labels`` (one int per train example, ``-1`` = none) with ``cfg.domain_adversarial > 0``
    adds a domain head behind a gradient reversal (DANN); the returned model does not contain it.
    ``progress=True`` shows the epochs (a bar on a terminal, log lines otherwise; ``audio_nas.progress``);
    off by default because search workers train many models side by side.
    """

    cfg = cfg or TrainConfig()
    _check_input(spec, features)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    device = _resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    x_tr, y_tr = _split_arrays(features, "train")
    x_va, y_va = _split_arrays(features, "validation")
    x_te, y_te = _split_arrays(features, "test")
    if len(x_tr) == 0:
        raise TrainingError(
            "the dataset has no training examples (split 'train' is empty); check the dataset splits"
        )
    if len(x_va) == 0:
        raise TrainingError(
            "the dataset has no validation examples; best-checkpoint selection needs a validation split"
        )
    if teacher_logits is not None:
        teacher_logits = np.asarray(teacher_logits, np.float32)
        if teacher_logits.shape != (len(x_tr), spec.n_classes):
            raise TrainingError(
                f"teacher_logits must have shape (train examples, classes) = {(len(x_tr), spec.n_classes)}, "
                f"got {teacher_logits.shape}"
            )
    if cfg.domain_adversarial > 0:
        if domain_labels is None:
            raise TrainingError(
                "train.domain_adversarial > 0 needs domain labels (one per train example), none were given; "
                "set train.domain_adversarial: 0 or pass domain_labels"
            )
        domain_labels = np.asarray(domain_labels, np.int64)
        if domain_labels.shape != (len(x_tr),):
            raise TrainingError(
                f"domain_labels must have one entry per train example ({len(x_tr)}), "
                f"got {domain_labels.shape}"
            )
        if len(set(domain_labels[domain_labels != IGNORE_DOMAIN].tolist())) < 2:
            raise TrainingError("domain-adversarial training needs train examples from two or more domains")
    cap = train_examples_cap(spec, cfg)
    if cap is not None and cap < len(x_tr):
        keep = np.sort(rng.choice(len(x_tr), cap, replace=False))
        x_tr, y_tr = x_tr[keep], y_tr[keep]
        if teacher_logits is not None:
            teacher_logits = teacher_logits[keep]
        if domain_labels is not None:
            domain_labels = domain_labels[keep]

    model = (model or build_model(spec)).to(device)
    head = None
    if cfg.domain_adversarial > 0:
        with torch.no_grad():
            dim = model.eval().embed(torch.from_numpy(x_tr[:1]).to(device)).shape[1]
        head = DomainHead(dim, int(domain_labels.max()) + 1).to(device)
        dt = torch.from_numpy(domain_labels)
    opt = torch.optim.AdamW(_params(model, head), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(x_tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps_per_epoch))
    xt = torch.from_numpy(x_tr)
    yt = torch.from_numpy(y_tr)
    tt = torch.from_numpy(teacher_logits) if teacher_logits is not None else None

    curve: list[float] = []
    losses: list[float] = []
    best_acc, best_epoch, best_state = -1.0, -1, None
    pruned = False
    seen = 0
    t0 = time.perf_counter()
    qat_start = cfg.epochs - cfg.qat_epochs if cfg.qat else None
    bar = Progress(
        f"training ({len(x_tr)} clips/epoch)", cfg.epochs, unit="epoch", logger=log, enabled=progress
    )
    with bar:
        for epoch in range(cfg.epochs):
            if epoch == qat_start:
                model = prepare_qat(model).to(device)
                opt = torch.optim.AdamW(_params(model, head), lr=cfg.lr * 0.1, weight_decay=cfg.weight_decay)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _s: 1.0)
                best_acc = -1.0  # the best checkpoint is chosen among quantisation-aware epochs only
            model.train()
            order = rng.permutation(len(x_tr))
            total_loss = 0.0
            for start in range(0, len(order), cfg.batch_size):
                idx = torch.from_numpy(order[start : start + cfg.batch_size])
                xb = spec_augment(freq_mixstyle(xt[idx], cfg.freq_mixstyle), cfg.specaugment).to(device)
                yb = yt[idx].to(device)
                if head is None:
                    logits = model(xb)
                else:
                    emb = model.embed(model.qat_input(xb) if is_qat(model) else xb)
                    logits = model.classifier(emb)
                loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
                if tt is not None and cfg.distill_alpha > 0:
                    kd = _distill_loss(logits, tt[idx].to(device), cfg.distill_temperature)
                    loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * kd
                reported = loss.detach()  # the epoch loss leaves the domain head's loss out
                if head is not None:
                    db = dt[idx].to(device)
                    if bool((db != IGNORE_DOMAIN).any()):
                        scale = reversal_scale(cfg.domain_adversarial, seen / (cfg.epochs * len(order)))
                        loss = loss + F.cross_entropy(head(emb, scale), db, ignore_index=IGNORE_DOMAIN)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"loss became {loss.item()} at epoch {epoch + 1}; the candidate diverged "
                        f"(lower train.lr, now {cfg.lr}, or check the features for NaN)"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                sched.step()
                total_loss += reported.item() * len(idx)
                seen += len(idx)
            epoch_loss = total_loss / len(order)
            val_acc = classification_metrics(
                predict_logits(model, x_va, device=str(device)), y_va, tuple(features.class_names)
            ).accuracy
            curve.append(val_acc)
            losses.append(epoch_loss)
            log.debug("epoch %d: loss %.4f val_acc %.4f", epoch + 1, epoch_loss, val_acc)
            bar.update(1, loss=f"{epoch_loss:.3f}", val_acc=f"{val_acc:.3f}")
            if val_acc > best_acc:
                best_acc, best_epoch = val_acc, epoch
                best_state = copy.deepcopy(model.state_dict())
            if on_epoch is not None and on_epoch(epoch, val_acc, epoch_loss) is False:
                pruned = epoch + 1 < cfg.epochs
                break
    train_time_s = time.perf_counter() - t0

    assert best_state is not None  # at least one epoch ran
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    test = classification_metrics(predict_logits(model, x_te), y_te, tuple(features.class_names))
    return TrainResult(
        model=model,
        val_accuracy=best_acc,
        test_accuracy=test.accuracy,
        per_class_accuracy=test.per_class_accuracy,
        confusion=test.confusion,
        curve=curve,
        loss_curve=losses,
        epochs_run=len(curve),
        best_epoch=best_epoch,
        train_time_s=train_time_s,
        train_examples_seen=seen,
        pruned=pruned,
    )
