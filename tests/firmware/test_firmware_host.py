"""The firmware on the host (sanitizers: unit tests, 100k-frame fuzz, the Arduino port), linked for boards.

No audio_nas import: the board images are built and measured by firmware/boards/measure_memory.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2] / "firmware"
FLAGS = [
    "-std=c++17",
    "-O1",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    f"-I{ROOT / 'src'}",
    f"-I{ROOT / 'tests'}",
]
SOURCES = ["src/protocol/protocol.cc", "src/app/recognizer.cc", "src/frontend/fixed_frontend.cc"]


def build(tmp_path: Path, test: str) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed: the firmware host tests cannot be built (apt-get install g++)")
    exe = tmp_path / test
    subprocess.run(
        ["g++", *FLAGS, *(str(ROOT / p) for p in SOURCES), str(ROOT / f"tests/{test}.cc"), "-o", str(exe)],
        check=True,
    )
    return exe


def test_protocol_core_unit_tests(tmp_path):
    out = subprocess.run([str(build(tmp_path, "test_protocol"))], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "firmware: 137 passed, 0 failed" in out.stdout


def test_command_parser_survives_100k_fuzzed_frames(tmp_path):
    out = subprocess.run(
        [str(build(tmp_path, "fuzz_protocol")), "100000"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fuzz: 100000 frames" in out.stdout and " 0 failed" in out.stdout
    assert (
        int(out.stdout.split("fuzz: ")[2].split()[0]) > 0
    )  # engine invocations: the deep states were reached


def test_protocol_core_cross_compiles_for_cortex_m4(tmp_path):
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip(
            "arm-none-eabi-g++ is not installed "
            "(apt-get install gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib)"
        )
    subprocess.run(
        [
            "arm-none-eabi-g++",
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Werror",
            "-fno-exceptions",
            f"-I{ROOT / 'src'}",
            "-c",
            str(ROOT / "src/protocol/protocol.cc"),
            "-o",
            str(tmp_path / "p.o"),
        ],
        check=True,
    )
    # (the whole mps2-an386 image is built and run in QEMU by tests/firmware/test_qemu.py)
    assert (tmp_path / "p.o").stat().st_size > 0


BOARDS = ROOT.parent / "audio_nas/energy/boards"
MEASURE = ROOT / "boards/measure_memory.sh"
ARDUINO = {"nano33ble": "NANO33BLE", "pico": "PICO"}
PLAN_KEYS = (
    "stack_reserve_bytes",
    "core_ram_reserve_bytes",
    "upload_buffer_bytes",
    "arena_buffer_bytes",
    "input_buffer_bytes",
)


def need_arm() -> None:
    missing = [
        t for t in ("arm-none-eabi-g++", "arm-none-eabi-size", "arm-none-eabi-nm") if shutil.which(t) is None
    ]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (apt-get install gcc-arm-none-eabi binutils-arm-none-eabi "
            "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)"
        )


def figures(board: str) -> dict:
    """The board's firmware figures: firmware/boards/board_memory.yaml, and the same keys in the board profile
    (audio_nas/energy/boards/BOARD.yaml) where it carries them; both must agree."""
    fw = yaml.safe_load((ROOT / "boards/board_memory.yaml").read_text())[board]
    profile = yaml.safe_load((BOARDS / f"{board}.yaml").read_text())
    for k in fw:
        if k in profile:
            assert profile[k] == fw[k], (
                f"{board}: {k} is {profile[k]} in the profile, {fw[k]} in board_memory.yaml"
            )
    return {**profile, **fw}


def measure(board: str, out: Path, extra_defs: str = "") -> subprocess.CompletedProcess:
    """firmware/boards/measure_memory.sh (bash, arm-none-eabi-size/nm): builds, prints key=value lines."""
    need_arm()
    if board in ("mps2-an386", "nucleo-l4r5zi") and shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    env = {**os.environ, "AUDIO_NAS_PYTHON": sys.executable, "AUDIO_NAS_EXTRA_DEFS": extra_defs}
    return subprocess.run(
        ["bash", str(MEASURE), board, str(out)], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.parametrize("board", ["mps2-an386", "nucleo-l4r5zi", "nano33ble", "pico"])
def test_firmware_memory_figures_match_the_board_profiles(board, tmp_path):
    """Re-measures the image (no TFLM, no model) and checks the recorded firmware_code_bytes and
    firmware_static_ram_bytes. After a firmware change, re-run measure_memory.sh and update the figures."""
    r = measure(board, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    want = figures(board)
    recorded_compiler = want["firmware_measured_with"].split("; ")[1]
    for key in ("firmware_code_bytes", "firmware_static_ram_bytes"):
        measured = int(got[key])
        if got["compiler"] == recorded_compiler:
            assert measured == want[key], (
                f"{board}: {key} measured {measured}, recorded {want[key]}: run "
                f"`AUDIO_NAS_PYTHON=.venv/bin/python firmware/boards/measure_memory.sh {board}` and update "
                "firmware/boards/board_memory.yaml"
            )
        else:  # another compiler version: the figures are still close
            assert abs(measured - want[key]) <= 0.15 * want[key], (
                board,
                key,
                measured,
                want[key],
                got["compiler"],
            )
    if board == "mps2-an386":
        assert figures("mps2-an386-cmsis")["firmware_code_bytes"] == want["firmware_code_bytes"]


@pytest.mark.parametrize("board", sorted(ARDUINO))
def test_arduino_port_links_with_the_boards_memory_map(board, tmp_path):
    """boards/arduino/main.cpp + the stub core, linked at the board's real flash/RAM (boards/arduino/BOARD.ld)
    with its buffer plan (board_memory.h) and the core's stated RAM reserve: everything fits."""
    r = measure(board, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    elf = tmp_path / f"{board}.elf"
    sections = {}
    for line in subprocess.run(
        ["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            sections[parts[0]] = (int(parts[1]), int(parts[2]))
    want = figures(board)
    ram = sum(sections[s][0] for s in (".data", ".bss", ".core_reserve", ".stack"))
    assert ram <= want["sram_bytes"]
    assert sections[".core_reserve"][0] >= want["core_ram_reserve_bytes"]
    assert sections[".stack"][0] >= want["stack_reserve_bytes"]
    if board == "pico":  # Cortex-M0+: the image is Thumb-1 only
        attrs = subprocess.run(
            ["arm-none-eabi-readelf", "-A", str(elf)], capture_output=True, text=True
        ).stdout
        assert "v6S-M" in attrs or "v6-M" in attrs, attrs


@pytest.mark.parametrize("board", sorted(ARDUINO))
def test_an_oversized_buffer_does_not_link(board, tmp_path):
    """The same link with an upload buffer 8 KB over the plan: the board's RAM overflows, the build fails."""
    upload = figures(board)["upload_buffer_bytes"] + 8192
    r = measure(board, tmp_path, f"-DAUDIO_NAS_UPLOAD_BUFFER_BYTES={upload}")
    assert r.returncode != 0
    assert "region `RAM' overflowed" in r.stderr, r.stderr


def test_board_memory_plans_equal_the_board_profiles(tmp_path):
    """board_memory.h's constants and the link scripts' memory maps restate the board profiles."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    src = tmp_path / "plan.cc"
    src.write_text(
        '#include <cstdio>\n#include "board_memory.h"\nusing namespace audio_nas::board_memory;\n'
        'int main() { std::printf("sram_bytes=%zu\\nflash_bytes=%zu\\ncore_ram_reserve_bytes=%zu\\n'
        "stack_reserve_bytes=%zu\\nupload_buffer_bytes=%zu\\narena_buffer_bytes=%zu\\ninput_buffer_bytes=%zu\\n"
        'app_flash_offset=%zu\\n", kRamBytes, kFlashBytes, kCoreRamReserveBytes, kStackReserveBytes, '
        "kUploadBufferBytes, kArenaBufferBytes, kInputBufferBytes, kAppFlashOffset); }\n"
    )
    for board, macro in ARDUINO.items():
        exe = tmp_path / board
        subprocess.run(
            [
                "g++",
                "-std=c++17",
                f"-DAUDIO_NAS_BOARD_{macro}=1",
                f"-I{ROOT / 'boards/arduino'}",
                str(src),
                "-o",
                str(exe),
            ],
            check=True,
        )
        plan = {
            k: int(v)
            for k, v in (
                line.split("=")
                for line in subprocess.run(
                    [str(exe)], capture_output=True, text=True, check=True
                ).stdout.split()
            )
        }
        want = figures(board)
        for key in ("sram_bytes", "flash_bytes", *PLAN_KEYS):
            assert plan[key] == want[key], f"{board}: board_memory.h {key}={plan[key]}, profile {want[key]}"
        ld = (ROOT / f"boards/arduino/{board}.ld").read_text()
        regions = {
            m[0]: (int(m[1], 16), int(m[2], 16))
            for m in re.findall(
                r"(FLASH|RAM)\s*\([a-z]+\)\s*:\s*ORIGIN\s*=\s*(0x[0-9A-Fa-f]+),\s*LENGTH\s*=\s*(0x[0-9A-Fa-f]+)",
                ld,
            )
        }
        assert regions["RAM"] == (0x20000000, want["sram_bytes"])
        flash_base = {"nano33ble": 0x0, "pico": 0x10000000}[board]
        assert regions["FLASH"][0] == flash_base + plan["app_flash_offset"]
        assert regions["FLASH"][0] + regions["FLASH"][1] == flash_base + want["flash_bytes"]
    ld = (ROOT / "boards/nucleo_l4r5zi/nucleo_l4r5zi.ld").read_text()
    want = figures("nucleo-l4r5zi")
    assert "LENGTH = 640K" in ld and want["sram_bytes"] == 640 * 1024
    assert "LENGTH = 2M" in ld and want["flash_bytes"] == 2 * 1024 * 1024
    assert "_stack_size = 0x2000" in ld and want["stack_reserve_bytes"] == 0x2000
    assert "0x1000; } > RAM" in ld and want["core_ram_reserve_bytes"] == 0x1000


def test_arduino_port_runs_on_the_host_across_the_micros_wrap(tmp_path):
    """The Pico variant of boards/arduino/main.cpp on the stub core, with ASan/UBSan: micros() is 32 bits
    and wraps after 71.6 minutes; timestamps stay monotonic, a frame timed over the wrap is exact."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    subprocess.run(
        [sys.executable, "-m", "audio_nas.features.fixed_point", str(tmp_path / "frontend_tables.h")],
        check=True,
    )
    exe = tmp_path / "port"
    subprocess.run(
        [
            "g++",
            *FLAGS,
            f"-I{ROOT / 'boards/arduino'}",
            f"-I{ROOT / 'tests/arduino_stub'}",
            f"-I{tmp_path}",
            '-DAUDIO_NAS_BOARD_NAME="pico"',
            "-DAUDIO_NAS_CLOCK_HZ=133000000",
            "-DAUDIO_NAS_BOARD_PICO=1",
            "-DAUDIO_NAS_MARKER_PIN=2",
            *(str(ROOT / p) for p in SOURCES),
            str(ROOT / "boards/arduino/main.cpp"),
            str(ROOT / "tests/arduino_stub/arduino_stub.cc"),
            str(ROOT / "tests/test_arduino_port.cc"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "arduino port: 6 passed, 0 failed" in out.stdout
