"""Loaders for datasets users bring: Speech Commands v2, ESC-50, folder-per-class, CSV manifest.

Every loader resamples to the requested rate, mixes stereo down, crops or pads to
the clip length, and on a bad file either raises a DataError naming the file
(``on_error="raise"``, the default) or skips it and warns once with the count.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path

import numpy as np

from audio_nas.data.audio_io import ErrorCounter, read_audio
from audio_nas.data.dataset import (
    KWS12_CLASSES,
    SPLIT_IDS,
    SPLITS,
    AudioDataset,
    content_hash,
    fix_length,
    register_dataset,
)
from audio_nas.errors import DataError

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def _build(
    name: str,
    items: list[tuple[Path, int, int, str]],
    class_names: tuple[str, ...],
    sample_rate_hz: int,
    clip_ms: int,
    on_error: str,
) -> AudioDataset:
    errors = ErrorCounter(on_error, name)
    n = int(round(sample_rate_hz * clip_ms / 1000))
    waves, labels, splits, groups = [], [], [], []
    for path, label, split, group in items:
        try:
            x = read_audio(path, sample_rate_hz)
        except DataError as exc:
            errors.handle(exc)
            continue
        waves.append(fix_length(x, n))
        labels.append(label)
        splits.append(split)
        groups.append(group)
    errors.report()
    if not waves:
        skipped = (
            f" ({len(errors.skipped)} bad file(s) skipped; first: {errors.skipped[0]})"
            if errors.skipped
            else ""
        )
        raise DataError(f"{name}: no readable audio files found{skipped}; check the path and the layout")
    w = np.stack(waves).astype(np.float32)
    lab, spl = np.array(labels, np.int64), np.array(splits, np.uint8)
    return AudioDataset(
        name=name,
        waveforms=w,
        labels=lab,
        split=spl,
        class_names=class_names,
        sample_rate_hz=sample_rate_hz,
        content_hash=content_hash(w, lab, spl, class_names),
        groups=np.array(groups),
    )


def _hash_split(key: str) -> int:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return SPLIT_IDS["train"] if h < 80 else (SPLIT_IDS["validation"] if h < 90 else SPLIT_IDS["test"])


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DataError(f"{path} is not a directory; {what}")


# --------------------------------------------------------------------------------------
# Google Speech Commands v2 -> 12-class MLPerf Tiny task
# --------------------------------------------------------------------------------------


@register_dataset("speech-commands")
def load_speech_commands(
    root: Path,
    *,
    sample_rate_hz: int = 16_000,
    clip_ms: int | None = None,
    on_error: str = "raise",
    silence_per_split: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> AudioDataset:
    """Word folders + validation_list.txt + testing_list.txt + _background_noise_/.

    The 10 keywords keep their names, every other word folder becomes _unknown_, and
    _silence_ clips are 1 s crops of the background-noise files (as in the TF recipe),
    by default as many per split as the average keyword has.
    """
    root = Path(root)
    _require_dir(root, "point speech-commands: at the extracted speech_commands_v0.02 folder")
    for list_name in ("validation_list.txt", "testing_list.txt"):
        if not (root / list_name).exists():
            raise DataError(f"{root / list_name} is missing: the Speech Commands v2 layout needs it")
    val = set((root / "validation_list.txt").read_text().split())
    test = set((root / "testing_list.txt").read_text().split())
    clip_ms = clip_ms or 1000
    items = []
    for word_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        label = KWS12_CLASSES.index(word_dir.name) if word_dir.name in KWS12_CLASSES[:10] else 10
        for f in sorted(word_dir.iterdir()):
            if f.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            rel = f"{word_dir.name}/{f.name}"
            split = (
                SPLIT_IDS["test"]
                if rel in test
                else SPLIT_IDS["validation"]
                if rel in val
                else SPLIT_IDS["train"]
            )
            speaker = f.name.split("_nohash_")[0]
            items.append((f, label, split, speaker))
    if not items:
        raise DataError(f"{root}: no word folders with audio found; is this the Speech Commands v2 root?")
    ds = _build(f"speech-commands:{root}", items, KWS12_CLASSES, sample_rate_hz, clip_ms, on_error)
    return _add_silence(ds, root / "_background_noise_", silence_per_split, seed, on_error)


def _add_silence(ds: AudioDataset, bg_dir: Path, per_split, seed: int, on_error: str) -> AudioDataset:
    if not bg_dir.is_dir():
        log.warning("%s missing: no _silence_ clips added", bg_dir)
        return ds
    errors = ErrorCounter(on_error, ds.name)
    noises = []
    for f in sorted(bg_dir.iterdir()):
        if f.suffix.lower() in AUDIO_SUFFIXES:
            try:
                noises.append(read_audio(f, ds.sample_rate_hz))
            except DataError as exc:
                errors.handle(exc)
    errors.report()
    n = ds.waveforms.shape[1]
    noises = [x for x in noises if len(x) >= n]
    if not noises:
        return ds
    if per_split is None:
        per_split = tuple(max(1, int(np.sum(ds.split == s)) // 11) for s in range(3))
    rng = np.random.default_rng(seed)
    extra, splits = [], []
    for s, count in enumerate(per_split):
        for _ in range(count):
            src = noises[int(rng.integers(len(noises)))]
            start = int(rng.integers(0, len(src) - n + 1))
            extra.append(src[start : start + n] * rng.uniform(0.0, 1.0))
            splits.append(s)
    w = np.concatenate([ds.waveforms, np.stack(extra).astype(np.float32)])
    lab = np.concatenate([ds.labels, np.full(len(extra), 11, np.int64)])
    spl = np.concatenate([ds.split, np.array(splits, np.uint8)])
    groups = np.concatenate([ds.groups, np.array(["_background_noise_"] * len(extra))])
    return AudioDataset(
        name=ds.name,
        waveforms=w,
        labels=lab,
        split=spl,
        class_names=ds.class_names,
        sample_rate_hz=ds.sample_rate_hz,
        content_hash=content_hash(w, lab, spl, ds.class_names),
        groups=groups,
    )


# --------------------------------------------------------------------------------------
# ESC-50
# --------------------------------------------------------------------------------------


@register_dataset("esc50")
def load_esc50(
    root: Path,
    *,
    sample_rate_hz: int = 16_000,
    clip_ms: int | None = None,
    on_error: str = "raise",
    validation_fold: int = 4,
    test_fold: int = 5,
) -> AudioDataset:
    """audio/*.wav + meta/esc50.csv (filename, fold, target, category, ...); 5-s clips by default."""
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.exists():
        raise DataError(f"{meta} is missing: the ESC-50 layout is audio/ + meta/esc50.csv")
    rows = _read_csv(meta, ("filename", "fold", "target", "category"))
    classes_by_target = {}
    for r in rows:
        classes_by_target[int(r["target"])] = r["category"]
    class_names = tuple(classes_by_target[t] for t in sorted(classes_by_target))
    items = []
    for i, r in enumerate(rows, start=2):
        try:
            fold = int(r["fold"])
        except ValueError:
            raise DataError(f"{meta}, line {i}: fold {r['fold']!r} is not an integer") from None
        split = (
            SPLIT_IDS["test"]
            if fold == test_fold
            else SPLIT_IDS["validation"]
            if fold == validation_fold
            else 0
        )
        items.append((root / "audio" / r["filename"], class_names.index(r["category"]), split, f"fold{fold}"))
    return _build(f"esc50:{root}", items, class_names, sample_rate_hz, clip_ms or 5000, on_error)


# --------------------------------------------------------------------------------------
# Folder-per-class and CSV manifest
# --------------------------------------------------------------------------------------


@register_dataset("folder")
def load_folder(
    root: Path,
    *,
    sample_rate_hz: int = 16_000,
    clip_ms: int | None = None,
    on_error: str = "raise",
) -> AudioDataset:
    """root/<class>/*.wav (split by a hash of the file name, 80/10/10) or root/<split>/<class>/*.wav."""
    root = Path(root)
    _require_dir(root, "point folder: at a directory with one sub-directory per class")
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    layout = [(d, SPLIT_IDS[d.name]) for d in split_dirs] if split_dirs else [(root, None)]
    classes = sorted({c.name for base, _ in layout for c in base.iterdir() if c.is_dir()})
    if not classes:
        raise DataError(f"{root}: no class sub-directories found")
    items = []
    for base, split in layout:
        for c in sorted(p for p in base.iterdir() if p.is_dir()):
            for f in sorted(c.rglob("*")):
                if f.suffix.lower() in AUDIO_SUFFIXES:
                    s = split if split is not None else _hash_split(f"{c.name}/{f.name}")
                    items.append((f, classes.index(c.name), s, c.name))
    return _build(f"folder:{root}", items, tuple(classes), sample_rate_hz, clip_ms or 1000, on_error)


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in required if c not in cols]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {cols}")
        return list(reader)


@register_dataset("csv")
def load_csv(
    manifest: Path,
    *,
    sample_rate_hz: int = 16_000,
    clip_ms: int | None = None,
    on_error: str = "raise",
    class_names: tuple[str, ...] | None = None,
) -> AudioDataset:
    """CSV with path,label[,split|fold]; paths relative to the CSV's folder.

    fold: 1..K, K-1 = val, K = test.
    """
    manifest = Path(manifest)
    if not manifest.exists():
        raise DataError(f"manifest {manifest} does not exist")
    rows = _read_csv(manifest, ("path", "label"))
    if not rows:
        raise DataError(f"{manifest}: the manifest has no rows")
    classes = tuple(class_names) if class_names else tuple(sorted({r["label"] for r in rows}))
    has_split, has_fold = "split" in rows[0], "fold" in rows[0]
    max_fold = max(int(r["fold"]) for r in rows) if has_fold and not has_split else 0
    items = []
    for i, r in enumerate(rows, start=2):
        if r["label"] not in classes:
            raise DataError(
                f"{manifest}, line {i}: unknown label {r['label']!r}; known labels: {list(classes)}"
            )
        if has_split:
            if r["split"] not in SPLIT_IDS:
                raise DataError(f"{manifest}, line {i}: split {r['split']!r} is not one of {SPLITS}")
            split = SPLIT_IDS[r["split"]]
        elif has_fold:
            fold = int(r["fold"])
            split = 2 if fold == max_fold else 1 if fold == max_fold - 1 else 0
        else:
            split = _hash_split(r["path"])
        items.append((manifest.parent / r["path"], classes.index(r["label"]), split, r["label"]))
    return _build(f"csv:{manifest}", items, classes, sample_rate_hz, clip_ms or 1000, on_error)
