"""CLI start-up benchmark: wall time of ``audio-nas --help`` and of every ``audio-nas COMMAND --help``.

Each command runs in a fresh interpreter (as a user types it), 5 times; the table gives the median and the
worst. The target is < 1 s on the 2-core reference machine: the CLI layer imports only typer at start-up and
each command's modules when it runs (audio_nas/cli/__init__.py).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from audio_nas.bench.report import markdown_table, write_section

TARGET_S = 1.0


def _commands() -> list[list[str]]:
    from audio_nas.cli import app  # the registered commands and groups, as typer sees them

    names = sorted(
        {c.name for c in app.registered_commands if c.name}
        | {g.name for g in app.registered_groups if g.name}
    )
    return [[], *([n] for n in names)]


def _entry_point() -> list[str]:
    """The installed ``audio-nas`` script beside this interpreter (or on PATH), else ``python -m``."""
    beside = Path(sys.executable).with_name("audio-nas")
    exe = str(beside) if beside.exists() else shutil.which("audio-nas")
    return [exe] if exe else [sys.executable, "-m", "audio_nas.cli"]


def time_help(args: list[str], repeats: int = 5) -> list[float]:
    """Wall seconds of ``audio-nas ARGS --help`` in a fresh process, ``repeats`` times."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([*_entry_point(), *args, "--help"], check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def run_bench(quick: bool = False) -> None:
    repeats = 2 if quick else 5
    rows = []
    for args in _commands():
        times = time_help(args, repeats)
        worst = max(times)
        rows.append(
            [
                " ".join(["audio-nas", *args, "--help"]),
                f"{statistics.median(times):.2f}",
                f"{worst:.2f}",
                "yes" if worst < TARGET_S else "NO",
            ]
        )
    body = markdown_table(["command", "median s", "worst s", f"< {TARGET_S:g} s"], rows)
    write_section("cli", "CLI start-up", "audio-nas bench cli" + (" --quick" if quick else ""), body)
