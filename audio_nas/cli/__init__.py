"""The ``audio-nas`` command. Parsing only: every area's commands live in ``audio_nas/cli/<area>.py``,
which exposes ``register(app: typer.Typer) -> None``.

The CLI is the top layer (docs/architecture.md): it imports typer and the standard library at module
level and the project's modules inside each command, so ``audio-nas --help`` starts in well under 1 s.

Areas are listed in ``CLI_AREAS`` (a registry, not an if/elif chain). Errors that
are the user's to fix (``AudioNasError``) are printed as one clear line and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from audio_nas.errors import AudioNasError

CLI_AREAS: tuple[str, ...] = (
    "data",
    "datafree",
    "features",
    "training",
    "export",
    "firmware_bridge",
    "energy",
    "search",
    "streaming",
    "bench",
)

app = typer.Typer(
    name="audio-nas",
    help="Hardware-aware NAS for always-on audio classifiers on microcontrollers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _register_areas() -> None:
    for area in CLI_AREAS:
        module_name = f"audio_nas.cli.{area}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # area has no commands yet
                continue
            raise
        module.register(app)


_register_areas()


def main() -> None:
    if os.environ.get("AUDIO_NAS_RETAIN_HEAP", "1") != "0":  # 0: glibc's defaults (to compare, or save RAM)
        from audio_nas.heap import retain_freed_memory

        retain_freed_memory()  # data-free inversion 1.5x, mixture labelling 3x faster (audio_nas/heap.py)
    threads = os.environ.get("AUDIO_NAS_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    try:
        app()
    except AudioNasError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
