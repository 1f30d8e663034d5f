"""Where data, caches and runs live. Root: ``$AUDIO_NAS_HOME`` or the current directory."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("AUDIO_NAS_HOME", ".")).resolve()


def data_dir() -> Path:
    return home() / "data"


def cache_dir() -> Path:
    return home() / "cache"


def runs_dir() -> Path:
    return home() / "runs"


def progress_enabled() -> bool:
    """Progress bars only for a person watching: off when AUDIO_NAS_NO_PROGRESS=1 or stderr is no TTY."""
    import sys

    if os.environ.get("AUDIO_NAS_NO_PROGRESS") == "1":
        return False
    return sys.stderr.isatty()
