"""A pretrained teacher for data-free work: its checkpoint loaded and checked, its hash and BN layers.

``load_teacher(path, expected_frontend=...)`` turns every way a checkpoint can be unusable into a
``TrainingError`` that names the problem and the fix: a missing directory or file, a corrupt
``checkpoint.json`` or ``model.safetensors``, weights that do not fit the spec, a front-end other than
the one asked for. A teacher without batch-norm layers (or whose BN layers keep no running statistics)
loads, and ``Teacher.bn_layers`` is empty: the inversion then warns and uses the terms that need no BN.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from audio_nas.errors import AudioNasError, TrainingError
from audio_nas.features.config import FrontEndConfig
from audio_nas.space.spec import frontend_to_str
from audio_nas.training.checkpoint import META, WEIGHTS, load_checkpoint


@dataclass(eq=False)
class Teacher:
    spec: Any
    model: nn.Module  # eval mode, on CPU
    class_names: tuple[str, ...]
    path: Path
    sha256: str  # of checkpoint.json + model.safetensors

    @property
    def frontend(self) -> FrontEndConfig:
        return self.spec.frontend

    @property
    def bn_layers(self) -> list[nn.modules.batchnorm._BatchNorm]:
        """BatchNorm layers with running statistics, in forward order."""
        return [
            m
            for m in self.model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats
            and m.running_mean is not None
        ]


def checkpoint_sha256(path: Path) -> str:
    h = hashlib.sha256()
    for name in (META, WEIGHTS):
        with open(path / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _check_frontend(fe: FrontEndConfig, expected: FrontEndConfig | str, path: Path) -> None:
    if isinstance(expected, str):
        ok = expected in (fe.kind, frontend_to_str(fe))
        want = expected
    else:
        ok = expected == fe
        want = frontend_to_str(expected)
    if not ok:
        raise TrainingError(
            f"teacher {path} uses front-end {frontend_to_str(fe)}, not the requested {want}; data-free "
            f"training can only use the teacher's own front-end: drop the front-end request or pass "
            f"{frontend_to_str(fe)}"
        )


def load_teacher(path: str | Path, *, expected_frontend: FrontEndConfig | str | None = None) -> Teacher:
    """Load and check a teacher checkpoint directory (written by ``audio-nas train``)."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(
            f"teacher checkpoint {path} does not exist; train one with `audio-nas train --out DIR`"
        )
    if not path.is_dir():
        raise TrainingError(
            f"teacher {path} is a file; pass the checkpoint directory (with {META}, {WEIGHTS})"
        )
    try:
        spec, model, meta = load_checkpoint(path)
    except TrainingError:
        raise
    except AudioNasError as exc:  # e.g. a spec string that no longer parses
        raise TrainingError(f"teacher checkpoint {path} is unusable: {exc}") from exc
    except (KeyError, ValueError, OSError, RuntimeError) as exc:  # safetensors header, missing keys
        raise TrainingError(
            f"teacher checkpoint {path} is corrupt ({type(exc).__name__}: {exc}); re-train or re-copy it"
        ) from exc
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        if "safetensor" in type(exc).__name__.lower():
            raise TrainingError(
                f"teacher weights {path / WEIGHTS} are corrupt ({exc}); re-copy them"
            ) from exc
        raise
    classes = tuple(meta.get("class_names") or ())
    if len(classes) != spec.n_classes:
        raise TrainingError(
            f"teacher {path}: {json.dumps(list(classes))} has {len(classes)} class names but the spec has "
            f"{spec.n_classes} outputs; the checkpoint is inconsistent"
        )
    if expected_frontend is not None:
        _check_frontend(spec.frontend, expected_frontend, path)
    model.requires_grad_(False)
    return Teacher(
        spec=spec, model=model.eval(), class_names=classes, path=path, sha256=checkpoint_sha256(path)
    )
