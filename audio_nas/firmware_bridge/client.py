"""Host side of the serial bridge: a transport on ``serial.serial_for_url`` and a protocol client.

URLs: a port (``/dev/ttyACM0``, ``COM3``), ``socket://127.0.0.1:PORT`` (QEMU or the emulated device),
``loop://``. Timeouts are named; chunk uploads are retried a bounded number of times; every failure is
a DeviceError saying what to check.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from dataclasses import dataclass

import numpy as np
import serial
from serial.tools import list_ports

from audio_nas.errors import DeviceError
from audio_nas.firmware_bridge.framing import Reply, ReplyParser, crc32, encode_command, parse_results

log = logging.getLogger(__name__)
CHUNK_BYTES = 256


def open_transport(url: str, baudrate: int = 115200, timeout_s: float = 0.05) -> serial.SerialBase:
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s)
    except serial.SerialException as exc:
        msg = str(exc)
        ports = ", ".join(p.device for p in list_ports.comports()) or "none found"
        if "Permission denied" in msg or "Errno 13" in msg:
            raise DeviceError(
                f"permission denied on {url}: add yourself to the 'dialout' group "
                f"(sudo usermod -aG dialout $USER, then log in again) or add a udev rule"
            ) from None
        if "Connection refused" in msg or "Errno 111" in msg:
            raise DeviceError(f"nothing listens at {url}: start the emulated board or QEMU first") from None
        if "busy" in msg.lower() or "Errno 16" in msg:
            raise DeviceError(
                f"{url} is busy: close the other program using it (serial monitor, IDE)"
            ) from None
        raise DeviceError(f"cannot open {url} ({msg}); serial ports on this machine: {ports}") from None


@dataclass(frozen=True)
class InferResult:
    scores: list[float]
    elapsed_us: int


@dataclass(frozen=True)
class Measurement:
    latency_ms: float
    cycles: int
    arena_bytes: int
    outputs: list[float]
    repeats: int
    source: str


class DeviceClient:
    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 2.0,
        infer_timeout_s: float = 30.0,
        upload_chunk_timeout_s: float = 2.0,
        retries: int = 3,
    ):
        self.url = url
        self.connect_timeout_s, self.command_timeout_s = connect_timeout_s, command_timeout_s
        self.infer_timeout_s, self.upload_chunk_timeout_s, self.retries = (
            infer_timeout_s,
            upload_chunk_timeout_s,
            retries,
        )
        self.port = open_transport(url, baudrate)
        self.parser = ReplyParser()

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> DeviceClient:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ core
    def _read_reply(self, timeout_s: float, what: str) -> Reply:
        deadline = time.monotonic() + timeout_s
        raw = bytearray()
        while time.monotonic() < deadline:
            # read(n) waits for n bytes or the port timeout: ask for what is waiting (at least 1) so a reply
            # is
            # seen as soon as it arrives, not a timeout later (this alone took serial round trips from 50 ms
            # to ~1)
            data = self.port.read(max(1, self.port.in_waiting))
            if data:
                raw += data
                replies = self.parser.feed(data)
                if replies:
                    return replies[0]
                if b"boot" in raw and b"m-" not in raw:
                    raise DeviceError(
                        f"the board reset during '{what}' (boot banner instead of a reply); "
                        f"check its power supply, then reconnect"
                    )
        raise DeviceError(
            f"no reply to '{what}' within {timeout_s} s from {self.url}: check the cable, the port and "
            f"the baud rate, and that the firmware is flashed"
        )

    def command(self, name: str, *args, timeout_s: float | None = None) -> Reply:
        self.port.write(encode_command(name, *args))
        return self._read_reply(timeout_s or self.command_timeout_s, " ".join([name, *map(str, args)])[:40])

    def checked(self, name: str, *args, timeout_s: float | None = None) -> Reply:
        r = self.command(name, *args, timeout_s=timeout_s)
        if not r.ok:
            raise DeviceError(f"'{name}' failed on the board: {r.errors[0]}")
        return r

    def connect(self) -> None:
        """Ping until the board answers (output sent before the host connects is lost)."""
        deadline = time.monotonic() + self.connect_timeout_s
        while time.monotonic() < deadline:
            try:
                if self.command("ping", timeout_s=0.3).value("m-pong") is not None:
                    self._drain()  # late answers to earlier pings must not pass for replies to later commands
                    return
            except DeviceError:
                continue
        raise DeviceError(f"the board at {self.url} did not answer ping within {self.connect_timeout_s} s")

    def _drain(self, quiet_s: float = 0.15, limit_s: float = 2.0) -> None:
        """Discard whatever the board still sends until it has been quiet for ``quiet_s``."""
        t_end = time.monotonic() + limit_s
        last = time.monotonic()
        while time.monotonic() < t_end and time.monotonic() - last < quiet_s:
            if self.port.read(max(1, self.port.in_waiting)):
                last = time.monotonic()
        self.parser = ReplyParser()

    # ------------------------------------------------------------------ operations
    def name(self) -> str:
        return self.checked("name").value("m-name-dut-") or ""

    def upload_model(self, model: bytes) -> None:
        crc = crc32(model)
        self.checked("model", "load", len(model), f"{crc:08x}")
        offset = 0
        while offset < len(model):
            chunk = model[offset : offset + CHUNK_BYTES]
            for attempt in range(self.retries):
                try:
                    r = self.command("model", offset, chunk.hex(), timeout_s=self.upload_chunk_timeout_s)
                    break
                except DeviceError:
                    if attempt + 1 == self.retries:
                        raise DeviceError(
                            f"upload stopped at byte {offset} of {len(model)} after {self.retries} "
                            f"attempts: try a lower baud rate or another cable"
                        ) from None
                    # a lost reply: ask where the board is and resume from there
                    self.parser = ReplyParser()
            if not r.ok:
                m = re.search(r"bad offset: got \d+, expected (\d+)", r.errors[0])
                if m and int(m.group(1)) > offset:  # our earlier send arrived but its ack was lost: resume
                    offset = int(m.group(1))
                    continue
                raise DeviceError(f"upload failed at byte {offset}: {r.errors[0]}")
            offset = int(r.value("m-ack-"))
        info = self.checked("model", "info")
        if info.value("m-model-crc-") != f"{crc:08x}":
            raise DeviceError(
                f"CRC mismatch after upload: board has {info.value('m-model-crc-')}, sent {crc:08x}"
            )

    def activate(self, arena_bytes: int = 0) -> int:
        return int(self.checked("model", "activate", arena_bytes, timeout_s=60).value("m-arena-used-"))

    def load_input(self, data: bytes) -> None:
        self.checked("db", "load", len(data))
        for i in range(0, len(data), CHUNK_BYTES):
            self.checked("db", data[i : i + CHUNK_BYTES].hex())

    def infer(self, n: int = 1, warmup: int = 0) -> InferResult:
        r = self.checked("infer", n, warmup, timeout_s=self.infer_timeout_s)
        laps = [int(l[len("m-lap-us-") :]) for l in r.lines if l.startswith("m-lap-us-")]
        res = next(l for l in r.lines if l.startswith("m-results-"))
        return InferResult(parse_results(res), laps[-1] - laps[0])

    def stats(self) -> Reply:
        return self.checked("stats")

    def stream_start(
        self, stride_frames: int = 2, threshold: float = 0.7, ignore: tuple[int, ...] = ()
    ) -> None:
        self.checked(
            "stream",
            "start",
            "features",
            stride_frames,
            int(round(threshold * 1000)),
            "ignore=" + ",".join(map(str, ignore)),
        )

    def stream_frames(
        self, frames_int8: np.ndarray, hop_ms: float
    ) -> tuple[list[list[float]], list[tuple[int, float, float]]]:
        """Send int8 feature frames [n, bins];
        returns (scores per inference, detections (class, score, time_s))."""
        scores, dets = [], []
        per_cmd = max(1, 500 // frames_int8.shape[1])  # stay well under the 1200-byte command limit
        for i in range(0, len(frames_int8), per_cmd):
            r = self.checked(
                "stream", np.asarray(frames_int8[i : i + per_cmd], np.int8).tobytes().hex(), f"{hop_ms:g}"
            )
            for line in r.lines:
                if line.startswith("m-scores-"):
                    scores.append(parse_results("m-results-" + line[len("m-scores-") :]))
                elif line.startswith("m-det-"):
                    c, sc, t_ms = line[len("m-det-") :].split("-")
                    dets.append((int(c), int(sc) / 1000, int(t_ms) / 1000))
        return scores, dets

    def stream_stop(self) -> int:
        return int(self.checked("stream", "stop").value("m-stream-stopped-") or 0)

    def measure(self, model: bytes, x_int8: np.ndarray, repeats: int = 5, warmup: int = 1) -> Measurement:
        """Upload, activate, load the input, run ``repeats`` timed inferences; median latency."""
        self.upload_model(model)
        arena = self.activate()
        self.load_input(np.asarray(x_int8, np.int8).tobytes())
        lat = []
        res = None
        for i in range(repeats):
            res = self.infer(1, warmup if i == 0 else 0)
            lat.append(res.elapsed_us / 1000)
        cycles = int(self.stats().value("m-cycles-last-") or 0)
        version = self.command("version").value("m-version-") or ""
        source = "emulated" if "emulated" in version else "measured"
        return Measurement(statistics.median(lat), cycles, arena, res.scores if res else [], repeats, source)
