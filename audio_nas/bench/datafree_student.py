"""One data-free student, measured: train it on a synthesised set, then its real test accuracy and how often
it agrees with the teacher (top class) on the set's inversions and mixtures, by split.

The rows of docs/benchmarks.md's data-free sections ("up to sixteen times the inversions", "warped
mixtures and steered inversions"): one invocation per (set, student, seed); each prints a JSON row and
appends it to ``--out``.

    python -m audio_nas.bench.datafree_student synth:DIR "<spec>" --seed S --epochs 8 [--out rows.jsonl]

Agreement tracks the real test accuracy where the students' fit on the inversions does not (the sections
above): validation mixtures are what they fail on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def student_row(
    dataset: str,
    arch: str,
    *,
    seed: int,
    epochs: int,
    real: str = "synth-kws",
    alpha: float = 0.9,
    temperature: float = 4.0,
    tag: str = "",
    work_dir: str | Path | None = None,
) -> dict:
    """Train ``arch`` on the synthesised set ``dataset`` (distilling with ``alpha``, ``temperature``; batch
    64, one thread) and measure it; ``real`` is the labelled set whose test split it is scored on."""
    import tempfile

    import numpy as np

    from audio_nas.features.synthset import load_synth_set
    from audio_nas.search.datafree import real_test_accuracy
    from audio_nas.training import TrainConfig
    from audio_nas.training.metrics import predict_logits
    from audio_nas.training.pipeline import train_and_save
    from audio_nas.training.portable_synth import render_synth_features

    t0 = time.time()
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=64,
        num_threads=1,
        seed=seed,
        distill_alpha=alpha,
        distill_temperature=temperature,
    )
    out = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="datafree-student-"))
    spec, res, _ = train_and_save(arch, dataset, out, cfg)
    acc = real_test_accuracy(res.model, spec, real, tuple(res.per_class_accuracy), "raise")[
        "real_test_accuracy"
    ]
    synth = load_synth_set(dataset)
    fs = render_synth_features(synth, spec.frontend, progress=False)
    x, split = np.asarray(fs.x), np.asarray(fs.split)
    n_train_mix = int(synth.manifest["mixtures"]["n"])
    n_val_mix = int(synth.manifest["mixtures"].get("validation", 0))
    n_inv = len(x) - n_train_mix - n_val_mix - synth.n_proxy
    agree = predict_logits(res.model, x).argmax(1) == synth.teacher_logits.argmax(1)
    row = np.arange(len(x))
    inv = row < n_inv
    proxy = row >= len(x) - synth.n_proxy  # proxy speech (audio-nas data add-proxy): the last rows
    groups = {
        "train_inv": inv & (split == 0),
        "val_inv": inv & (split == 1),
        "train_mix": ~inv & ~proxy & (split == 0),
        "val_mix": ~inv & (split == 1),
        "train_proxy": proxy,
    }
    return {
        "tag": tag,
        "set": dataset,
        "arch": arch,
        "seed": seed,
        "epochs": epochs,
        "alpha": alpha,
        "temperature": temperature,
        "real_test": acc,
        "val": res.val_accuracy,
        "best_epoch": res.best_epoch,
        **{f"agree_{k}": round(float(agree[m].mean()), 4) for k, m in groups.items() if m.any()},
        "s": round(time.time() - t0, 1),
    }


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="train one data-free student and measure it")
    p.add_argument("dataset", help="synth:DIR")
    p.add_argument("arch", help="a spec string or a named architecture")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--alpha", type=float, default=0.9, help="distillation weight")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--real", default="synth-kws", help="the labelled set whose test split scores the student")
    p.add_argument("--tag", default="")
    p.add_argument("--out", default=None, help="append the JSON row to this file")
    a = p.parse_args()
    row = student_row(
        a.dataset,
        a.arch,
        seed=a.seed,
        epochs=a.epochs,
        real=a.real,
        alpha=a.alpha,
        temperature=a.temperature,
        tag=a.tag,
    )
    line = json.dumps(row)
    print(line)
    if a.out:
        with open(a.out, "a") as fh:
            fh.write(line + "\n")
