"""More teacher-labelled mixtures for an existing synthesised set, without inverting the teacher again.

Why: a student learns more from a larger mixture pool of the *same* inversions. On synth-kws (300
source-filter inversions of the 52 M-MAC teacher) two ~40 k-MAC students trained on 80,000 train mixtures
for 16 epochs reach 0.466 and 0.611 real test accuracy (medians of 3 seeds) against 0.419 and 0.528 on the
default 20,000 for 32 epochs, and more epochs on the 20,000 add nothing (docs/benchmarks.md, "Data-free:
more mixtures of the same inversions"). The inversion is the expensive part (minutes per hundred examples
on a CPU); a mixture costs one teacher forward pass, so growing the pool is the cheap way to a larger set.

The new mixtures are drawn as ``synthesize`` draws them (``portable_synth.draw_recipe`` for source-filter
sets, ``function_matching.teacher_mixtures`` for grid sets), from the train-split inversions only, and
appended to the train split after every existing row; the validation split is unchanged. The teacher is
the one the manifest names, checked against its recorded hash: mixtures labelled by another network would
not belong to the set. The result is written atomically to a new directory (nothing is written half-way,
and the source set stays as it was).

Hand-written: no library grows teacher-labelled mixture sets (see ``training.function_matching``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from audio_nas.errors import ConfigError, DataError
from audio_nas.features.synthset import SynthSet, load_synth_set, write_synth_set
from audio_nas.training.function_matching import teacher_mixtures
from audio_nas.training.inversion import resolve_device
from audio_nas.training.portable_synth import (
    PARAMS_FILE,
    RECIPE_FILE,
    MixtureRecipe,
    Renderer,
    draw_recipe,
    is_portable,
    label_mixtures,
)
from audio_nas.training.teacher import Teacher, load_teacher

log = logging.getLogger(__name__)

# keys write_synth_set derives from the arrays: never copied from the source manifest
DERIVED_KEYS = ("format_version", "n_examples", "shape", "class_names", "frontend", "content_hash")


def default_grown_dir(synth: SynthSet, n_add: int) -> Path:
    """``<set>-m<train mixtures after the addition>`` beside the source set."""
    return synth.path.with_name(f"{synth.path.name}-m{synth.n_mixtures + n_add}")


def _teacher_of(synth: SynthSet, teacher_path: str | Path | None) -> Teacher:
    recorded = synth.manifest.get("teacher") or {}
    path = teacher_path or recorded.get("path")
    if not path:
        raise DataError(f"{synth.path}: the manifest names no teacher; pass --teacher CKPT")
    if not teacher_path and not Path(path).exists():
        raise DataError(
            f"{synth.path} was made from the teacher {path}, which is not there any more; pass the original "
            "checkpoint with --teacher"
        )
    teacher = load_teacher(path)
    if recorded.get("sha256") and teacher.sha256 != recorded["sha256"]:
        raise DataError(
            f"the teacher at {path} (sha256 {teacher.sha256[:12]}) is not the one {synth.path} was made from "
            f"({recorded['sha256'][:12]}): its labels would not match the set's; pass the original "
            "checkpoint with --teacher"
        )
    return teacher


def add_mixtures(
    set_path: str | Path,
    n_add: int,
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    teacher_path: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``set_path`` plus ``n_add`` new teacher-labelled train mixtures to ``out_dir``; returns it.

    Deterministic on CPU from ``seed`` and the number of mixtures the set already holds (so a second
    addition with the same seed draws new mixtures, and none repeats the original synthesis's draw)."""
    if n_add < 1:
        raise ConfigError(f"the number of mixtures to add must be >= 1, got {n_add}")
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    synth = load_synth_set(set_path)
    out = Path(out_dir) if out_dir else default_grown_dir(synth, n_add)
    if out.resolve() == synth.path.resolve():
        raise DataError(f"--out {out} is the source set; write the larger set to another directory")
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another --out or pass --overwrite")
    meta_mix = dict(synth.manifest.get("mixtures") or {})
    n_train_mix, n_val_mix = int(meta_mix.get("n", 0)), int(meta_mix.get("validation", 0))
    x = np.asarray(synth.features.x, np.float32)
    split = np.asarray(synth.features.split, np.uint8)
    n_inv = len(x) - n_train_mix - n_val_mix
    pool = np.flatnonzero(split[:n_inv] == 0)
    if n_inv < 1 or len(pool) < 2:
        raise DataError(
            f"{synth.path}: {len(pool)} train inversions found ({len(x)} rows, {n_train_mix} + {n_val_mix} "
            "mixtures by its manifest); mixing needs at least 2"
        )
    teacher = _teacher_of(synth, teacher_path)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    extra: dict[str, dict[str, np.ndarray]] = {}
    mix_seed = [int(seed), n_train_mix + n_val_mix]
    if is_portable(synth):
        portable = synth.manifest["portable"]
        with np.load(synth.path / PARAMS_FILE) as z:
            params = {k: z[k] for k in z.files}
        old = MixtureRecipe.load(synth.path / RECIPE_FILE) if portable.get("mixture_recipe") else None
        recipe = draw_recipe(n_add, pool, teacher.frontend, np.random.default_rng(mix_seed))
        renderer = Renderer(params, tuple(portable["span_s"]), teacher.frontend)
        mx, ml = label_mixtures(teacher.model, renderer, recipe, device=dev, progress=progress)
        extra[PARAMS_FILE] = params
        extra[RECIPE_FILE] = (old.concat(recipe) if old is not None else recipe).arrays()
        manifest_portable: dict[str, Any] | None = {**portable, "mixture_recipe": RECIPE_FILE}
    else:
        grid_seed = int(np.random.default_rng(mix_seed).integers(1 << 31))
        mx, ml = teacher_mixtures(
            teacher.model, x[pool], n_add, seed=grid_seed, device=dev, progress=progress
        )
        manifest_portable = synth.manifest.get("portable")
    wall_s = round(time.perf_counter() - t0, 1)
    counts = np.bincount(ml.argmax(1), minlength=ml.shape[1]).tolist()
    manifest = {k: v for k, v in synth.manifest.items() if k not in DERIVED_KEYS}
    added = [
        *meta_mix.get("added", []),
        {
            "n": n_add,
            "seed": int(seed),
            "wall_s": wall_s,
            "teacher_class_counts": counts,
            "from": str(synth.path),
        },
    ]
    manifest["mixtures"] = {**meta_mix, "n": n_train_mix + n_add, "added": added}
    new_split = np.concatenate([split, np.zeros(n_add, np.uint8)])
    manifest["split_counts"] = {
        "train": int((new_split == 0).sum()),
        "validation": int((new_split == 1).sum()),
    }
    if manifest_portable is not None:
        manifest["portable"] = manifest_portable
    path = write_synth_set(
        out,
        x=np.concatenate([x, mx]),
        labels=np.concatenate([np.asarray(synth.features.labels, np.int64), ml.argmax(1).astype(np.int64)]),
        split=new_split,
        teacher_logits=np.concatenate([synth.teacher_logits, ml]),
        class_names=tuple(synth.features.class_names),
        frontend=synth.features.frontend,
        manifest=manifest,
        overwrite=overwrite,
        extra_npz=extra or None,
    )
    log.info("added %d teacher-labelled mixtures in %.0f s -> %s", n_add, wall_s, path)
    return path
