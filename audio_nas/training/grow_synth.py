"""Grow a synthesised set: more teacher-labelled mixtures of its inversions (``add_mixtures``), or more
inversions by merging sets synthesised separately from the same teacher (``merge_synth_sets``).

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

Merging: the inversion is the expensive part and one ``synthesize`` runs in one process, so a larger
inversion pool is made as several sets with different seeds (processes or machines side by side) merged
into one. Inversions are independent draws, so a merged pool is the pool one larger run would have drawn
(not the same rows). The merged set holds every set's inversions first, then every set's mixtures as they
were; the stored recipes are re-indexed to the merged rows, so the set still renders in any front-end.
``inversions_only`` drops the mixtures, for fresh ones of the whole pool with ``add_mixtures``.

Hand-written: no library grows teacher-labelled mixture sets (see ``training.function_matching``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
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
    WarpRange,
    draw_recipe,
    is_portable,
    label_mixtures,
)
from audio_nas.training.teacher import Teacher, load_teacher

log = logging.getLogger(__name__)

# keys write_synth_set derives from the arrays: never copied from the source manifest
DERIVED_KEYS = ("format_version", "n_examples", "shape", "class_names", "frontend", "content_hash")
# inversion settings that may differ between sets merged into one pool
PER_SET_SETTINGS = ("seed", "per_class", "mixtures", "device")


def default_grown_dir(synth: SynthSet, n_add: int, n_validation: int = 0, warp: float = 0.0) -> Path:
    """``<set>-m<train mixtures after the addition>[-v<validation mixtures after it>][-w<warp>]`` beside
    the set."""
    name = f"{synth.path.name}-m{synth.n_mixtures + n_add}"
    if n_validation:
        name += f"-v{int((synth.manifest.get('mixtures') or {}).get('validation', 0)) + n_validation}"
    if warp:
        name += f"-w{warp:g}"
    return synth.path.with_name(name)


def check_out_dir(out: Path, source: SynthSet, overwrite: bool) -> None:
    """A grown copy goes to a new directory: never the source set, never an existing one unasked."""
    if out.resolve() == source.path.resolve():
        raise DataError(f"--out {out} is the source set; write the new set to another directory")
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another --out or pass --overwrite")


def teacher_of(synth: SynthSet, teacher_path: str | Path | None) -> Teacher:
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
    n_validation: int = 0,
    seed: int = 0,
    warp: float = 0.0,
    teacher_path: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``set_path`` plus ``n_add`` new teacher-labelled train mixtures (and ``n_validation``
    validation mixtures, of the validation inversions only) to ``out_dir``; returns it.

    Deterministic on CPU from ``seed`` and the number of mixtures the set already holds (so a second
    addition with the same seed draws new mixtures, and none repeats the original synthesis's draw); the
    train mixtures do not depend on ``n_validation``. ``warp`` > 0 (source-filter sets only) gives each
    mixture its own pitch, vocal tract, tempo and level (``portable_synth.WarpRange`` scaled by it: 1 is
    +-4 semitones, x1.15, x1.25, +-10 dB), so the teacher labels sounds the inversion never made."""
    if n_add < 0 or n_validation < 0 or n_add + n_validation < 1:
        raise ConfigError(
            f"add at least one mixture: got {n_add} train and {n_validation} validation mixtures"
        )
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    synth = load_synth_set(set_path)
    _refuse_proxy(synth, "add mixtures to")
    if warp < 0:
        raise ConfigError(f"the warp strength must be >= 0, got {warp}")
    if warp and not is_portable(synth):
        raise ConfigError(
            f"{synth.path} stores features only (made without the source-filter prior), so its mixtures "
            "cannot be warped; leave out --warp, or synthesise with the source-filter prior"
        )
    out = Path(out_dir) if out_dir else default_grown_dir(synth, n_add, n_validation, warp)
    check_out_dir(out, synth, overwrite)
    meta_mix = dict(synth.manifest.get("mixtures") or {})
    n_train_mix, n_val_mix = int(meta_mix.get("n", 0)), int(meta_mix.get("validation", 0))
    x = np.asarray(synth.features.x, np.float32)
    split = np.asarray(synth.features.split, np.uint8)
    n_inv = len(x) - n_train_mix - n_val_mix
    pool = np.flatnonzero(split[:n_inv] == 0)
    val_pool = np.flatnonzero(split[:n_inv] == 1)
    for name, rows, n in (("train", pool, n_add), ("validation", val_pool, n_validation)):
        if n and (n_inv < 1 or len(rows) < 2):
            raise DataError(
                f"{synth.path}: {len(rows)} {name} inversions found ({len(x)} rows, {n_train_mix} + "
                f"{n_val_mix} mixtures by its manifest); mixing needs at least 2"
            )
    teacher = teacher_of(synth, teacher_path)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    extra: dict[str, dict[str, np.ndarray]] = {}
    mix_seed = [int(seed), n_train_mix + n_val_mix]
    if is_portable(synth):
        portable = synth.manifest["portable"]
        with np.load(synth.path / PARAMS_FILE) as z:
            params = {k: z[k] for k in z.files}
        old = MixtureRecipe.load(synth.path / RECIPE_FILE) if portable.get("mixture_recipe") else None
        rng = np.random.default_rng(mix_seed)
        parts = [
            draw_recipe(n, rows, teacher.frontend, rng, warp=WarpRange().scaled(warp) if warp else None)
            for rows, n in ((pool, n_add), (val_pool, n_validation))
            if n
        ]
        recipe = parts[0] if len(parts) == 1 else parts[0].concat(parts[1])
        renderer = Renderer(params, tuple(portable["span_s"]), teacher.frontend)
        mx, ml = label_mixtures(teacher.model, renderer, recipe, device=dev, progress=progress)
        extra[PARAMS_FILE] = params
        extra[RECIPE_FILE] = (old.concat(recipe) if old is not None else recipe).arrays()
        manifest_portable: dict[str, Any] | None = {**portable, "mixture_recipe": RECIPE_FILE}
    else:
        grid_seed = int(np.random.default_rng(mix_seed).integers(1 << 31))
        drawn = [
            teacher_mixtures(teacher.model, x[rows], n, seed=grid_seed + i, device=dev, progress=progress)
            for i, (rows, n) in enumerate(((pool, n_add), (val_pool, n_validation)))
            if n
        ]
        mx, ml = (np.concatenate(parts) for parts in zip(*drawn, strict=True))
        manifest_portable = synth.manifest.get("portable")
    wall_s = round(time.perf_counter() - t0, 1)
    counts = np.bincount(ml.argmax(1), minlength=ml.shape[1]).tolist()
    manifest = {k: v for k, v in synth.manifest.items() if k not in DERIVED_KEYS}
    added = [
        *meta_mix.get("added", []),
        {
            "n": n_add,
            "validation": n_validation,
            "seed": int(seed),
            **({"warp": float(warp)} if warp else {}),
            "wall_s": wall_s,
            "teacher_class_counts": counts,
            "from": str(synth.path),
        },
    ]
    manifest["mixtures"] = {
        **meta_mix,
        "n": n_train_mix + n_add,
        "validation": n_val_mix + n_validation,
        "added": added,
    }
    new_split = np.concatenate([split, np.zeros(n_add, np.uint8), np.ones(n_validation, np.uint8)])
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
    log.info(
        "added %d + %d teacher-labelled mixtures (train + validation) in %.0f s -> %s",
        n_add,
        n_validation,
        wall_s,
        path,
    )
    return path


def _refuse_proxy(synth: SynthSet, what: str) -> None:
    """Proxy speech rows come last (``training.proxy_speech``): new rows would land after them."""
    if synth.n_proxy:
        raise DataError(
            f"{synth.path} holds proxy speech (audio-nas data add-proxy); {what} the set it was made from "
            f"({(synth.manifest.get('proxy') or {}).get('from')}) and add the proxy speech last"
        )


def layout(synth: SynthSet) -> tuple[int, int, int]:
    """(inversions, train mixtures, validation mixtures) of a set, by its manifest; proxy speech rows
    (the last ``synth.n_proxy``) are none of them."""
    meta_mix = synth.manifest.get("mixtures") or {}
    n_train, n_val = int(meta_mix.get("n", 0)), int(meta_mix.get("validation", 0))
    n_inv = len(synth.features.labels) - n_train - n_val - synth.n_proxy
    if n_inv < 1:
        raise DataError(
            f"{synth.path}: {len(synth.features.labels)} rows but {n_train} + {n_val} mixtures by its "
            "manifest; it is not a synthesised set this version can merge"
        )
    return n_inv, n_train, n_val


def _check_mergeable(sets: list[SynthSet]) -> None:
    first = sets[0]
    seen: dict[str, Path] = {}
    for s in sets:
        n_inv = layout(s)[0]
        h = hashlib.sha256(np.ascontiguousarray(s.features.x[:n_inv], np.float32).tobytes()).hexdigest()
        if h in seen:
            raise DataError(
                f"{s.path} and {seen[h]} hold the same inversions (the same teacher and seed); merge sets "
                "synthesised with different --seed"
            )
        seen[h] = s.path
        checks = (
            (
                "teacher",
                (s.manifest.get("teacher") or {}).get("sha256"),
                (first.manifest.get("teacher") or {}).get("sha256"),
            ),
            ("front-end", s.features.frontend, first.features.frontend),
            ("classes", tuple(s.features.class_names), tuple(first.features.class_names)),
            ("prior (source-filter parameters stored or not)", is_portable(s), is_portable(first)),
        )
        for what, mine, theirs in checks:
            if mine != theirs:
                raise DataError(
                    f"{s.path} and {first.path} differ in {what}: only sets synthesised from the same "
                    "teacher with the same prior can be merged"
                )
        if is_portable(s):
            p, q = s.manifest["portable"], first.manifest["portable"]
            if (p["span_s"], p.get("render_version")) != (q["span_s"], q.get("render_version")):
                raise DataError(
                    f"{s.path} and {first.path} were rendered differently (span {p['span_s']} vs "
                    f"{q['span_s']}, render version {p.get('render_version')} vs {q.get('render_version')}); "
                    "synthesise them with the same audio-nas version"
                )


def merge_synth_sets(
    set_paths: list[str | Path],
    out_dir: str | Path,
    *,
    inversions_only: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write one set holding the inversions of every set in ``set_paths`` (in that order), then their
    mixtures (dropped with ``inversions_only``); returns ``out_dir``. The sets must share the teacher, the
    front-end, the classes and the prior; each keeps its own train / validation split."""
    if len(set_paths) < 2:
        raise ConfigError(f"merging needs at least two synthesised sets, got {len(set_paths)}")
    sets = [load_synth_set(p) for p in set_paths]
    for s in sets:
        _refuse_proxy(s, "merge")
    out = Path(out_dir)
    for s in sets:
        if out.resolve() == s.path.resolve():
            raise DataError(f"--out {out} is one of the sets to merge; write the merged set elsewhere")
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another --out or pass --overwrite")
    _check_mergeable(sets)
    layouts = [layout(s) for s in sets]
    portable = is_portable(sets[0])
    inv_rows, mix_rows, recipes, params = [], [], [], []
    offset = 0
    for s, (n_inv, n_train, n_val) in zip(sets, layouts, strict=True):
        inv_rows.append((s, slice(0, n_inv)))
        if not inversions_only and n_train + n_val:
            mix_rows.append((s, slice(n_inv, n_inv + n_train + n_val)))
        if portable:
            with np.load(s.path / PARAMS_FILE) as z:
                params.append({k: z[k] for k in z.files})
            if not inversions_only and s.manifest["portable"].get("mixture_recipe"):
                r = MixtureRecipe.load(s.path / RECIPE_FILE)
                recipes.append(replace(r, a=r.a + offset, b=r.b + offset))
        offset += n_inv
    rows = inv_rows + mix_rows

    def cat(get) -> np.ndarray:
        return np.concatenate([np.asarray(get(s))[sl] for s, sl in rows])

    x = cat(lambda s: s.features.x).astype(np.float32)
    split = cat(lambda s: s.features.split).astype(np.uint8)
    extra: dict[str, dict[str, np.ndarray]] = {}
    manifest = {k: v for k, v in sets[0].manifest.items() if k not in DERIVED_KEYS}
    if portable:
        extra[PARAMS_FILE] = {k: np.concatenate([p[k] for p in params]) for k in params[0]}
        if recipes:
            merged = recipes[0]
            for r in recipes[1:]:
                merged = merged.concat(r)
            extra[RECIPE_FILE] = merged.arrays()
        manifest["portable"] = {
            **sets[0].manifest["portable"],
            "mixture_recipe": RECIPE_FILE if recipes else None,
        }
    n_train_mix = 0 if inversions_only else sum(t for _, t, _ in layouts)
    n_val_mix = 0 if inversions_only else sum(v for _, _, v in layouts)
    manifest["mixtures"] = {"n": n_train_mix, "validation": n_val_mix}
    if n_train_mix + n_val_mix:
        manifest["mixtures"]["made_from"] = (sets[0].manifest.get("mixtures") or {}).get("made_from")
    # the settings every set shares (seeds, sizes and mixture counts differ by design; each is in merged_from)
    configs = [
        {k: v for k, v in (s.manifest.get("inversion") or {}).items() if k not in PER_SET_SETTINGS}
        for s in sets
    ]
    manifest["inversion"] = configs[0] if all(c == configs[0] for c in configs) else None
    manifest["seed"] = [s.manifest.get("seed") for s in sets]
    manifest["wall_s"] = round(sum(float(s.manifest.get("wall_s", 0.0)) for s in sets), 1)
    for key in ("teacher_confidence", "feature_stats", "loss_first_last", "started_utc", "student"):
        manifest.pop(key, None)  # per-set figures and settings: kept per source under merged_from
    manifest["merged_from"] = [
        {
            "path": str(s.path),
            "content_hash": s.manifest.get("content_hash"),
            "seed": s.manifest.get("seed"),
            "inversions": n_inv,
            "train_inversions": int((np.asarray(s.features.split[:n_inv]) == 0).sum()),
            "mixtures": {**(s.manifest.get("mixtures") or {}), "kept": not inversions_only},
            "inversion": s.manifest.get("inversion"),
            "student": s.manifest.get("student"),  # a steered set's student (synthesize --student)
            "wall_s": s.manifest.get("wall_s"),
            "teacher_confidence": s.manifest.get("teacher_confidence"),
        }
        for s, (n_inv, n_train, n_val) in zip(sets, layouts, strict=True)
    ]
    manifest["split_counts"] = {"train": int((split == 0).sum()), "validation": int((split == 1).sum())}
    path = write_synth_set(
        out,
        x=x,
        labels=cat(lambda s: s.features.labels).astype(np.int64),
        split=split,
        teacher_logits=cat(lambda s: s.teacher_logits).astype(np.float32),
        class_names=tuple(sets[0].features.class_names),
        frontend=sets[0].features.frontend,
        manifest=manifest,
        overwrite=overwrite,
        extra_npz=extra or None,
    )
    log.info("merged %d synthesised sets (%d inversions, %d rows) -> %s", len(sets), offset, len(x), path)
    return path
