"""The firmware's protocol core, built on the host with sanitizers: unit tests, 100k-frame fuzz, Cortex-M4 build."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "firmware"
FLAGS = ["-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         f"-I{ROOT / 'src'}", f"-I{ROOT / 'tests'}"]
SOURCES = ["src/protocol/protocol.cc", "src/app/recognizer.cc", "src/frontend/fixed_frontend.cc"]


def build(tmp_path: Path, test: str) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed: the firmware host tests cannot be built (apt-get install g++)")
    exe = tmp_path / test
    subprocess.run(["g++", *FLAGS, *(str(ROOT / p) for p in SOURCES), str(ROOT / f"tests/{test}.cc"), "-o", str(exe)],
                   check=True)
    return exe


def test_protocol_core_unit_tests(tmp_path):
    out = subprocess.run([str(build(tmp_path, "test_protocol"))], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "firmware: 129 passed, 0 failed" in out.stdout


def test_command_parser_survives_100k_fuzzed_frames(tmp_path):
    out = subprocess.run([str(build(tmp_path, "fuzz_protocol")), "100000"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fuzz: 100000 frames" in out.stdout and " 0 failed" in out.stdout
    assert int(out.stdout.split("fuzz: ")[2].split()[0]) > 0  # engine invocations: the deep states were reached


def test_protocol_core_cross_compiles_for_cortex_m4(tmp_path):
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ is not installed (apt-get install gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib)")
    subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-std=c++17",
                    "-O2", "-Wall", "-Werror", "-fno-exceptions", f"-I{ROOT / 'src'}", "-c",
                    str(ROOT / "src/protocol/protocol.cc"), "-o", str(tmp_path / "p.o")], check=True)
    # (the whole mps2-an386 image is built and run in QEMU by tests/firmware/test_qemu.py)
    assert (tmp_path / "p.o").stat().st_size > 0


def test_arduino_port_compiles_for_cortex_m4(tmp_path):
    """boards/arduino/main.cpp against our headers and a declared-only Arduino API (the real core is PlatformIO's)."""
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ is not installed")
    from audio_nas.features.config import FrontEndConfig
    from audio_nas.features.fixed_point import make_tables, write_c_header

    write_c_header(make_tables(FrontEndConfig()), tmp_path / "frontend_tables.h")
    for defs in (["-DAUDIO_NAS_HAS_DWT=1", "-DAUDIO_NAS_CLOCK_HZ=64000000"], ["-DAUDIO_NAS_CLOCK_HZ=133000000"]):
        subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-std=c++17", "-O2", "-Wall", "-Werror",
                        "-fno-exceptions", f"-I{ROOT / 'src'}", f"-I{ROOT / 'tests/arduino_stub'}", f"-I{tmp_path}",
                        '-DAUDIO_NAS_BOARD_NAME="nano33ble"', "-DAUDIO_NAS_MARKER_PIN=2", "-DAUDIO_NAS_MODEL_BYTES=131072",
                        "-DAUDIO_NAS_ARENA_BYTES=98304", *defs, "-c", str(ROOT / "boards/arduino/main.cpp"),
                        "-o", str(tmp_path / "main.o")], check=True)
        assert (tmp_path / "main.o").stat().st_size > 0
