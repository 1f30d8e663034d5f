"""Write benchmark results into docs/benchmarks.md, one section per benchmark.

Each benchmark owns the text between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; re-running it replaces only its own section, so
benchmarks run by different commands never overwrite each other.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEvery section is written by the command it names; re-run it to refresh.\n"


def machine_description() -> str:
    """One line naming the machine a benchmark ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
                break
    except OSError:
        pass
    import torch  # local import: only benchmarks need this line

    return (
        f"{os.cpu_count()} cores ({cpu}){mem_gib}, Python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), {platform.system()} {platform.release()}"
    )


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(name: str, title: str, command: str, body_md: str, path: Path | None = None) -> Path:
    """Replace (or append) benchmark section ``name`` in docs/benchmarks.md."""
    path = Path(path or os.environ.get("AUDIO_NAS_BENCH_FILE", DEFAULT_PATH))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- command: `{command}`\n- machine: {machine_description()}\n"
        f"- when: {stamp}, commit {_git_rev()}\n\n{body_md.strip()}\n<!-- /bench:{name} -->"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    return path


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)
