"""Export benchmark: TFLM int8 accuracy vs float on the synth-kws test split, arena TFLM vs analytic."""

from __future__ import annotations

import tempfile

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.training.config import TrainConfig

ARCHS = ("ds_cnn_s", "mobilenet_v2_x0.35")


def run_bench(quick: bool = False) -> None:
    from audio_nas.data import load_dataset
    from audio_nas.export import export_model, run_tflm
    from audio_nas.export.graph import lower_model
    from audio_nas.export.quantize import quantize_graph, quantize_input
    from audio_nas.features import compute_features
    from audio_nas.space import arch_costs, sample_spec
    from audio_nas.training import train
    from audio_nas.training.pipeline import spec_for_dataset

    ds = load_dataset("synth-kws")
    rng = np.random.default_rng(1)
    specs = [spec_for_dataset(a, ds) for a in ARCHS]
    while len(specs) < len(ARCHS) + (1 if quick else 3):
        spec = spec_for_dataset(sample_spec(rng).to_str(), ds)
        costs = arch_costs(spec)
        # candidates a search could keep for a Cortex-M4 board; uniform draws can reach 30+ M MACs and 0.5 MB
        # of activations, which take most of an hour to train on 2 cores and would never be deployed
        if costs.macs <= 5e6 and costs.peak_ram_bytes <= 256 * 1024:
            specs.append(spec)
    cfg = TrainConfig(epochs=3 if quick else 15)
    rows = []
    for spec in specs:
        feats = compute_features(ds, spec.frontend)
        res = train(spec, feats, cfg)
        test = feats.subset("test")
        x, y = np.asarray(test.x), test.labels
        float_acc = float((res.model(__import__("torch").from_numpy(x)).argmax(1).numpy() == y).mean())
        with tempfile.TemporaryDirectory() as d:
            r = export_model(spec, res.model, np.asarray(feats.subset("train").x[:300]), d)
            g = quantize_graph(lower_model(res.model), np.asarray(feats.subset("train").x[:300]))
            out = run_tflm(r.tflite_path.read_bytes(), quantize_input(g, x), arena_bytes=r.arena_bytes)
        int8_acc = float((out.argmax(1) == y).mean())
        name = next((a for a in ARCHS if spec_for_dataset(a, ds) == spec), "sampled")
        rows.append(
            [
                name,
                f"{float_acc:.4f}",
                f"{int8_acc:.4f}",
                f"{100 * (int8_acc - float_acc):+.2f}",
                r.tflite_bytes,
                r.arena_bytes,
                r.analytic_ram_bytes,
                f"{100 * r.parity_within_1:.1f}%",
                "`" + spec.to_str()[:60].replace("|", "\\|") + "…`" if name == "sampled" else "",
            ]
        )
    body = (
        f"Trained {cfg.epochs} epochs on synth-kws, calibrated on 300 training clips (min/max), evaluated on "
        "the whole test split by the TFLM host interpreter (`tflite_micro.runtime`).\n\n"
        + markdown_table(
            [
                "model",
                "float acc",
                "TFLM int8 acc",
                "Δ points",
                "flatbuffer B",
                "TFLM arena B",
                "analytic RAM B",
                "TFLM = sim (±1 LSB)",
                "spec",
            ],
            rows,
        )
    )
    write_section("export", "int8 export: accuracy on TFLM and memory", "audio-nas bench export", body)
