"""``audio-nas export``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint directory written by `audio-nas train`."),
        out: Path = typer.Option(..., "--out", help="Output directory."),
        calibration: str = typer.Option("minmax", "--calibration", help="minmax or percentile."),
        calib_samples: int = typer.Option(200, "--calib-samples", help="Training examples used for calibration."),
    ) -> None:
        """Quantise to int8, write model.tflite + model_data.cc/.h + ops.h + summary.json, verify on TFLM."""
        from audio_nas.data import load_dataset
        from audio_nas.export import export_model
        from audio_nas.features import compute_features
        from audio_nas.training import load_checkpoint

        spec, model, meta = load_checkpoint(checkpoint)
        dataset = meta.get("metrics", {}).get("dataset", "synth-kws")
        feats = compute_features(load_dataset(dataset), spec.frontend)
        calib = feats.subset("train").x[:calib_samples]
        r = export_model(spec, model, calib, out, calibration=calibration)
        rows = [("model.tflite", f"{r.tflite_bytes} B"), ("TFLM arena", f"{r.arena_bytes} B"),
                ("analytic peak RAM", f"{r.analytic_ram_bytes} B"), ("ops", ", ".join(r.ops)),
                ("input quant", f"scale {r.input_scale:.6g}, zero point {r.input_zero_point}"),
                ("output quant", f"scale {r.output_scale:.6g}, zero point {r.output_zero_point}"),
                ("TFLM = int8 simulation", f"{100 * r.parity_exact:.1f}% exact, {100 * r.parity_within_1:.1f}% within 1 LSB")]
        for k, v in rows:
            typer.echo(f"{k:<24} {v}")
        typer.echo(f"{'op':<32} {'kind':<18} MACs")
        for name, kind, macs in r.per_op_macs:
            typer.echo(f"{name:<32} {kind:<18} {macs}")
        typer.echo(f"written to {out}")
