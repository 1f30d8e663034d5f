"""Evaluating one trial: cheap objectives + constraints, then training (or the table surrogate).

``evaluate_trial(payload)`` is a top-level function so process pools and Ray can run it. It never
raises: a crash, a NaN loss or a diverged run comes back as a 'failed' result with the error text.

Pruning: the configured rule of ``search.pruners`` (default "pareto-median", multi-objective aware: after
``warmup_epochs``, a trial stops when at least ``min_peers`` finished trials that are no more expensive in
energy had a higher median validation accuracy at the same epoch, so a cheap model only competes with
models that cost the same or less, which keeps the low-energy end of the front). ``audio-nas bench
pruning`` replays every rule on the table's real curves.

The surrogate objective (``evaluator: surrogate``, for strategy benchmarks and tests) answers with the
learning curve ``search.surrogate`` predicts from a table of trained architectures (measured rows where
the table has them); energy and RAM are the real cost models either way.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from typing import Any

from audio_nas.config import from_dict
from audio_nas.data import load_dataset
from audio_nas.energy import make_energy_model
from audio_nas.energy.boards import board_memory
from audio_nas.features import compute_features
from audio_nas.features.synthset import is_synth_name
from audio_nas.search.pruners import should_stop
from audio_nas.search.surrogate import load_surrogate
from audio_nas.space import ArchSpec, arch_costs
from audio_nas.training import train
from audio_nas.training.config import TrainConfig
from audio_nas.training.portable_synth import render_synth_features
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
    epoch: int,
    acc: float,
    log_energy: float,
    peers: list[tuple[float, list[float]]],
    cfg: dict,
    curve: list[float] | None = None,
    epochs: int | None = None,
) -> bool:
    """The configured rule of ``search.pruners`` after ``epoch`` (0-based); ``curve`` is the validation
    curve so far (needed by lc-extrapolation, whose fit also needs the recipe's ``epochs``)."""
    so_far = list(curve) if curve is not None else [acc] * (epoch + 1)
    so_far[epoch] = acc
    return should_stop(cfg["kind"], epoch, so_far, log_energy, peers, {**cfg, "epochs": epochs or epoch + 2})


def _features(dataset_name: str, frontend, on_error: str = "raise"):

    key = f"{dataset_name}|{on_error}"
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_dataset(dataset_name, on_error=on_error)
    return compute_features(_CACHE[key], frontend)


def training_data(dataset_name: str, frontend, cfg: TrainConfig, on_error: str = "raise"):
    """``(features, teacher_logits, cfg)``: a synthesised set (``synth:DIR``) with its soft labels, in the
    candidate's front-end (``training.portable_synth``), and the recipe made fit for it
    (``datafree_train_config``), or a dataset's features, None and ``cfg`` unchanged."""
    if not is_synth_name(dataset_name):
        return _features(dataset_name, frontend, on_error), None, cfg
    key = f"synth|{dataset_name}"
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = synth_training_data(dataset_name)
    synth, logits = _CACHE[key]
    # the teacher's front-end: the stored features; another one: a rendering (source-filter sets only;
    # a clear error otherwise), made once per set and front-end and memory-mapped after
    return render_synth_features(synth, frontend), logits, datafree_train_config(cfg, synth)


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
        if payload["evaluator"] == "surrogate":
            surrogate = load_surrogate(str(payload["surrogate_table"]))
            curve_full, test_acc = surrogate.predict_curve(spec, seed=cfg.seed, epochs=cfg.epochs)
            curve = []
            pruned = False
            for e, acc in enumerate(curve_full):
                curve.append(acc)
                if e + 1 < cfg.epochs and should_prune(
                    e, acc, log_e, peers, payload["pruner"], curve, cfg.epochs
                ):
                    pruned = True
                    break
            if payload.get("sleep_s"):
                time.sleep(payload["sleep_s"] * len(curve) / cfg.epochs)
            return {
                "state": "pruned" if pruned else "complete",
                "accuracy": max(curve),
                # a stopped trial's test accuracy is not in the table: its best validation accuracy stands in
                "test_accuracy": max(curve) if pruned else test_acc,
                "curve": curve,
                "epochs_run": len(curve),
                "duration_s": time.perf_counter() - t0,
            }

        on_error = payload.get("on_error", "raise")
        # a synth: set (data-free) comes with its soft labels and a recipe that distils to them
        feats, teacher_logits, cfg = training_data(payload["dataset"], spec.frontend, cfg, on_error)
        seen: list[float] = []

        def keep_going(e: int, acc: float, loss: float) -> bool:
            seen.append(acc)
            return not should_prune(e, acc, log_e, peers, payload["pruner"], seen, cfg.epochs)

        res = train(spec, feats, cfg, on_epoch=keep_going, teacher_logits=teacher_logits)
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
