"""Synthesised feature sets: features recovered from a teacher, with its soft labels and a manifest.

A synthesised set lives in a directory (``audio-nas data synthesize`` writes it, ``synth:DIR`` names it)::

    features.npy        float32 [N, T, F]: inputs in the teacher's front-end feature space
    labels.npy          int64 [N]: the class each example was synthesised for (class-balanced)
    split.npy           uint8 [N]: 0 train, 1 validation (no test split: there is no real data in it)
    teacher_logits.npy  float32 [N, classes]: the teacher's logits on the final features (the soft labels)
    manifest.json       how it was made (teacher hash, front-end, steps, loss weights, seed, time, stats)

and, for a set made with the source-filter prior, what renders it in other front-ends
(``training.portable_synth``): ``source_filter_params.npz``, ``mixture_recipe.npz`` and, once a front-end
other than the teacher's has asked for it, ``rendered/<front-end>.npy``.

``write_synth_set`` writes everything into ``DIR.partial`` and renames it to ``DIR`` at the end, so a
crash never leaves a directory that looks finished. ``load_synth_set`` checks shapes against the manifest.

``frontend_value_range`` gives the per-bin range of values a front-end can produce, probed with audio
(silence, full-scale noise, sines and square waves, clicks): the inversion keeps features inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio_nas.config import from_dict, to_dict
from audio_nas.errors import DataError
from audio_nas.features.cache import FeatureSet
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.frontends import make_frontend

SYNTH_PREFIX = "synth:"
FORMAT_VERSION = 1
FILES = ("features.npy", "labels.npy", "split.npy", "teacher_logits.npy", "manifest.json")


@dataclass(frozen=True, eq=False)
class SynthSet:
    features: FeatureSet  # train + validation splits, labels = the synthesis targets
    teacher_logits: np.ndarray  # float32 [N, classes], aligned with features.x
    manifest: dict[str, Any]
    path: Path

    @property
    def n_mixtures(self) -> int:
        """Teacher-labelled mixtures in the train split (docs/data-free.md); 0 for older sets. Source-filter
        sets also hold ``manifest["mixtures"]["validation"]`` mixtures in the validation split."""
        return int((self.manifest.get("mixtures") or {}).get("n", 0))

    @property
    def n_proxy(self) -> int:
        """Teacher-labelled proxy speech examples (``audio-nas data add-proxy``): the set's last rows, train
        split; 0 for sets without."""
        return int((self.manifest.get("proxy") or {}).get("n", 0))

    def train_logits(self) -> np.ndarray:
        """The soft labels of the train split, in the order the trainer reads the train split."""
        return self.teacher_logits[np.asarray(self.features.split) == 0]


def is_synth_name(name: str | None) -> bool:
    return bool(name) and str(name).startswith(SYNTH_PREFIX)


def synth_path(name: str) -> Path:
    return Path(name[len(SYNTH_PREFIX) :]) if is_synth_name(name) else Path(name)


def probe_audio(cfg: FrontEndConfig, seed: int = 0) -> np.ndarray:
    """Audio spanning what the front-end can see: silence, noise, sines, squares, clicks ([K, S])."""
    n = cfg.clip_samples
    t = np.arange(n) / cfg.sample_rate_hz
    rng = np.random.default_rng(seed)
    clips = [np.zeros(n), np.clip(rng.normal(0, 0.5, n), -1, 1), rng.uniform(-1, 1, n)]
    nyq = cfg.sample_rate_hz / 2
    for f in np.geomspace(max(cfg.fmin_hz, 30.0), 0.95 * min(cfg.fmax_hz_effective, nyq), 24):
        clips.append(np.sin(2 * np.pi * f * t))
        clips.append(np.sign(np.sin(2 * np.pi * f * t)))
    click = np.zeros(n)
    click[:: max(1, cfg.hop_samples // 2)] = 1.0
    clips.append(click)
    return np.stack(clips).astype(np.float32)


def frontend_value_range(cfg: FrontEndConfig, margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin (low, high) the front-end produces on ``probe_audio``, widened by ``margin`` of the span."""
    feats = make_frontend(cfg)(probe_audio(cfg))  # [K, T, F]
    lo, hi = feats.min(axis=(0, 1)), feats.max(axis=(0, 1))
    span = np.maximum(hi - lo, 1e-3)
    return (lo - margin * span).astype(np.float32), (hi + margin * span).astype(np.float32)


def content_hash(x: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (x, labels, logits):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def write_synth_set(
    out_dir: str | Path,
    *,
    x: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    teacher_logits: np.ndarray,
    class_names: tuple[str, ...],
    frontend: FrontEndConfig,
    manifest: dict[str, Any],
    overwrite: bool = False,
    extra_npz: dict[str, dict[str, np.ndarray]] | None = None,
) -> Path:
    """Write a synthesised set atomically (``out_dir.partial`` then rename); returns ``out_dir``.
    ``extra_npz`` maps further file names to the arrays saved in them (``np.savez``)."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another --out or remove it first")
    n = len(x)
    if not (len(labels) == len(split) == len(teacher_logits) == n):
        raise DataError(
            f"synthesised set: {n} examples but {len(labels)} labels / {len(teacher_logits)} logits"
        )
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        np.save(partial / "features.npy", np.asarray(x, np.float32))
        np.save(partial / "labels.npy", np.asarray(labels, np.int64))
        np.save(partial / "split.npy", np.asarray(split, np.uint8))
        np.save(partial / "teacher_logits.npy", np.asarray(teacher_logits, np.float32))
        for name, arrays in (extra_npz or {}).items():
            np.savez(partial / name, **arrays)
        meta = {
            "format_version": FORMAT_VERSION,
            "n_examples": int(n),
            "shape": list(np.shape(x)[1:]),
            "class_names": list(class_names),
            "frontend": to_dict(frontend),
            "content_hash": content_hash(np.asarray(x, np.float32), labels, teacher_logits),
            **manifest,
        }
        (partial / "manifest.json").write_text(json.dumps(meta, indent=2, default=float))
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def load_synth_set(path_or_name: str | Path) -> SynthSet:
    """Load ``DIR`` or ``synth:DIR``; clear errors for a missing, partial or inconsistent directory."""
    path = synth_path(str(path_or_name))
    if not path.is_dir():
        partial = path.with_name(path.name + ".partial")
        hint = f" ({partial} exists: a synthesis was interrupted; run it again)" if partial.exists() else ""
        raise DataError(
            f"synthesised set {path} does not exist{hint}; make one with `audio-nas data synthesize`"
        )
    missing = [f for f in FILES if not (path / f).exists()]
    if missing:
        raise DataError(f"{path} is not a synthesised set: {', '.join(missing)} missing")
    try:
        meta = json.loads((path / "manifest.json").read_text())
        x = np.load(path / "features.npy", mmap_mode="r")
        labels = np.load(path / "labels.npy")
        split = np.load(path / "split.npy")
        logits = np.load(path / "teacher_logits.npy")
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable synthesised set ({exc}); synthesise it again") from exc
    frontend = from_dict(FrontEndConfig, meta["frontend"])
    classes = tuple(meta["class_names"])
    n = len(labels)
    if x.shape != (n, *frontend.output_shape) or len(split) != n or logits.shape != (n, len(classes)):
        raise DataError(
            f"{path}: features {x.shape}, {len(split)} splits and logits {logits.shape} do not agree with "
            f"{n} labels, {len(classes)} classes and front-end shape {frontend.output_shape}; synthesise "
            "again"
        )
    key = "synth-" + str(meta.get("content_hash", ""))[:24]
    feats = FeatureSet(x=x, labels=labels, split=split, class_names=classes, frontend=frontend, key=key)
    return SynthSet(features=feats, teacher_logits=logits.astype(np.float32), manifest=meta, path=path)
