"""``audio-nas export``."""

from __future__ import annotations

from pathlib import Path

import typer

from audio_nas.cli.options import OnError, on_error_option, on_error_value


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        checkpoint: Path = typer.Option(
            ..., "--checkpoint", help="Checkpoint directory written by `audio-nas train`."
        ),
        out: Path = typer.Option(..., "--out", help="Output directory."),
        calibration: str = typer.Option("minmax", "--calibration", help="minmax or percentile."),
        calib_samples: int = typer.Option(
            200, "--calib-samples", help="Training examples used for calibration."
        ),
        evaluate: bool = typer.Option(
            False, "--evaluate", help="Also compare float and TFLM int8 accuracy on the test split."
        ),
        on_error: OnError = on_error_option(
            extra_help=" Applies to the dataset the checkpoint was trained on (calibration, --evaluate)."
        ),
    ) -> None:
        """Quantise to int8, write model.tflite + model_data.cc/.h + ops.h + summary.json, verify on TFLM."""
        from audio_nas.data import load_dataset
        from audio_nas.export import export_model
        from audio_nas.features import compute_features
        from audio_nas.training import load_checkpoint

        spec, model, meta = load_checkpoint(checkpoint)
        dataset = meta.get("metrics", {}).get("dataset", "synth-kws")
        feats = compute_features(load_dataset(dataset, on_error=on_error_value(on_error)), spec.frontend)
        calib = feats.subset("train").x[:calib_samples]
        r = export_model(spec, model, calib, out, calibration=calibration)
        rows = [
            ("model.tflite", f"{r.tflite_bytes} B"),
            ("TFLM arena", f"{r.arena_bytes} B"),
            ("analytic peak RAM", f"{r.analytic_ram_bytes} B"),
            ("ops", ", ".join(r.ops)),
            ("input quant", f"scale {r.input_scale:.6g}, zero point {r.input_zero_point}"),
            ("output quant", f"scale {r.output_scale:.6g}, zero point {r.output_zero_point}"),
            (
                "TFLM = int8 simulation",
                f"{100 * r.parity_exact:.1f}% exact, {100 * r.parity_within_1:.1f}% within 1 LSB",
            ),
        ]
        for k, v in rows:
            typer.echo(f"{k:<24} {v}")
        typer.echo(f"{'op':<32} {'kind':<18} MACs")
        for name, kind, macs in r.per_op_macs:
            typer.echo(f"{name:<32} {kind:<18} {macs}")
        if evaluate:
            import numpy as np
            import torch

            from audio_nas.export import run_tflm
            from audio_nas.export.graph import lower_model
            from audio_nas.export.quantize import quantize_graph, quantize_input

            test = feats.subset("test")
            x, y = np.asarray(test.x), test.labels
            with torch.no_grad():
                float_acc = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
            g = quantize_graph(lower_model(model), np.asarray(calib), calibration=calibration)
            out_q = run_tflm(r.tflite_path.read_bytes(), quantize_input(g, x), arena_bytes=r.arena_bytes)
            int8_acc = float((out_q.argmax(1) == y).mean())
            typer.echo(
                f"test accuracy: float {float_acc:.4f}, TFLM int8 {int8_acc:.4f} "
                f"({100 * (int8_acc - float_acc):+.2f} points, {len(y)} clips)"
            )
        typer.echo(f"written to {out}")
