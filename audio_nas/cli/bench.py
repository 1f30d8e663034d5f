"""``audio-nas bench AREA|all``: run the benchmarks, each writing its section of docs/benchmarks.md.

Benchmarks are entry points, like the CLI: ``audio_nas/bench/<area>.py`` with a function
``run_bench(quick: bool)``; this module is only their registry.
"""

from __future__ import annotations

import importlib

import typer

from audio_nas.errors import ConfigError

# Order matters for `all`: data before features before training, and so on.
BENCH_AREAS: tuple[str, ...] = (
    "cli",
    "data",
    "features",
    "training",
    "export",
    "quant",
    "firmware_bridge",
    "energy",
    "search",
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


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        area: str = typer.Argument("all", help=f"One of: all, {', '.join(BENCH_AREAS)}"),
        quick: bool = typer.Option(False, help="Smaller sizes, for a smoke run."),
    ) -> None:
        """Run benchmarks and write the results to docs/benchmarks.md."""
        available = _available()
        if area != "all" and area not in available:
            raise ConfigError(f"unknown benchmark {area!r}; available: all, {', '.join(available)}")
        for name in available if area == "all" else [area]:
            typer.echo(f"== bench {name}")
            importlib.import_module(f"audio_nas.bench.{name}").run_bench(quick=quick)
