"""Options shared by several commands (imported by the area modules; no commands here)."""

from __future__ import annotations

from enum import StrEnum

import typer


class OnError(StrEnum):
    """What a dataset load does with a bad audio file (``load_dataset(on_error=...)``)."""

    raise_ = "raise"
    skip = "skip"


ON_ERROR_HELP = (
    "Bad audio files (empty, truncated, undecodable, header disagreeing with the data): "
    "raise = stop with an error naming the file; skip = leave them out and warn once with the count."
)


def on_error_option(default: OnError | None = OnError.raise_, extra_help: str = ""):
    """``--on-error [raise|skip]`` for every command that loads a dataset."""
    return typer.Option(default, "--on-error", help=ON_ERROR_HELP + extra_help, case_sensitive=False)


def on_error_value(value: OnError | str | None) -> str | None:
    """The plain string the library takes ("raise" / "skip"), None when the option was not given."""
    return None if value is None else OnError(value).value
