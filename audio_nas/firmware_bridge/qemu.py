"""The real firmware on an emulated Cortex-M4: build the mps2-an386 image and run it in qemu-system-arm.

``build_firmware`` configures and builds firmware/ with CMake and arm-none-eabi-gcc (TFLM when ``tflm_dir``
points at a TFLM tree). ``QemuBoard`` starts QEMU with UART0 on a local TCP port and gives the
``socket://`` URL that ``DeviceClient`` talks to, exactly as it would to a board on a serial port.
QEMU runs with ``-icount shift=6,sleep=off``: the CMSDK timer then counts retired instructions
deterministically, which the firmware reports as cycles (``stats%``: ``m-timer-cmsdk-icount``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from audio_nas.errors import DeviceError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
APT_HINT = "apt-get install cmake gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"


def missing_tools() -> list[str]:
    """Tools the mps2-an386 build and run need that are not on PATH."""
    return [t for t in ("cmake", "arm-none-eabi-g++", "qemu-system-arm") if shutil.which(t) is None]


def build_firmware(build_dir: str | Path, *, tflm_dir: str | Path | None = None, quiet: bool = True) -> Path:
    """Configure and build the mps2-an386 image; returns the ELF path. Incremental when build_dir exists."""
    tools = [t for t in ("cmake", "arm-none-eabi-g++") if shutil.which(t) is None]
    if tools:
        raise DeviceError(f"cannot build the firmware: {', '.join(tools)} not found ({APT_HINT})")
    build_dir = Path(build_dir)
    args = ["cmake", "-S", str(FIRMWARE_DIR), "-B", str(build_dir),
            f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE_DIR / 'cmake/arm-none-eabi.cmake'}", f"-DAUDIO_NAS_PYTHON={sys.executable}",
            f"-DTFLM_DIR={Path(tflm_dir).resolve() if tflm_dir else ''}"]
    if shutil.which("ninja") and not (build_dir / "Makefile").exists():
        args += ["-G", "Ninja"]
    for cmd in (args, ["cmake", "--build", str(build_dir), "--parallel"]):
        out = subprocess.run(cmd, capture_output=quiet, text=True)
        if out.returncode != 0:
            tail = ((out.stdout or "") + (out.stderr or ""))[-3000:]
            raise DeviceError(f"firmware build failed ({' '.join(cmd[:3])} ...):\n{tail}")
    return build_dir / "firmware.elf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuBoard:
    """``with QemuBoard(elf) as board: DeviceClient(board.url)`` — one emulated mps2-an386 running ``elf``."""

    def __init__(self, elf: str | Path, *, port: int | None = None, icount_shift: int = 6):
        self.elf = Path(elf)
        if not self.elf.exists():
            raise DeviceError(f"no firmware image at {self.elf}: build it first (`make firmware` or build_firmware())")
        if shutil.which("qemu-system-arm") is None:
            raise DeviceError("qemu-system-arm not found: apt-get install qemu-system-arm")
        self.port = port or _free_port()
        self.icount_shift = icount_shift
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> "QemuBoard":
        cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-kernel", str(self.elf),
               "-icount", f"shift={self.icount_shift},sleep=off",
               "-serial", f"tcp:127.0.0.1:{self.port},server=on,wait=off,nodelay=on"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until QEMU listens (output before a connection is lost anyway)
            if self.proc.poll() is not None:
                raise DeviceError(f"qemu-system-arm exited with {self.proc.returncode}: {self.proc.stdout.read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise DeviceError(f"qemu-system-arm did not open 127.0.0.1:{self.port} within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "QemuBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
