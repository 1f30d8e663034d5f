"""Checkpoints: weights in safetensors, everything else in JSON. Never pickles."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from audio_nas.errors import TrainingError
from audio_nas.export.qat import prepare_qat
from audio_nas.space import ArchSpec, build_model

WEIGHTS = "model.safetensors"
META = "checkpoint.json"
FORMAT_VERSION = 1


def save_checkpoint(
    path: str | Path, spec: Any, model: torch.nn.Module, metrics: dict[str, Any], class_names: tuple[str, ...]
) -> Path:
    """Write ``path/model.safetensors`` and ``path/checkpoint.json`` (atomically, by rename)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path / WEIGHTS)
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": spec.to_str(),
        "spec_hash": spec.spec_hash,
        "class_names": list(class_names),
        "metrics": metrics,
        "qat": hasattr(model, "qat_input"),
    }
    tmp = path / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=float))
    os.replace(tmp, path / META)
    return path


def load_checkpoint(path: str | Path) -> tuple[Any, torch.nn.Module, dict[str, Any]]:
    """Return ``(spec, model, meta)``; the model is built from the spec and the weights loaded strictly."""

    path = Path(path)
    if not (path / META).exists() or not (path / WEIGHTS).exists():
        raise TrainingError(
            f"{path} is not a checkpoint: it needs {META} and {WEIGHTS} (written by `audio-nas train`)"
        )
    try:
        meta = json.loads((path / META).read_text())
    except json.JSONDecodeError as exc:
        raise TrainingError(
            f"{path / META} is not valid JSON ({exc}); re-run training to rewrite it"
        ) from exc
    spec = ArchSpec.from_str(meta["spec"])
    model = build_model(spec)
    if meta.get("qat"):
        prepare_qat(model)
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)), strict=True)
    except (RuntimeError, OSError) as exc:
        raise TrainingError(f"weights in {path / WEIGHTS} do not match the spec in {META}: {exc}") from exc
    return spec, model.eval(), meta
