"""``audio-nas search`` and ``audio-nas search-report``."""

from __future__ import annotations

from pathlib import Path

import typer

from audio_nas.cli.options import OnError, on_error_option, on_error_value

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "search" / "configs" / "default.yaml"


def _stream_eval():
    """The streaming-results hook of the report (streaming sits above search in the layers)."""
    from audio_nas.streaming.search_eval import evaluate_front

    return evaluate_front


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="Search config YAML."),
        name: str = typer.Option(None, "--name", help="Run name (directory runs/<name>)."),
        workers: int = typer.Option(None, "--workers", help="Parallel trials (default from the config)."),
        executor: str = typer.Option(None, "--executor", help="local or ray."),
        address: str = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
        budget: int = typer.Option(None, "--budget", help="Number of trials (overrides n_trials)."),
        run_dir: Path = typer.Option(None, "--run-dir", help="Run directory (default runs/<name>)."),
        on_error: OnError = on_error_option(None, " Default: the config's on_error (raise)."),
    ) -> None:
        """Run (or resume) a hardware-aware search and write the report, plots and Pareto models."""
        from audio_nas.config import from_dict, load_yaml, to_dict
        from audio_nas.search.config import SearchConfig
        from audio_nas.search.report import write_report
        from audio_nas.search.runner import SearchRunner

        cfg = load_yaml(SearchConfig, config)
        overrides = {
            k: v
            for k, v in {
                "name": name,
                "workers": workers,
                "executor": executor,
                "ray_address": address,
                "n_trials": budget,
                "on_error": on_error_value(on_error),
            }.items()
            if v is not None
        }
        cfg = from_dict(SearchConfig, {**to_dict(cfg), **overrides})
        from audio_nas.paths import runs_dir

        runner = SearchRunner(cfg, run_dir or runs_dir() / cfg.name)
        result = runner.run()
        typer.echo(
            f"{result.n_finished} trials finished in {result.wall_s:.0f} s; Pareto front "
            f"{len(result.pareto_ids)} models; hypervolume {result.hypervolume:.4f}"
        )
        report = write_report(runner, stream_eval=_stream_eval())
        typer.echo(f"report: {report}  (also report.html, pareto.csv, pareto.png in {runner.run_dir})")

    @app.command("search-report")
    def search_report(
        run_dir: Path = typer.Argument(..., help="A run directory (runs/<name>)."),
        no_export: bool = typer.Option(False, "--no-export", help="Do not export Pareto models."),
    ) -> None:
        """Rewrite the report of an existing run from its study database."""
        from audio_nas.config import from_dict
        from audio_nas.errors import SearchError
        from audio_nas.search.config import SearchConfig
        from audio_nas.search.report import write_report
        from audio_nas.search.runner import SearchRunner
        from audio_nas.search.store import TrialStore

        if not (run_dir / "study.sqlite").exists():
            raise SearchError(f"{run_dir} has no study.sqlite; run `audio-nas search` first")
        cfg = from_dict(SearchConfig, TrialStore(run_dir / "study.sqlite").get_meta("config"))
        export = False if no_export else None
        report = write_report(SearchRunner(cfg, run_dir), export=export, stream_eval=_stream_eval())
        typer.echo(f"report: {report}")
