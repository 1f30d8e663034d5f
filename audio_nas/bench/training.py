"""Training benchmark: baselines on synth-kws with the default recipe, and throughput.

``audio-nas bench training`` trains DS-CNN and MobileNetV2 (x0.35) with the default
``TrainConfig`` and reports test accuracy, params, MACs and train time on this
machine, plus training throughput (samples/s) for a typical sampled candidate.
"""

from __future__ import annotations

import time

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.training.config import TrainConfig

BASELINES = ("ds_cnn_s", "mobilenet_v2_x0.35", "micro_speech_tiny_conv")


def run_bench(quick: bool = False) -> None:
    from audio_nas.data import load_dataset
    from audio_nas.features import compute_features
    from audio_nas.space import arch_costs, sample_spec
    from audio_nas.training.pipeline import spec_for_dataset
    from audio_nas.training.trainer import train

    dataset = load_dataset("synth-kws")
    cfg = TrainConfig(epochs=3 if quick else TrainConfig().epochs)
    rows = []
    for arch in BASELINES[:1] if quick else BASELINES:
        spec = spec_for_dataset(arch, dataset)
        feats = compute_features(dataset, spec.frontend)
        res = train(spec, feats, cfg)
        c = arch_costs(spec)
        rows.append(
            [
                arch,
                f"{res.test_accuracy:.3f}",
                f"{res.val_accuracy:.3f}",
                c.params,
                f"{c.macs / 1e6:.2f}",
                f"{res.train_time_s:.0f}",
                f"{res.samples_per_s:.0f}",
            ]
        )

    # Throughput of a typical sampled candidate (median of a few), 1 epoch each.
    rng = np.random.default_rng(0)
    rates, cands = [], []
    for _ in range(2 if quick else 5):
        spec = spec_for_dataset(sample_spec(rng).to_str(), dataset)
        feats = compute_features(dataset, spec.frontend)
        t0 = time.perf_counter()
        res = train(spec, feats, TrainConfig(epochs=1))
        rates.append(res.samples_per_s)
        cands.append(
            f"{arch_costs(spec).macs / 1e6:.2f} M MACs: {res.samples_per_s:.0f}/s "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    n_train = int((np.asarray(dataset.split) == 0).sum())
    body = (
        f"Dataset synth-kws: {len(dataset.labels)} clips ({n_train} train), 12 classes. Recipe: "
        f"`TrainConfig()` defaults ({cfg.epochs} epochs, AdamW lr {cfg.lr}, cosine, SpecAugment, label "
        f"smoothing {cfg.label_smoothing}).\n\n"
        + markdown_table(["arch", "test acc", "val acc", "params", "MMACs", "train s", "samples/s"], rows)
        + f"\n\nTraining throughput, sampled candidates (1 epoch each): median {np.median(rates):.0f} "
        "samples/s; " + "; ".join(cands)
    )
    write_section(
        "training",
        "Training: baselines on synth-kws",
        "audio-nas bench training" + (" --quick" if quick else ""),
        body,
    )
