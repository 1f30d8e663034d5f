"""Feature cache: features of a dataset under a front-end, memory-mapped from disk.

Key = sha256(dataset content hash + front-end config + front-end code version). The
array is written to a temporary file and renamed, so a crash or a concurrent
process never leaves a half-written entry under the final name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_nas.config import config_hash, to_dict
from audio_nas.errors import DataError
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.frontends import make_frontend
from audio_nas.paths import cache_dir as default_cache_dir
from audio_nas.progress import track

log = logging.getLogger(__name__)
FRONTEND_CODE_VERSION = 1
BATCH = 256
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)
class FeatureSet:
    x: np.ndarray  # float32 [N, T, F] (np.memmap when cached)
    labels: np.ndarray
    split: np.ndarray  # uint8: 0 train, 1 validation, 2 test
    class_names: tuple[str, ...]
    frontend: FrontEndConfig
    key: str

    def subset(self, split_name: str) -> FeatureSet:
        if split_name not in SPLITS:
            raise DataError(f"unknown split {split_name!r}; splits: {SPLITS}")
        idx = np.flatnonzero(self.split == SPLITS.index(split_name))
        return FeatureSet(
            np.asarray(self.x[idx]),
            self.labels[idx],
            self.split[idx],
            self.class_names,
            self.frontend,
            f"{self.key}:{split_name}",
        )


def cache_key(dataset_hash: str, cfg: FrontEndConfig) -> str:
    blob = f"{dataset_hash}|{config_hash(cfg, 64)}|v{FRONTEND_CODE_VERSION}".encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _check_rate(dataset, cfg: FrontEndConfig) -> None:
    if dataset.sample_rate_hz != cfg.sample_rate_hz:
        raise DataError(
            f"dataset {dataset.name} is at {dataset.sample_rate_hz} Hz but the front-end expects "
            f"{cfg.sample_rate_hz} Hz; load the dataset with sample_rate_hz={cfg.sample_rate_hz}"
        )
    if dataset.waveforms.shape[1] != cfg.clip_samples:
        raise DataError(
            f"dataset clips have {dataset.waveforms.shape[1]} samples but the front-end expects "
            f"{cfg.clip_samples} ({cfg.clip_ms} ms); set the front-end clip_ms to {dataset.clip_ms}"
        )


def extract(
    waveforms: np.ndarray, cfg: FrontEndConfig, out: np.ndarray | None = None, progress: bool = False
) -> np.ndarray:
    fe = make_frontend(cfg)
    n = len(waveforms)
    out = np.empty((n, *cfg.output_shape), np.float32) if out is None else out
    starts = range(0, n, BATCH)
    desc = f"features {cfg.kind} {cfg.output_shape} of {n} clips"
    for s in track(starts, desc, unit="batch", logger=log, enabled=progress):
        out[s : s + BATCH] = fe(waveforms[s : s + BATCH])
    return out


def compute_features(
    dataset, cfg: FrontEndConfig, cache_dir: str | Path | None = None, *, use_cache: bool = True
) -> FeatureSet:
    """Features of ``dataset`` under ``cfg``; cached as a memmap keyed by dataset hash + config."""
    _check_rate(dataset, cfg)
    key = cache_key(dataset.content_hash, cfg)
    meta = dict(
        labels=dataset.labels,
        split=dataset.split,
        class_names=tuple(dataset.class_names),
        frontend=cfg,
        key=key,
    )
    if not use_cache:
        return FeatureSet(x=extract(dataset.waveforms, cfg), **meta)
    root = Path(cache_dir) if cache_dir else default_cache_dir() / "features"
    root.mkdir(parents=True, exist_ok=True)
    data_path, meta_path = root / f"{key}.f32", root / f"{key}.json"
    shape = (len(dataset.labels), *cfg.output_shape)
    if data_path.exists() and meta_path.exists():
        info = json.loads(meta_path.read_text())
        if tuple(info["shape"]) == shape:
            return FeatureSet(x=np.memmap(data_path, np.float32, "r", shape=shape), **meta)
        log.warning("feature cache %s has shape %s, expected %s: recomputing", key, info["shape"], shape)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{key}.", suffix=".tmp")
    os.close(fd)
    try:
        arr = np.memmap(tmp, np.float32, "w+", shape=shape)
        extract(dataset.waveforms, cfg, out=arr, progress=True)
        arr.flush()
        del arr
        os.replace(tmp, data_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    # A temporary name of its own: searches in parallel processes may write the same key at once; a
    # shared "<key>.json.tmp" let one process rename the other's file away (FileNotFoundError).
    fd, meta_tmp = tempfile.mkstemp(dir=root, prefix=f".{key}.", suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "shape": list(shape),
                "dataset": dataset.name,
                "dataset_hash": dataset.content_hash,
                "frontend": to_dict(cfg),
            },
            f,
        )
    os.replace(meta_tmp, meta_path)
    return FeatureSet(x=np.memmap(data_path, np.float32, "r", shape=shape), **meta)
