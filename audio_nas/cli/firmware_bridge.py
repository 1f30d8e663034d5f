"""``audio-nas device ping|emulate|build|flash|qemu``."""

from __future__ import annotations

import time

import typer

device_app = typer.Typer(
    help="Talk to a board (or the emulated board) over the serial protocol.", no_args_is_help=True
)


@device_app.command("ping")
def ping(port: str = typer.Option(..., "--port", help="Serial port, socket://HOST:PORT or loop://.")) -> None:
    """Connect, then print the board's name, version and model info."""
    from audio_nas.firmware_bridge.client import DeviceClient

    with DeviceClient(port) as c:
        typer.echo(f"name: {c.name()}")
        for line in c.command("version").lines + c.command("model", "info").lines:
            typer.echo(line)


def _serve(seconds: float | None, alive=lambda: True) -> bool:
    """Keep a served board up for ``seconds`` (None: until Ctrl-C); False when it died first."""
    t0 = time.monotonic()
    try:
        while seconds is None or time.monotonic() - t0 < seconds:
            if not alive():
                return False
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    return True


@device_app.command("emulate")
def emulate(
    board: str = typer.Option(
        "mps2-an386", "--board", help="Board profile for the emulated clock and cycle model."
    ),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this long (default: until Ctrl-C)."),
) -> None:
    """Serve the protocol on a local socket with the TFLM host interpreter behind it."""
    from audio_nas.firmware_bridge.emulator import EmulatedDevice

    with EmulatedDevice(board) as dev:
        typer.echo(f"emulated {board} listening at socket://127.0.0.1:{dev.port}")
        _serve(seconds)


@device_app.command("build")
def build(
    board: str = typer.Option(
        "mps2-an386", "--board", help="mps2-an386 (CMake, QEMU), nano33ble or pico (PlatformIO)."
    ),
    tflm_dir: str = typer.Option(
        None,
        "--tflm-dir",
        envvar="TFLM_DIR",
        help="A TFLM tree (create_tflm_tree.py output); without it: no inference (mps2-an386).",
    ),
    fetch_tflm: bool = typer.Option(
        False, "--fetch-tflm", help="Let CMake fetch the pinned TFLM (needs internet)."
    ),
) -> None:
    """Build the firmware image for a board (``make firmware BOARD=...``)."""
    from audio_nas.firmware_bridge.build import build_board

    out = build_board(board, tflm_dir=tflm_dir or None, fetch_tflm=fetch_tflm)
    typer.echo(
        f"built {out}"
        + (
            ""
            if tflm_dir or fetch_tflm or board != "mps2-an386"
            else " (without TFLM: every command but inference; set TFLM_DIR for inference)"
        )
    )


@device_app.command("flash")
def flash(
    board: str = typer.Option(
        ..., "--board", help="nano33ble or pico (mps2-an386 is emulated: see device qemu)."
    ),
    port: str = typer.Option(None, "--port", help="The board's serial port, e.g. /dev/ttyACM0."),
) -> None:
    """Upload the firmware to a board (``make flash BOARD=... PORT=...``)."""
    from audio_nas.firmware_bridge.build import flash_board

    typer.echo(flash_board(board, port))


@device_app.command("qemu")
def qemu(
    elf: str = typer.Option("build/firmware-mps2-an386/firmware.elf", "--elf", help="The mps2-an386 image."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this long (default: until Ctrl-C)."),
) -> None:
    """Run the firmware on an emulated Cortex-M4 (QEMU mps2-an386) and print its socket:// URL."""
    from audio_nas.firmware_bridge.qemu import QemuBoard

    with QemuBoard(elf) as board:
        typer.echo(f"mps2-an386 (QEMU) running {elf}, UART0 at {board.url}")
        if not _serve(seconds, alive=lambda: board.proc.poll() is None):
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(device_app, name="device")
