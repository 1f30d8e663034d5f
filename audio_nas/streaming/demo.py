"""Which model the demo streams through: newest searched Pareto model, else newest trained checkpoint
(exported on the fly), else a small default model trained and exported first."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from audio_nas.data import load_dataset
from audio_nas.export import export_model
from audio_nas.features import compute_features
from audio_nas.paths import runs_dir
from audio_nas.training import load_checkpoint
from audio_nas.training.config import TrainConfig
from audio_nas.training.pipeline import train_and_save

log = logging.getLogger(__name__)
DEFAULT_ARCH = "ds_cnn_s"


def _newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def pick_model(
    dataset_name: str = "synth-kws", epochs: int = 10, *, on_error: str = "raise"
) -> tuple[Path, str]:
    """Returns (exported model dir, why it was chosen). ``on_error`` is for the dataset loads (raise|skip)."""

    root = runs_dir()
    exported = [p.parent for p in root.glob("*/pareto/trial-*/summary.json")]
    if exported:
        # the most accurate exported model of the newest search
        newest_run = _newest([p.parent.parent for p in exported])
        cands = [p for p in exported if p.parent.parent == newest_run]
        import json

        best = max(
            cands,
            key=lambda p: (
                json.loads((p / "checkpoint" / "checkpoint.json").read_text())["metrics"].get(
                    "val_accuracy", 0
                )
                if (p / "checkpoint" / "checkpoint.json").exists()
                else 0
            ),
        )
        return best, f"most accurate Pareto model of the newest search ({newest_run.name})"
    ckpt = _newest([p.parent for p in root.glob("train/*/checkpoint.json")])
    reason = (
        f"newest trained checkpoint {ckpt}"
        if ckpt
        else f"no searched or trained model yet: trained {DEFAULT_ARCH}"
    )
    if ckpt is None:
        log.info("no model found: training %s for %d epochs first", DEFAULT_ARCH, epochs)
        _, _, ckpt = train_and_save(
            DEFAULT_ARCH,
            dataset_name,
            root / "train" / DEFAULT_ARCH,
            TrainConfig(epochs=epochs),
            on_error=on_error,
        )
    return exported_checkpoint(ckpt, dataset_name, on_error=on_error), reason


def exported_checkpoint(ckpt: Path, dataset_name: str = "synth-kws", *, on_error: str = "raise") -> Path:
    """``ckpt/exported`` (model.tflite + summary.json), exported now when missing; calibrated on 200 training
    clips of the dataset the checkpoint was trained on."""
    out = Path(ckpt) / "exported"
    if not (out / "summary.json").exists():
        spec, model, meta = load_checkpoint(ckpt)
        name = meta["metrics"].get("dataset", dataset_name)
        feats = compute_features(load_dataset(name, on_error=on_error), spec.frontend)
        export_model(spec, model, np.asarray(feats.subset("train").x[:200]), out)
    return out
