"""Quantisation benchmark: what 4-bit weights cost in accuracy and save in flash (issue 15).

``audio-nas bench quant`` trains each architecture in float on synth-kws (the teacher), then compares,
on the same seed:

- ``w8 PTQ`` / ``w4 PTQ``: the float weights quantised after training (int8, or int4 in every block);
- ``w8 QAT`` / ``w4 QAT``: quantisation-aware fine-tuning of the float weights (``TrainConfig.qat``);
- ``w4 QAT+KD``: the same with distillation from the float model's logits (``distill_alpha``).

"int test acc" is the accuracy of the integer model: ``export.quantize.run_int8`` over the whole test
split, which equals the TFLM host interpreter bit for bit (the "TFLM parity" column checks it on the first
test clips). "blocks w4" means every block token carries ``_w4``; stem, head conv and classifier stay int8.
Flash is the .tflite size; the arena is the spec-level TFLM model for the Cortex-M build
(``space.tflm_arena``), which counts the int8 scratch buffer TFLM unpacks each int4 filter into.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from audio_nas.bench.report import markdown_table, write_section

log = logging.getLogger(__name__)

SMALL_UIB = (
    "fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|uib_a3_k3_e2_s2_c24_r1_relu|uib_a0_k3_e3_s2_c32_r2_relu"
    "|uib_a3_k0_e2_s1_c48_r1_relu|head:c0|n12"
)
# (architecture, seeds): DS-CNN twice, a small MobileNetV4-style UIB network once
RUNS = (("ds_cnn_s", (0, 1)), (SMALL_UIB, (0,)))
EPOCHS, QAT_EPOCHS, DISTILL_ALPHA = 12, 3, 0.5  # sized for the shared 2-core machine (~20 min per seed)
PARITY_CLIPS = 64


def with_block_bits(spec, bits: int):
    """``spec`` with every block's weights at ``bits`` (stem and head unchanged)."""
    return dataclasses.replace(
        spec, blocks=tuple(dataclasses.replace(b, weight_bits=bits) for b in spec.blocks)
    )


def integer_eval(spec, model, calib_x, x_te, y_te, parity_clips: int = PARITY_CLIPS) -> dict:
    """Integer accuracy (run_int8 over the test split), TFLM parity on the first clips, sizes."""
    from audio_nas.export.graph import lower_model
    from audio_nas.export.quantize import quantize_graph, quantize_input, run_int8
    from audio_nas.export.tflite_writer import write_tflite
    from audio_nas.export.verify import run_tflm
    from audio_nas.space import arch_costs

    g = quantize_graph(lower_model(model), calib_x)
    model_bytes = write_tflite(g)
    xq = quantize_input(g, x_te)
    sim = run_int8(g, xq)
    tflm = run_tflm(model_bytes, xq[:parity_clips])
    c = arch_costs(spec)
    return {
        "int_acc": float((sim.argmax(1) == y_te).mean()),
        "parity": float(np.all(tflm == sim[:parity_clips], axis=1).mean()),
        "flash": len(model_bytes),
        "arena": c.arena_bytes,
        "ace": c.ace,
        "ace_v2": c.ace_v2,
    }


def run_bench(quick: bool = False) -> None:
    from audio_nas.data import load_dataset
    from audio_nas.features import compute_features
    from audio_nas.space import build_model
    from audio_nas.training.config import TrainConfig
    from audio_nas.training.metrics import predict_logits
    from audio_nas.training.pipeline import spec_for_dataset
    from audio_nas.training.trainer import train

    dataset = load_dataset("synth-kws")
    epochs, qat_epochs = (2, 1) if quick else (EPOCHS, QAT_EPOCHS)
    runs = ((RUNS[0][0], (0,)),) if quick else RUNS
    rows, summary = [], {}
    t_start = time.perf_counter()
    for arch, seeds in runs:
        spec8 = spec_for_dataset(arch, dataset)
        name = arch if arch in ("ds_cnn_s",) else "small UIB"
        feats = compute_features(dataset, spec8.frontend)
        split = np.asarray(feats.split)
        x_tr = np.asarray(feats.x[np.flatnonzero(split == 0)], np.float32)
        x_te = np.asarray(feats.x[np.flatnonzero(split == 2)], np.float32)
        y_te = np.asarray(feats.labels)[split == 2]
        calib = x_tr[np.random.default_rng(0).choice(len(x_tr), 256, replace=False)]
        for seed in seeds:
            t0 = time.perf_counter()
            teacher = train(spec8, feats, TrainConfig(epochs=epochs, seed=seed))
            log.info(
                "%s seed %d: float %.3f (%.0f s)", name, seed, teacher.test_accuracy, teacher.train_time_s
            )
            teacher_logits = predict_logits(teacher.model, x_tr)
            variants = []
            for bits in (8, 4):
                spec = with_block_bits(spec8, bits)
                ptq = build_model(spec)
                ptq.load_state_dict(teacher.model.state_dict())
                variants.append((bits, "PTQ", spec, ptq.eval(), teacher.test_accuracy, 0.0))
                methods = [("QAT", 0.0)] + ([("QAT+KD", DISTILL_ALPHA)] if bits == 4 else [])
                for method, alpha in methods:
                    start = build_model(spec)
                    start.load_state_dict(teacher.model.state_dict())
                    cfg = TrainConfig(
                        epochs=qat_epochs, qat=True, qat_epochs=qat_epochs, seed=seed, distill_alpha=alpha
                    )
                    res = train(spec, feats, cfg, model=start, teacher_logits=teacher_logits)
                    variants.append((bits, method, spec, res.model, res.test_accuracy, res.train_time_s))
            for bits, method, spec, model, torch_acc, secs in variants:
                ev = integer_eval(spec, model, calib, x_te, y_te)
                key = (name, f"w{bits} {method}")
                summary.setdefault(key, []).append(ev)
                rows.append(
                    [
                        name,
                        "blocks w4" if bits == 4 else "all w8",
                        method,
                        seed,
                        f"{torch_acc:.3f}",
                        f"{ev['int_acc']:.3f}",
                        f"{ev['parity'] * PARITY_CLIPS:.0f}/{PARITY_CLIPS}",
                        ev["flash"],
                        ev["arena"],
                        f"{ev['ace'] / 1e9:.2f}",
                        f"{ev['ace_v2'] / 1e9:.2f}",
                        f"{secs:.0f}",
                    ]
                )
            log.info("%s seed %d done in %.0f s", name, seed, time.perf_counter() - t0)
            minutes = (time.perf_counter() - t_start) / 60
            _write(rows, summary, dataset, epochs, qat_epochs, minutes, quick, False)
    _write(rows, summary, dataset, epochs, qat_epochs, (time.perf_counter() - t_start) / 60, quick, True)
    if not quick:  # the fronts at equal search budget: their own section (bench/quant_fronts.py)
        from audio_nas.bench import quant_fronts

        quant_fronts.run()


def _write(rows, summary, dataset, epochs, qat_epochs, minutes, quick, done) -> None:
    from audio_nas.training.config import TrainConfig

    mean_rows = []
    for (name, variant), evs in summary.items():
        accs = [e["int_acc"] for e in evs]
        base = summary[(name, "w8 QAT")][0]["flash"]
        mean_rows.append(
            [
                name,
                variant,
                len(evs),
                f"{np.mean(accs):.3f}" + (f" ± {np.std(accs):.3f}" if len(accs) > 1 else ""),
                evs[0]["flash"],
                f"{100 * (1 - evs[0]['flash'] / base):.1f}%",
            ]
        )
    n_train = int((np.asarray(dataset.split) == 0).sum())
    n_test = int((np.asarray(dataset.split) == 2).sum())
    body = (
        f"synth-kws: {len(dataset.labels)} clips ({n_train} train, {n_test} test), 12 classes. "
        f"Float teacher: `TrainConfig(epochs={epochs})`; QAT fine-tunes the teacher's "
        f"weights for {qat_epochs} epochs (`qat=True`, lr x 0.1); KD: `distill_alpha={DISTILL_ALPHA}`, "
        f"T = {TrainConfig().distill_temperature}. int4 weights are per-channel symmetric in [-7, 7] "
        "(the classifier stays int8 here), min/max scales. Total "
        f"{minutes:.0f} min on the shared 2-core machine.\n\n"
        + ("" if done else "**Partial: the benchmark was still running when this was written.**\n\n")
        + "Mean integer test accuracy over seeds and flash saved against w8 QAT:\n\n"
        + markdown_table(["arch", "variant", "seeds", "int test acc", "flash B", "flash saved"], mean_rows)
        + "\n\nEvery run (torch acc: the float or fake-quantised model in torch; int acc: the integer model "
        "(`run_int8`); TFLM parity: clips whose TFLM logits equal it exactly; arena: Cortex-M TFLM model "
        "with "
        "the int4 unpacking buffers):\n\n"
        + markdown_table(
            [
                "arch",
                "weights",
                "method",
                "seed",
                "torch acc",
                "int test acc",
                "TFLM parity",
                "flash B",
                "arena B",
                "ACE G",
                "ACEv2 G",
                "train s",
            ],
            rows,
        )
        + "\n\nThe 8-bit vs mixed-precision fronts at equal search budget (a search config turns mixed "
        "precision on with `weight_bits: [4, 8]`) are the next section, "
        "`python -m audio_nas.bench.quant_fronts` "
        "(also run by `audio-nas bench quant` without `--quick`)."
    )
    write_section(
        "quant",
        "Quantisation: int4 vs int8 weights (accuracy, flash)",
        "audio-nas bench quant" + (" --quick" if quick else ""),
        body,
    )
