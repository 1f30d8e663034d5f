"""``audio-nas bench AREA|all``: run the benchmarks, each writing its section of docs/benchmarks.md;
``audio-nas bench table build|info``: the table of trained architectures (audio_nas/bench/table.py).

Benchmarks are entry points, like the CLI: ``audio_nas/bench/<area>.py`` with a function
``run_bench(quick: bool)``; this module is only their registry.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import typer
from typer.core import TyperGroup

from audio_nas.errors import ConfigError

# Order matters for `all`: data before features before training, and so on.
BENCH_AREAS: tuple[str, ...] = (
    "cli",
    "data",
    "features",
    "training",
    "export",
    "arena",
    "quant",
    "firmware_bridge",
    "energy",
    "search",
    "pruning",
    "streaming",
)


def _available() -> list[str]:
    found = []
    for area in BENCH_AREAS:
        try:
            importlib.import_module(f"audio_nas.bench.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"audio_nas.bench.{area}":
                continue
            raise
        found.append(area)
    return found


class _BenchGroup(TyperGroup):
    """``bench table ...`` is a sub-command group; any other first word is a benchmark area (or ``all``)."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "area", self.commands["area"], args
        return super().resolve_command(ctx, args)


def _run_areas(area: str, quick: bool) -> None:
    available = _available()
    if area != "all" and area not in available:
        raise ConfigError(f"unknown benchmark {area!r}; available: all, {', '.join(available)}, table")
    for name in available if area == "all" else [area]:
        typer.echo(f"== bench {name}")
        importlib.import_module(f"audio_nas.bench.{name}").run_bench(quick=quick)


def register(app: typer.Typer) -> None:
    bench_app = typer.Typer(
        cls=_BenchGroup,
        invoke_without_command=True,
        no_args_is_help=False,
        help=f"Run benchmarks (AREA: all, {', '.join(BENCH_AREAS)}) and write the results to "
        "docs/benchmarks.md: `audio-nas bench AREA [--quick]`. `audio-nas bench table build|info`: "
        "the table of trained architectures.",
    )

    @bench_app.callback()
    def bench(
        ctx: typer.Context,
        quick: bool = typer.Option(False, help="Smaller sizes, for a smoke run."),
    ) -> None:
        if ctx.invoked_subcommand is None:
            _run_areas("all", quick)

    @bench_app.command("area", hidden=True)
    def area(
        ctx: typer.Context,
        area: str = typer.Argument("all", help=f"One of: all, {', '.join(BENCH_AREAS)}"),
        quick: bool = typer.Option(False, help="Smaller sizes, for a smoke run."),
    ) -> None:
        """Run benchmarks and write the results to docs/benchmarks.md."""
        _run_areas(area, quick or bool(ctx.parent and ctx.parent.params.get("quick")))

    table_app = typer.Typer(
        no_args_is_help=True, help="The table of trained architectures (build, info, surrogate)."
    )

    @table_app.command("build")
    def table_build(
        dataset: str = typer.Option("synth-kws", "--dataset", help="Dataset name."),
        count: int = typer.Option(1000, "--count", help="Sampled architectures (the presets come on top)."),
        seeds_for: int = typer.Option(100, "--seeds-for", help="Architectures also trained with seed 1."),
        workers: int = typer.Option(1, "--workers", help="Worker processes."),
        out: Path = typer.Option(
            Path("datasets/nas-table/synth-kws.csv.gz"), "--out", help="Table CSV (.csv.gz or .csv)."
        ),
        device: str = typer.Option(None, "--device", help="cpu, cuda or auto (default: the recipe's)."),
        config: Path = typer.Option(None, "--config", help="Search config whose train: is the recipe."),
        epochs: int = typer.Option(None, "--epochs", help="Override the recipe's epochs (smoke tests)."),
        no_presets: bool = typer.Option(False, "--no-presets", help="Leave the presets out."),
        limit: int = typer.Option(None, "--limit", help="Stop after this many new rows."),
        min_macs: int = typer.Option(None, "--min-macs", help="Train only rows with at least these MACs."),
        max_macs: int = typer.Option(None, "--max-macs", help="Train only rows with at most these MACs."),
    ) -> None:
        """Train a stratified sample of the space (resumable; one progress line per row)."""
        from audio_nas.bench import table

        table.build(
            dataset=dataset,
            count=count,
            seeds_for=seeds_for,
            workers=workers,
            out=out,
            device=device,
            config=config or table.DEFAULT_CONFIG,
            epochs=epochs,
            presets=() if no_presets else None,
            limit=limit,
            min_macs=min_macs,
            max_macs=max_macs,
            echo=lambda line: typer.echo(line),
        )

    @table_app.command("info")
    def table_info(
        path: Path = typer.Argument(..., help="A table (.csv.gz, .csv) or its .work.jsonl."),
    ) -> None:
        """Counts, coverage per block type and MAC decile, and the seed-noise floor."""
        from audio_nas.bench import table

        table.info(path, echo=lambda line: typer.echo(line))

    @table_app.command("surrogate")
    def table_surrogate(
        path: Path = typer.Argument(..., help="A table (.csv.gz, .csv) or its .work.jsonl."),
        folds: int = typer.Option(5, "--folds", help="Cross-validation folds (by architecture)."),
        fractions: list[float] = typer.Option(
            [],
            "--train-fraction",
            help="Also fit on this share of each fold's training architectures (repeatable): how held-out "
            "tau grows with the table's size.",
        ),
    ) -> None:
        """Held-out fidelity of the learning-curve surrogate (evaluator: surrogate) fitted on a table."""
        import json

        from audio_nas.search.surrogate import cross_validate
        from audio_nas.search.table import read_table

        rows = read_table(path)
        full = cross_validate(rows, folds=folds)
        if fractions:
            full["by_train_fraction"] = [
                {
                    k: v
                    for k, v in cross_validate(rows, folds=folds, train_fraction=f).items()
                    if k
                    in ("train_fraction", "train_rows_per_fold", "kendall_tau", "kendall_tau_per_fold", "mae")
                }
                for f in sorted(fractions)
            ]
        typer.echo(json.dumps(full, indent=1))

    bench_app.add_typer(table_app, name="table")
    app.add_typer(bench_app, name="bench")
