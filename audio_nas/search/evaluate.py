"""Evaluating one trial: cheap objectives + constraints, then training (or the synthetic objective).

``evaluate_trial(payload)`` is a top-level function so process pools and Ray can run it. It never
raises: a crash, a NaN loss or a diverged run comes back as a 'failed' result with the error text.

Pruning ("pareto-median", multi-objective aware): after ``warmup_epochs``, a trial stops when at least
``min_peers`` finished trials that are no more expensive in energy had a higher median validation
accuracy at the same epoch. A cheap model is therefore never stopped by expensive ones: it only
competes with models that cost the same or less, which is what keeps the low-energy end of the front.

The synthetic objective (for tests and the strategy benchmark) keeps the structure of the real one:
energy and RAM are the *real* cost models of the spec; accuracy saturates with capacity
(log MACs, log params) as trained accuracy does, with a smooth architecture-dependent term
(front-end kind and resolution, depth, kernel sizes, expansion) and small per-spec noise; learning
curves rise like 1 - exp(-epoch / tau) with a spec-dependent tau, so early epochs rank candidates
imperfectly, as in real training, and pruning has something to get wrong.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import traceback
from typing import Any

import numpy as np

from audio_nas.config import from_dict
from audio_nas.data import load_dataset
from audio_nas.energy import make_energy_model
from audio_nas.energy.boards import board_memory
from audio_nas.errors import TrainingError
from audio_nas.features import compute_features
from audio_nas.features.synthset import is_synth_name
from audio_nas.space import ArchSpec, arch_costs
from audio_nas.training import train
from audio_nas.training.config import TrainConfig
from audio_nas.training.synthesize import datafree_train_config, synth_training_data

log = logging.getLogger(__name__)
_CACHE: dict[str, Any] = {}
_ENERGY_MODELS: dict[str, Any] = {}  # one per source per process (the predictor is loaded once)


def cheap_objectives(spec, board, energy_source: str = "emulated") -> dict[str, Any]:
    """Costs known before training and whether the spec fits the board.

    RAM and flash are the board's totals (``energy.boards.board_memory``): the model's share (TFLM arena +
    input staging + front-end; flatbuffer + front-end tables) plus the firmware's (statics, stack, platform
    reserve, TFLM runtime) from the board profile. ``peak_ram_bytes`` / ``flash_bytes`` (the RAM objective and
    the stored columns) hold the totals; ``model_*`` the model's share.
    """

    c = arch_costs(spec)
    model = _ENERGY_MODELS.get(energy_source) or _ENERGY_MODELS.setdefault(
        energy_source, make_energy_model(energy_source)
    )
    est = model.estimate(spec, board, layers=c.layers)
    mem = board_memory(spec, board, c)
    return {
        "energy_uj": est.energy_uj,
        "energy_source": est.source,
        "latency_ms": est.latency_ms,
        "peak_ram_bytes": mem.total_ram_bytes,
        "flash_bytes": mem.total_flash_bytes,
        "model_ram_bytes": mem.model_ram_bytes,
        "model_flash_bytes": mem.model_flash_bytes,
        "firmware_memory_known": mem.firmware_known,
        "params": c.params,
        "macs": c.macs,
        "infeasible": mem.infeasible(board),
    }


def should_prune(
    epoch: int, acc: float, log_energy: float, peers: list[tuple[float, list[float]]], cfg: dict
) -> bool:
    if cfg["kind"] == "none" or epoch + 1 < cfg["warmup_epochs"]:
        return False
    cheaper = [curve[epoch] for le, curve in peers if le <= log_energy and len(curve) > epoch]
    return len(cheaper) >= cfg["min_peers"] and acc < float(np.median(cheaper))


def _features(dataset_name: str, frontend, on_error: str = "raise"):

    key = f"{dataset_name}|{on_error}"
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_dataset(dataset_name, on_error=on_error)
    return compute_features(_CACHE[key], frontend)


def training_data(dataset_name: str, frontend, on_error: str = "raise"):
    """``(features, teacher_logits)``: a synthesised set (``synth:DIR``) with its soft labels, checked against
    the candidate's front-end, or a dataset's features and None."""
    if not is_synth_name(dataset_name):
        return _features(dataset_name, frontend, on_error), None
    key = f"synth|{dataset_name}"
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = synth_training_data(dataset_name)
    synth, logits = _CACHE[key]
    if synth.features.frontend != frontend:
        raise TrainingError(
            f"candidate front-end {frontend} differs from the synthesised set's {synth.features.frontend}; "
            "data-free candidates must use the teacher's front-end"
        )
    return synth.features, logits


def synthetic_curve(spec, epochs: int, costs: dict) -> list[float]:
    h = int(hashlib.sha256(spec.to_str().encode()).hexdigest()[:8], 16)
    noise = np.random.default_rng(h)
    lm, lp = math.log10(max(costs["macs"], 1)), math.log10(max(costs["params"], 1))
    fe = spec.frontend
    arch = (
        0.03 * (fe.kind == "mfcc")
        + 0.02 * math.tanh((fe.n_bins - 20) / 20)
        - 0.015 * (fe.hop_ms > 20)
        + 0.01 * min(len(spec.blocks), 4)
        + 0.01 * math.sin(lp * 3.1 + lm)
    )
    acc_max = 0.93 / (1 + math.exp(-2.2 * (lp - 3.7))) * (0.85 + 0.15 * math.tanh(lm - 5.5)) + arch
    acc_max = float(np.clip(acc_max + noise.normal(0, 0.01), 0.09, 0.99))
    tau = 0.8 + 2.5 * noise.random()
    return [
        float(np.clip(acc_max * (1 - math.exp(-(e + 1) / tau)) + noise.normal(0, 0.005), 0, 1))
        for e in range(epochs)
    ]


def evaluate_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """payload: spec, evaluator, dataset, on_error (optional), train (TrainConfig dict), pruner (dict), peers,
    cheap (dict)."""
    t0 = time.perf_counter()
    try:
        spec = ArchSpec.from_str(payload["spec"])
        cheap = payload["cheap"]
        log_e = math.log10(max(cheap["energy_uj"], 1e-9))
        cfg = from_dict(TrainConfig, payload["train"])
        peers = payload.get("peers", [])
        if payload["evaluator"] == "synthetic":
            curve_full = synthetic_curve(spec, cfg.epochs, cheap)
            curve = []
            pruned = False
            for e, acc in enumerate(curve_full):
                curve.append(acc)
                if should_prune(e, acc, log_e, peers, payload["pruner"]) and e + 1 < cfg.epochs:
                    pruned = True
                    break
            if payload.get("sleep_s"):
                time.sleep(payload["sleep_s"] * len(curve) / cfg.epochs)
            return {
                "state": "pruned" if pruned else "complete",
                "accuracy": max(curve),
                "test_accuracy": max(curve),
                "curve": curve,
                "epochs_run": len(curve),
                "duration_s": time.perf_counter() - t0,
            }

        on_error = payload.get("on_error", "raise")
        feats, teacher_logits = training_data(payload["dataset"], spec.frontend, on_error)
        if teacher_logits is not None:  # data-free: distil to the teacher's soft labels
            cfg = datafree_train_config(cfg)
        res = train(
            spec,
            feats,
            cfg,
            on_epoch=lambda e, acc, loss: not should_prune(e, acc, log_e, peers, payload["pruner"]),
            teacher_logits=teacher_logits,
        )
        if not math.isfinite(res.val_accuracy):
            raise FloatingPointError("validation accuracy is NaN")
        return {
            "state": "pruned" if res.pruned else "complete",
            "accuracy": res.val_accuracy,
            "test_accuracy": res.test_accuracy,
            "curve": res.curve,
            "epochs_run": res.epochs_run,
            "duration_s": time.perf_counter() - t0,
        }
    except Exception as exc:  # recorded as a failed trial; the search goes on
        return {
            "state": "failed",
            "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}",
            "duration_s": time.perf_counter() - t0,
        }
