"""From names to a trained checkpoint: dataset -> features -> train -> save.

Shared by ``audio-nas train``, the training benchmark and the streaming demo's
"train a small default model first" path, so none of them re-implements it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from audio_nas.data import load_dataset
from audio_nas.errors import SpecError
from audio_nas.features import compute_features
from audio_nas.features.synthset import is_synth_name
from audio_nas.space import arch_costs, resolve_arch
from audio_nas.training.checkpoint import save_checkpoint
from audio_nas.training.config import TrainConfig
from audio_nas.training.portable_synth import render_synth_features
from audio_nas.training.synthesize import datafree_train_config, spec_for_synth, synth_training_data
from audio_nas.training.trainer import TrainResult, train

log = logging.getLogger(__name__)


def spec_for_dataset(arch: str, dataset: Any) -> Any:
    """Resolve a preset name or spec string and fit its front-end/classes to the dataset."""

    spec = resolve_arch(arch)
    fe = spec.frontend
    if fe.sample_rate_hz != dataset.sample_rate_hz:
        fe = dataclasses.replace(fe, sample_rate_hz=dataset.sample_rate_hz)
    clip_ms = int(round(1000 * dataset.waveforms.shape[1] / dataset.sample_rate_hz))
    if fe.clip_ms != clip_ms:
        fe = dataclasses.replace(fe, clip_ms=clip_ms)
    n_classes = len(dataset.class_names)
    try:
        return dataclasses.replace(spec, frontend=fe, n_classes=n_classes)
    except SpecError as exc:
        raise SpecError(f"{arch!r} does not fit dataset {dataset.name!r}: {exc}") from exc


def train_and_save(
    arch: str,
    dataset_name: str,
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    on_error: str = "raise",
) -> tuple[Any, TrainResult, Path]:
    """``on_error="skip"`` skips unreadable audio files (counted in one warning) instead of failing.

    ``synth:DIR`` (a set from ``audio-nas data synthesize``) trains on the synthesised features with
    distillation to their stored soft labels; the spec's front-end must be the set's (the teacher's) unless
    the set renders in others (a source-filter set, ``training.portable_synth``)."""
    teacher_logits = None
    if is_synth_name(dataset_name):
        synth, teacher_logits = synth_training_data(dataset_name)
        spec = spec_for_synth(resolve_arch(arch), synth)
        features = render_synth_features(synth, spec.frontend)
        content = synth.manifest.get("content_hash", "")
        cfg = datafree_train_config(cfg or TrainConfig(), synth)
    else:
        dataset = load_dataset(dataset_name, on_error=on_error)
        spec = spec_for_dataset(arch, dataset)
        features, content = compute_features(dataset, spec.frontend), dataset.content_hash
    result = train(spec, features, cfg or TrainConfig(), progress=True, teacher_logits=teacher_logits)
    costs = arch_costs(spec)
    metrics = {
        "val_accuracy": result.val_accuracy,
        "test_accuracy": result.test_accuracy,
        "per_class_accuracy": result.per_class_accuracy,
        "confusion": result.confusion,
        "curve": result.curve,
        "epochs_run": result.epochs_run,
        "train_time_s": result.train_time_s,
        "params": costs.params,
        "macs": costs.macs,
        "dataset": dataset_name,
        "dataset_hash": content,
        "train_config": dataclasses.asdict(cfg or TrainConfig()),
    }
    path = save_checkpoint(out_dir, spec, result.model, metrics, tuple(features.class_names))
    log.info("saved checkpoint to %s", path)
    return spec, result, path
