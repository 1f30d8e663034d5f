"""Feature cache: features of a dataset under a front-end, memory-mapped from disk.

Key = sha256(dataset content hash + front-end config + front-end code version). The
array is written to a temporary file and renamed, so a crash or a concurrent
process never leaves a half-written entry under the final name.

A front-end that carries state across frames (PCEN's smoothing filter) computes every clip after a
*lead-in*: ``LEAD_IN_S`` of audio from other clips of the same split at one random gain, whose frames are
then dropped. On a stream (``stream-eval``, the demo, a board) the filter holds the level of the seconds
before a keyword; started from its unit steady state in every 1-s clip instead, the classifier learns
features it never meets there. Measured (docs/benchmarks.md, "where the misses come from"): a PCEN
DS-CNN trained on plain clips loses 0.916 -> 0.858-0.875 clip accuracy when a 2-s lead-in is put before
its test clips, and more keyword events in the stream than the same net trained after a lead-in. Stateless
front-ends (log-mel, MFCC) are computed on the clip alone: a lead-in would not change a frame.
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
from audio_nas.features.frontends import carries_state, make_frontend
from audio_nas.paths import cache_dir as default_cache_dir
from audio_nas.progress import track

log = logging.getLogger(__name__)
FRONTEND_CODE_VERSION = 1
BATCH = 256
SPLITS = ("train", "validation", "test")
LEAD_IN_S = 2.0  # the PCEN smoother's time constant is 0.4 s: 2 s is five of them
LEAD_IN_GAIN = (0.05, 1.0)  # one gain per lead-in, uniform: from near silence to full level
LEAD_IN_SEED = 17  # per clip: default_rng((LEAD_IN_SEED, clip index)), whatever the batching
# Lead-ins come from the first LEAD_IN_POOL clips of a split (dataset order). Derived sets (negatives:,
# more:, stream-windows:) append train clips at the end, so a base clip keeps the same lead-in, and the
# same features, in all of them: the exporter's calibration clips of a checkpoint trained on
# negatives:more:synth-kws are then the ones stream-eval rebuilds from synth-kws.
LEAD_IN_POOL = 1024
LEAD_IN_VERSION = 2  # in the cache key of stateful front-ends only; 2: the pool is a split's first clips


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
    lead = f"|lead{LEAD_IN_VERSION}" if carries_state(cfg) else ""
    blob = f"{dataset_hash}|{config_hash(cfg, 64)}|v{FRONTEND_CODE_VERSION}{lead}".encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def lead_in_samples(cfg: FrontEndConfig) -> int:
    """Samples of lead-in: a whole number of hops near ``LEAD_IN_S``, so the clip's first frame starts at
    a frame boundary of the lead-in + clip audio and its frames are exactly the last ``n_frames``."""
    return max(1, round(LEAD_IN_S * cfg.sample_rate_hz / cfg.hop_samples)) * cfg.hop_samples


def lead_in_pools(split: np.ndarray) -> dict[int, np.ndarray]:
    """{split id: the indices lead-ins are drawn from}: the first ``LEAD_IN_POOL`` clips of each split."""
    return {int(s): np.flatnonzero(split == s)[:LEAD_IN_POOL] for s in np.unique(split)}


def lead_in_audio(
    waveforms: np.ndarray, pools: dict[int, np.ndarray], split: np.ndarray, index: np.ndarray, n: int
) -> np.ndarray:
    """[len(index), n] audio to put before each clip in ``index``: the end of as many random clips of the
    clip's own split (``pools[split]``, from ``lead_in_pools``: never another split's audio) as ``n``
    samples need, at one gain drawn from ``LEAD_IN_GAIN``; deterministic per clip index."""
    clip = waveforms.shape[1]
    k = -(-n // clip)
    out = np.empty((len(index), n), np.float32)
    for j, i in enumerate(index):
        rng = np.random.default_rng((LEAD_IN_SEED, int(i)))
        pool = pools[int(split[i])]
        picks = rng.choice(pool, size=k)
        gain = rng.uniform(*LEAD_IN_GAIN)
        out[j] = np.asarray(waveforms[picks], np.float32).reshape(-1)[-n:] * gain
    return out


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
    waveforms: np.ndarray,
    cfg: FrontEndConfig,
    out: np.ndarray | None = None,
    progress: bool = False,
    split: np.ndarray | None = None,
) -> np.ndarray:
    """Features of every clip; a stateful front-end's after a lead-in from the clip's ``split`` (all clips
    one pool when ``split`` is None)."""
    fe = make_frontend(cfg)
    n = len(waveforms)
    out = np.empty((n, *cfg.output_shape), np.float32) if out is None else out
    stateful = carries_state(cfg)
    if stateful:
        split = np.zeros(n, np.uint8) if split is None else np.asarray(split)
        pools = lead_in_pools(split)
        lead = lead_in_samples(cfg)
    starts = range(0, n, BATCH)
    desc = f"features {cfg.kind} {cfg.output_shape} of {n} clips" + (" (after a lead-in)" if stateful else "")
    for s in track(starts, desc, unit="batch", logger=log, enabled=progress):
        batch = np.asarray(waveforms[s : s + BATCH], np.float32)
        if stateful:
            before = lead_in_audio(waveforms, pools, split, np.arange(s, s + len(batch)), lead)
            out[s : s + BATCH] = fe(np.concatenate([before, batch], axis=1))[:, -cfg.n_frames :]
        else:
            out[s : s + BATCH] = fe(batch)
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
        return FeatureSet(x=extract(dataset.waveforms, cfg, split=dataset.split), **meta)
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
        extract(dataset.waveforms, cfg, out=arr, progress=True, split=dataset.split)
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
                "lead_in": (
                    {
                        "seconds": lead_in_samples(cfg) / cfg.sample_rate_hz,
                        "gain": list(LEAD_IN_GAIN),
                        "seed": LEAD_IN_SEED,
                        "pool": LEAD_IN_POOL,
                        "version": LEAD_IN_VERSION,
                    }
                    if carries_state(cfg)
                    else None
                ),
            },
            f,
        )
    os.replace(meta_tmp, meta_path)
    return FeatureSet(x=np.memmap(data_path, np.float32, "r", shape=shape), **meta)
