"""``audio-nas data synthesize``: a teacher checkpoint -> a synthesised feature set on disk (atomic).

The set (``features.synthset``) holds the inverted features, the target classes, a class-balanced
train/validation split, the teacher's logits as soft labels and a manifest saying how it was made.
Training on it (``synth_training_data``) distils to those soft labels.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from audio_nas.config import to_dict
from audio_nas.errors import DataError, TrainingError
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.synthset import SynthSet, load_synth_set, write_synth_set
from audio_nas.paths import data_dir
from audio_nas.space.spec import frontend_to_str
from audio_nas.training.config import FreqMixStyleConfig, SpecAugmentConfig, TrainConfig
from audio_nas.training.function_matching import teacher_mixtures
from audio_nas.training.inversion import InversionConfig, confidence_stats, invert_teacher
from audio_nas.training.portable_synth import (
    PARAMS_FILE,
    RECIPE_FILE,
    Renderer,
    check_renderable,
    draw_recipe,
    label_mixtures,
    portable_manifest,
)
from audio_nas.training.source_filter import timeline_span_s
from audio_nas.training.teacher import load_teacher

log = logging.getLogger(__name__)


def default_out_dir(teacher_sha256: str, cfg: InversionConfig) -> Path:
    prior = "" if cfg.prior == "source-filter" else f"-{cfg.prior}"
    return data_dir() / f"synth-{teacher_sha256[:10]}-n{cfg.per_class}-s{cfg.seed}{prior}"


def feature_stats(x: np.ndarray) -> dict[str, Any]:
    """Summary of a feature array [N, T, F]: overall and per-bin mean/std, per-example energy spread."""
    x = np.asarray(x, np.float64)
    per_example = x.mean(axis=(1, 2))
    return {
        "mean": float(x.mean()),
        "std": float(x.std()),
        "per_bin_mean": [round(float(v), 4) for v in x.mean(axis=(0, 1))],
        "per_bin_std": [round(float(v), 4) for v in x.std(axis=(0, 1))],
        "example_mean_q10_q50_q90": [float(np.quantile(per_example, q)) for q in (0.1, 0.5, 0.9)],
        "tv_time": float(np.mean((x[:, 1:] - x[:, :-1]) ** 2)),
        "tv_freq": float(np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2)),
    }


def synthesize(
    teacher_path: str | Path,
    cfg: InversionConfig,
    out_dir: str | Path | None = None,
    *,
    expected_frontend: FrontEndConfig | str | None = None,
    student_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Invert the teacher at ``teacher_path`` and write the set; returns its directory. With
    ``student_path`` (a checkpoint trained on an earlier set of this teacher) and ``cfg.w_compete`` > 0 the
    examples are steered to where that student disagrees with the teacher (``inversion`` module doc)."""
    teacher = load_teacher(teacher_path, expected_frontend=expected_frontend)
    student = load_teacher(student_path) if student_path is not None else None
    out = Path(out_dir) if out_dir else default_out_dir(teacher.sha256, cfg)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another --out or remove it first")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res = invert_teacher(teacher, cfg, student=student, progress=progress)
    if not np.isfinite(res.x).all():
        raise TrainingError("the inversion produced non-finite features; lower --lr and try again")
    stats = confidence_stats(res.teacher_logits, res.labels)
    x, labels, split, logits = res.x, res.labels, res.split, res.teacher_logits
    mixtures: dict[str, Any] = {"n": 0}
    extra: dict[str, dict[str, np.ndarray]] = {}
    portable = None
    if res.params is not None:  # source-filter: store what renders the set in any mel front-end
        span = timeline_span_s(teacher.frontend)
        extra[PARAMS_FILE] = res.params
        portable = portable_manifest(span, has_recipe=cfg.mixtures > 0)
    if cfg.mixtures > 0 and res.params is not None:
        t_mix = time.perf_counter()
        rng = np.random.default_rng(cfg.seed + 1)
        recipe = draw_recipe(cfg.mixtures, np.flatnonzero(res.split == 0), teacher.frontend, rng)
        # validation mixtures, of validation inversions only: the split a search ranks candidates by is
        # then thousands of teacher-labelled inputs instead of a few dozen inversions (docs/data-free.md)
        val_pool = np.flatnonzero(res.split == 1)
        n_val = int(round(cfg.mixtures * cfg.val_fraction)) if len(val_pool) >= 2 else 0
        if n_val:
            recipe = recipe.concat(draw_recipe(n_val, val_pool, teacher.frontend, rng))
        renderer = Renderer(res.params, span, teacher.frontend)
        mx, ml = label_mixtures(teacher.model, renderer, recipe, device=res.device, progress=progress)
        extra[RECIPE_FILE] = recipe.arrays()
        mixtures = {
            "n": int(cfg.mixtures),
            "validation": n_val,
            "made_from": "train-split inversions (validation mixtures: validation-split inversions): "
            "power-domain mix of two source-filter examples (weight uniform 0-1), a shared delay, "
            "foreground masks in time (s) and frequency (Hz); training.portable_synth",
            "labels": "teacher argmax; soft labels = teacher logits on the mixture rendered in its front-end",
            "teacher_class_counts": np.bincount(ml.argmax(1), minlength=ml.shape[1]).tolist(),
            "wall_s": round(time.perf_counter() - t_mix, 1),
        }
        x = np.concatenate([x, mx])
        labels = np.concatenate([labels, ml.argmax(1).astype(np.int64)])
        mix_split = np.r_[np.zeros(cfg.mixtures, np.uint8), np.ones(n_val, np.uint8)]
        split = np.concatenate([split, mix_split])
        logits = np.concatenate([logits, ml])
    elif cfg.mixtures > 0:
        t_mix = time.perf_counter()
        mx, ml = teacher_mixtures(
            teacher.model,
            res.x[res.split == 0],
            cfg.mixtures,
            seed=cfg.seed + 1,
            device=res.device,
            progress=progress,
        )
        mixtures = {
            "n": int(cfg.mixtures),
            "made_from": "train-split inversions: mixup (weight uniform 0-1), time roll, SpecAugment masks",
            "labels": "teacher argmax; soft labels = teacher logits on the mixture itself",
            "teacher_class_counts": np.bincount(ml.argmax(1), minlength=ml.shape[1]).tolist(),
            "wall_s": round(time.perf_counter() - t_mix, 1),
        }
        x = np.concatenate([x, mx])
        labels = np.concatenate([labels, ml.argmax(1).astype(np.int64)])
        split = np.concatenate([split, np.zeros(len(mx), np.uint8)])
        logits = np.concatenate([logits, ml])
    manifest = {
        "kind": "synthesised-from-teacher",
        "teacher": {
            "path": str(Path(teacher_path).resolve()),
            "sha256": teacher.sha256,
            "spec": teacher.spec.to_str(),
            "n_bn_layers": len(teacher.bn_layers),
        },
        "frontend_token": frontend_to_str(teacher.frontend),
        "student": None
        if student is None
        else {
            "path": str(Path(student.path).resolve()),
            "sha256": student.sha256,
            "spec": student.spec.to_str(),
        },
        "inversion": to_dict(cfg),
        "loss_weights": cfg.weights(),
        "terms_applied": list(res.terms),
        "terms_not_applied": [t for t in ("bn", "feature", "diversity") if t not in res.terms],
        "seed": cfg.seed,
        "steps": cfg.steps,
        "rounds": cfg.rounds,
        "started_utc": started,
        "wall_s": round(res.wall_s, 1),
        "teacher_confidence": {**stats, "class_names": list(teacher.class_names)},
        "feature_stats": feature_stats(res.x),
        "mixtures": mixtures,
        "loss_first_last": _loss_summary(res.loss_history),
        "split_counts": {"train": int((split == 0).sum()), "validation": int((split == 1).sum())},
        "portable": portable,
    }
    path = write_synth_set(
        out,
        x=x,
        labels=labels,
        split=split,
        teacher_logits=logits,
        class_names=teacher.class_names,
        frontend=teacher.frontend,
        manifest=manifest,
        overwrite=overwrite,
        extra_npz=extra,
    )
    log.info(
        "synthesised %d examples (+%d teacher-labelled mixtures, %d of them for validation) in %.0f s -> %s",
        len(res.x),
        mixtures["n"] + mixtures.get("validation", 0),
        mixtures.get("validation", 0),
        res.wall_s,
        path,
    )
    return path


def _loss_summary(history: list[dict[str, float]]) -> dict[str, list[float]]:
    """Mean over batches of each term at the first and the last step of each round."""
    out: dict[str, list[float]] = {}
    keys = sorted({k[len("first_") :] for h in history for k in h if k.startswith("first_")})
    for key in keys:
        firsts = [h[f"first_{key}"] for h in history if f"first_{key}" in h]
        lasts = [h[f"last_{key}"] for h in history if f"last_{key}" in h]
        out[key] = [round(float(np.mean(firsts)), 5), round(float(np.mean(lasts)), 5)]
    return out


DATAFREE_DISTILL_ALPHA = 0.9  # distill_alpha used on a synthesised set when the recipe has none


def datafree_train_config(cfg: TrainConfig, synth: SynthSet | None = None) -> TrainConfig:
    """Training on a synthesised set always distils to the stored soft labels: a recipe without
    distillation (``distill_alpha`` 0) gets ``DATAFREE_DISTILL_ALPHA``. On a set with teacher-labelled
    mixtures (``training.function_matching``) or proxy speech (``training.proxy_speech``) SpecAugment and
    Freq-MixStyle are switched off: each mixture already is an augmented input, and changing it (or a proxy
    clip) would break the match between the input and its stored label."""
    if cfg.distill_alpha <= 0:
        cfg = dataclasses.replace(cfg, distill_alpha=DATAFREE_DISTILL_ALPHA)
    if synth is not None and (synth.n_mixtures > 0 or synth.n_proxy > 0):
        cfg = dataclasses.replace(
            cfg, specaugment=SpecAugmentConfig(time_masks=0, freq_masks=0), freq_mixstyle=FreqMixStyleConfig()
        )
    return cfg


def synth_training_data(name: str) -> tuple[SynthSet, np.ndarray]:
    """A synthesised set and the soft labels of its train split (for ``train(..., teacher_logits=...)``)."""
    s = load_synth_set(name)
    return s, s.train_logits()


def spec_for_synth(spec: Any, synth: SynthSet) -> Any:
    """The spec with the set's class count; its front-end must be the set's (the teacher's) unless the set
    renders in other front-ends (``training.portable_synth``)."""
    check_renderable(synth, spec.frontend)
    return dataclasses.replace(spec, n_classes=len(synth.features.class_names))
