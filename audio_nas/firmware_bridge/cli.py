"""``audio-nas device ping|emulate``."""

from __future__ import annotations

import time

import typer

device_app = typer.Typer(help="Talk to a board (or the emulated board) over the serial protocol.", no_args_is_help=True)


@device_app.command("ping")
def ping(port: str = typer.Option(..., "--port", help="Serial port, socket://HOST:PORT or loop://.")) -> None:
    """Connect, then print the board's name, version and model info."""
    from audio_nas.firmware_bridge.client import DeviceClient

    with DeviceClient(port) as c:
        typer.echo(f"name: {c.name()}")
        for line in c.command("version").lines + c.command("model", "info").lines:
            typer.echo(line)


@device_app.command("emulate")
def emulate(
    board: str = typer.Option("mps2-an386", "--board", help="Board profile for the emulated clock and cycle model."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this long (default: until Ctrl-C)."),
) -> None:
    """Serve the protocol on a local socket with the TFLM host interpreter behind it."""
    from audio_nas.firmware_bridge.emulator import EmulatedDevice

    with EmulatedDevice(board) as dev:
        typer.echo(f"emulated {board} listening at socket://127.0.0.1:{dev.port}")
        t0 = time.monotonic()
        try:
            while seconds is None or time.monotonic() - t0 < seconds:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.add_typer(device_app, name="device")
