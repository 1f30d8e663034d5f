"""The real firmware on an emulated Cortex-M4: run the mps2-an386 image (``build.build_firmware``) in QEMU.

``QemuBoard`` starts QEMU with UART0 on a local TCP port and gives the
``socket://`` URL that ``DeviceClient`` talks to, exactly as it would to a board on a serial port.
QEMU runs with ``-icount shift=6,sleep=off``: the CMSDK timer then counts retired instructions
deterministically, which the firmware reports as cycles (``stats%``: ``m-timer-cmsdk-icount``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from audio_nas.errors import DeviceError
from audio_nas.firmware_bridge.build import build_firmware, missing_tools  # noqa: F401  (re-exported)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuBoard:
    """``with QemuBoard(elf) as board: DeviceClient(board.url)`` — one emulated mps2-an386 running ``elf``."""

    def __init__(self, elf: str | Path, *, port: int | None = None, icount_shift: int = 6):
        self.elf = Path(elf)
        if not self.elf.exists():
            raise DeviceError(
                f"no firmware image at {self.elf}: build it first (`make firmware` or build_firmware())"
            )
        if shutil.which("qemu-system-arm") is None:
            raise DeviceError("qemu-system-arm not found: apt-get install qemu-system-arm")
        self.port = port or _free_port()
        self.icount_shift = icount_shift
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> QemuBoard:
        cmd = [
            "qemu-system-arm",
            "-M",
            "mps2-an386",
            "-nographic",
            "-monitor",
            "none",
            "-kernel",
            str(self.elf),
            "-icount",
            f"shift={self.icount_shift},sleep=off",
            "-serial",
            f"tcp:127.0.0.1:{self.port},server=on,wait=off,nodelay=on",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
        ):  # wait until QEMU listens (output before a connection is lost anyway)
            if self.proc.poll() is not None:
                raise DeviceError(
                    f"qemu-system-arm exited with {self.proc.returncode}: {self.proc.stdout.read()[-2000:]}"
                )
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

    def __enter__(self) -> QemuBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
