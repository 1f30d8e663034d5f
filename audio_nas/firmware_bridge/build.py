"""Build and flash the firmware (firmware/): CMake + arm-none-eabi-gcc for QEMU's mps2-an386, PlatformIO for
the Arduino Nano 33 BLE Sense and the Raspberry Pi Pico. ``make firmware BOARD=...`` / ``make flash`` call
these.

Generated headers (the fixed-point front-end tables and the TFLM op resolver) come from the same Python code
the host uses, so the firmware's front-end is bit-exact with audio_nas.features.fixed_point.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from audio_nas.errors import DeviceError
from audio_nas.export.c_array import main as ops_main
from audio_nas.features.fixed_point import main as tables_main

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
APT_HINT = "apt-get install cmake gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"
CMAKE_BOARDS = ("mps2-an386",)
PLATFORMIO_BOARDS = {
    "nano33ble": "Arduino Nano 33 BLE Sense (nRF52840)",
    "pico": "Raspberry Pi Pico (RP2040)",
}
BOARDS = (*CMAKE_BOARDS, *PLATFORMIO_BOARDS)


def tflm_build_dir(root: str | Path, tflm_dir: str | Path | None) -> Path:
    """Where the mps2-an386 image for a TFLM tree is built: apart per kernel kind (a CMSIS-NN tree has
    third_party/cmsis_nn), so switching trees does not rebuild TFLM from scratch."""
    if not tflm_dir:
        return Path(root) / "build" / "firmware-mps2-an386"
    cmsis = (Path(tflm_dir) / "third_party" / "cmsis_nn").is_dir()
    return Path(root) / "build" / ("fw-cmsis" if cmsis else "fw-tflm")


def missing_tools() -> list[str]:
    """Tools the mps2-an386 build and run need that are not on PATH."""
    return [t for t in ("cmake", "arm-none-eabi-g++", "qemu-system-arm") if shutil.which(t) is None]


def _run(cmd: list[str], quiet: bool, what: str, cwd: Path | None = None) -> None:
    out = subprocess.run(cmd, capture_output=quiet, text=True, cwd=cwd)
    if out.returncode != 0:
        tail = ((out.stdout or "") + (out.stderr or ""))[-3000:] if quiet else "(output above)"
        raise DeviceError(f"{what} failed ({' '.join(cmd[:4])} ...):\n{tail}")


def build_firmware(
    build_dir: str | Path,
    *,
    tflm_dir: str | Path | None = None,
    fetch_tflm: bool = False,
    model_dir: str | Path | None = None,
    quiet: bool = True,
) -> Path:
    """Configure and build the mps2-an386 image; returns the ELF path. Incremental when build_dir exists.

    ``tflm_dir``: a TFLM tree (create_tflm_tree.py output) for inference; ``fetch_tflm``: let CMake fetch the
    pinned revision (internet); ``model_dir``: an `audio-nas export` directory compiled in (ops exactly
    its own).
    """
    tools = [t for t in ("cmake", "arm-none-eabi-g++") if shutil.which(t) is None]
    if tools:
        raise DeviceError(f"cannot build the firmware: {', '.join(tools)} not found ({APT_HINT})")
    if tflm_dir and not (Path(tflm_dir) / "tensorflow/lite/micro/micro_interpreter.h").exists():
        raise DeviceError(
            f"TFLM_DIR={tflm_dir} is not a TFLM tree: make one with tflite-micro's "
            f"tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py (firmware/README.md)"
        )
    if model_dir and not (Path(model_dir) / "model_data.cc").exists():
        raise DeviceError(f"{model_dir} has no model_data.cc: export the model with `audio-nas export` first")
    build_dir = Path(build_dir)
    args = [
        "cmake",
        "-S",
        str(FIRMWARE_DIR),
        "-B",
        str(build_dir),
        f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE_DIR / 'cmake/arm-none-eabi.cmake'}",
        f"-DAUDIO_NAS_PYTHON={sys.executable}",
        f"-DTFLM_DIR={Path(tflm_dir).resolve() if tflm_dir else ''}",
        f"-DFETCH_TFLM={'ON' if fetch_tflm else 'OFF'}",
        f"-DMODEL_DIR={Path(model_dir).resolve() if model_dir else ''}",
    ]
    if shutil.which("ninja") and not (build_dir / "Makefile").exists():
        args += ["-G", "Ninja"]
    _run(args, quiet, "firmware configure")
    _run(["cmake", "--build", str(build_dir), "--parallel"], quiet, "firmware build")
    return build_dir / "firmware.elf"


def write_generated_headers(out_dir: str | Path, frontend_yaml: str | Path | None = None) -> list[Path]:
    """frontend_tables.h and ops.h (every op audio-nas exports) for the PlatformIO builds."""

    out_dir = Path(out_dir)
    tables_main([str(out_dir / "frontend_tables.h"), *([str(frontend_yaml)] if frontend_yaml else [])])
    ops_main(["--all-ops", str(out_dir / "ops.h")])
    return [out_dir / "frontend_tables.h", out_dir / "ops.h"]


def _pio() -> str:
    pio = shutil.which("pio") or shutil.which("platformio")
    if pio is None:
        raise DeviceError(
            "PlatformIO is not installed: `pip install platformio` (it downloads the board's toolchain "
            "and the pinned TFLM Arduino library on first use, so it needs internet once)"
        )
    return pio


def build_board(
    board: str,
    *,
    build_dir: str | Path = "build",
    tflm_dir: str | Path | None = None,
    fetch_tflm: bool = False,
    quiet: bool = False,
) -> Path:
    """``make firmware BOARD=...``: returns the image path (ELF for mps2-an386, the PlatformIO build dir
    otherwise)."""
    if board in CMAKE_BOARDS:
        return build_firmware(
            Path(build_dir) / f"firmware-{board}", tflm_dir=tflm_dir, fetch_tflm=fetch_tflm, quiet=quiet
        )
    if board not in PLATFORMIO_BOARDS:
        raise DeviceError(f"unknown board {board!r}: choose one of {', '.join(BOARDS)}")
    write_generated_headers(FIRMWARE_DIR / "build" / "generated")
    _run([_pio(), "run", "-d", str(FIRMWARE_DIR), "-e", board], quiet, f"PlatformIO build for {board}")
    return FIRMWARE_DIR / ".pio" / "build" / board


def flash_board(board: str, port: str | None) -> str:
    """``make flash BOARD=... PORT=...``: uploads the image; for mps2-an386 says how to start the emulated
    board."""
    if board in CMAKE_BOARDS:
        return (
            "mps2-an386 is emulated: nothing to flash. Start it with `audio-nas device qemu` and use the "
            "socket:// URL it prints as PORT."
        )
    if board not in PLATFORMIO_BOARDS:
        raise DeviceError(f"unknown board {board!r}: choose one of {', '.join(BOARDS)}")
    if not port:
        from serial.tools import list_ports

        ports = ", ".join(p.device for p in list_ports.comports()) or "none found"
        raise DeviceError(f"flashing {board} needs PORT=... (serial ports here: {ports})")
    build_board(board)
    _run(
        [_pio(), "run", "-d", str(FIRMWARE_DIR), "-e", board, "-t", "upload", "--upload-port", port],
        False,
        f"upload to {board} on {port}",
    )
    return (
        f"flashed {PLATFORMIO_BOARDS[board]} on {port}; check it with `audio-nas device ping --port {port}`"
    )
