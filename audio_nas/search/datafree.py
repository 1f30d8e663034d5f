"""Data-free search (``data_free: true``): the synthesised training set, the space, the real test.

The search trains every candidate on features synthesised from the teacher (``synthetic_dir:`` or, when
not given, a set synthesised once into ``RUN_DIR/synthetic``) with distillation to the teacher's soft
labels. A source-filter set renders in any mel front-end (``training.portable_synth``), so the space
keeps its front-end genes (only the sample rate and clip length are the teacher's); a set of features
alone (``synth_prior: grid``) or ``pin_frontend: true`` pins every candidate to the teacher's front-end.
``dataset:`` is only used afterwards, by the report, to
evaluate the retrained Pareto models on its real labelled test split; the search itself never loads it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from audio_nas.data import load_dataset
from audio_nas.errors import SearchError
from audio_nas.features import compute_features
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.synthset import SYNTH_PREFIX, SynthSet, load_synth_set
from audio_nas.space import SearchSpace, sample_spec
from audio_nas.space.spec import frontend_to_str
from audio_nas.training.inversion import InversionConfig
from audio_nas.training.metrics import classification_metrics, predict_logits
from audio_nas.training.portable_synth import is_portable
from audio_nas.training.synthesize import synthesize
from audio_nas.training.teacher import load_teacher

log = logging.getLogger(__name__)


def prepare_synthetic(cfg: Any, run_dir: Path) -> SynthSet:
    """The synthesised set of a data-free run: ``synthetic_dir`` or ``run_dir/synthetic`` (made once)."""
    if cfg.synthetic_dir:
        synth = load_synth_set(cfg.synthetic_dir)
        if cfg.teacher:
            teacher = load_teacher(cfg.teacher)
            made_by = synth.manifest.get("teacher", {}).get("sha256")
            if made_by and made_by != teacher.sha256:
                raise SearchError(
                    f"synthetic_dir {cfg.synthetic_dir} was synthesised from another teacher (sha256 "
                    f"{made_by[:12]}) than {cfg.teacher} ({teacher.sha256[:12]}); drop one of the two keys"
                )
        return synth
    target = Path(run_dir) / "synthetic"
    if not target.exists():
        inv = InversionConfig(
            per_class=cfg.synth_per_class,
            steps=cfg.synth_steps,
            mixtures=cfg.synth_mixtures,
            prior=cfg.synth_prior,
            seed=cfg.seed,
        )
        log.info("data-free: synthesising %d examples per class from %s", inv.per_class, cfg.teacher)
        synthesize(cfg.teacher, inv, target)
    return load_synth_set(target)


def synth_name(synth: SynthSet) -> str:
    return f"{SYNTH_PREFIX}{synth.path.resolve()}"


def datafree_space(synth: SynthSet, weight_bits: tuple[int, ...], pin_frontend: bool) -> SearchSpace:
    """The space of a data-free search: the default one at the teacher's sample rate and clip length, or,
    for a set that renders only in the teacher's front-end (or when asked), pinned to that front-end."""
    if pin_frontend or not is_portable(synth):
        space = pinned_space(synth, weight_bits)
        check_pinned_frontend(space, synth.features.frontend)
        return space
    fe = synth.features.frontend
    return SearchSpace(
        n_classes=len(synth.features.class_names),
        sample_rate_hz=fe.sample_rate_hz,
        clip_ms=fe.clip_ms,
        weight_bits_choices=weight_bits,
    )


def frontend_is_pinned(space: SearchSpace) -> bool:
    return len(space.fe_kinds) == len(space.window_ms) == len(space.hop_ms) == len(space.n_mels) == 1


def pinned_space(synth: SynthSet, weight_bits: tuple[int, ...]) -> SearchSpace:
    """The default space with its front-end choices pinned to the teacher's front-end."""
    fe = synth.features.frontend
    return SearchSpace(
        fe_kinds=(fe.kind,),
        window_ms=(fe.window_ms,),
        hop_ms=(fe.hop_ms,),
        n_mels=(fe.n_mels,),
        n_mfcc=(fe.n_mfcc,),
        n_classes=len(synth.features.class_names),
        sample_rate_hz=fe.sample_rate_hz,
        clip_ms=fe.clip_ms,
        weight_bits_choices=weight_bits,
    )


def check_pinned_frontend(space: SearchSpace, frontend: FrontEndConfig) -> None:
    """Sampled specs must come out with exactly the teacher's front-end (fmin/fmax/n_fft are defaults)."""
    got = sample_spec(np.random.default_rng(0), space).frontend
    if got != frontend:
        raise SearchError(
            f"the teacher's front-end {frontend_to_str(frontend)} is outside what the search space can "
            "express "
            f"(it samples {frontend_to_str(got)}); use a teacher with default fmin/fmax/n_fft"
        )


def with_frontend(spec: Any, frontend: FrontEndConfig, n_classes: int) -> Any:
    """A baseline preset on the teacher's front-end (data-free baselines cannot keep their own)."""
    return dataclasses.replace(spec, frontend=frontend, n_classes=n_classes)


def real_test_accuracy(
    model: Any, spec: Any, dataset_name: str, class_names: tuple[str, ...], on_error: str
) -> dict:
    """Accuracy of a trained model on the real test split of ``dataset_name`` (with the spec's front-end)."""
    ds = load_dataset(dataset_name, on_error=on_error)
    if tuple(ds.class_names) != tuple(class_names):
        return {
            "real_test_accuracy": None,
            "real_test_note": f"{dataset_name} has other classes than the teacher",
        }
    fe = spec.frontend
    if fe.sample_rate_hz != ds.sample_rate_hz or fe.clip_ms != ds.clip_ms:
        return {
            "real_test_accuracy": None,
            "real_test_note": f"{dataset_name} clips do not fit the front-end",
        }
    test = compute_features(ds, fe).subset("test")
    acc = classification_metrics(predict_logits(model, np.asarray(test.x)), test.labels, tuple(class_names))
    return {"real_test_accuracy": acc.accuracy, "real_test_examples": acc.n_examples}
