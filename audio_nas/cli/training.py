"""``audio-nas train``."""

from __future__ import annotations

from pathlib import Path

import typer

from audio_nas.cli.options import OnError, on_error_option, on_error_value


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        arch: str = typer.Option(
            ..., "--arch", help="A preset name (e.g. ds_cnn_s, mobilenet_v2_x0.35) or a spec string."
        ),
        dataset: str = typer.Option(
            "synth-kws",
            "--dataset",
            help="synth-kws, synth-events, speech-commands:PATH, esc50:PATH, folder:PATH, csv:PATH.",
        ),
        out: Path = typer.Option(None, "--out", help="Checkpoint directory (default runs/train/<arch>)."),
        config: Path = typer.Option(None, "--config", help="YAML file with TrainConfig fields."),
        epochs: int = typer.Option(None, "--epochs", help="Override the number of epochs."),
        seed: int = typer.Option(None, "--seed", help="Override the seed."),
        qat: bool = typer.Option(False, "--qat", help="Quantisation-aware fine-tuning in the last epochs."),
        device: str = typer.Option(None, "--device", help="cpu, cuda or auto."),
        on_error: OnError = on_error_option(),
    ) -> None:
        """Train one architecture, evaluate it on the test split and save a checkpoint."""
        from audio_nas.config import from_dict, load_yaml, to_dict
        from audio_nas.paths import runs_dir
        from audio_nas.training.config import TrainConfig
        from audio_nas.training.pipeline import train_and_save

        base = load_yaml(TrainConfig, config) if config else TrainConfig()
        overrides = {
            k: v for k, v in {"epochs": epochs, "seed": seed, "device": device}.items() if v is not None
        }
        if qat:
            overrides["qat"] = True
        cfg = from_dict(TrainConfig, {**to_dict(base), **overrides})
        out_dir = out or runs_dir() / "train" / arch.replace("/", "_")[:60]
        spec, result, path = train_and_save(arch, dataset, out_dir, cfg, on_error=on_error_value(on_error))
        typer.echo(f"spec:            {spec.to_str()}")
        typer.echo(
            f"val accuracy:    {result.val_accuracy:.4f} (best epoch "
            f"{result.best_epoch + 1}/{result.epochs_run})"
        )
        typer.echo(f"test accuracy:   {result.test_accuracy:.4f}")
        worst = sorted(result.per_class_accuracy.items(), key=lambda kv: kv[1])[:3]
        typer.echo("weakest classes: " + ", ".join(f"{k} {v:.2f}" for k, v in worst))
        typer.echo(f"train time:      {result.train_time_s:.1f} s ({result.samples_per_s:.0f} samples/s)")
        typer.echo(f"checkpoint:      {path}")
