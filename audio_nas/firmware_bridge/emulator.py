"""A Python emulated device that speaks docs/protocol.md over a TCP socket (``socket://`` URLs).

It runs uploaded models in the TFLM host interpreter, so every host-side flow (upload with CRC,
input loading, inference, timing statistics) is exercised end to end without hardware. Its "cycles"
come from the per-op cycle model of the board profile's core (an estimate; ``stats%`` says so).
Fault injection (for tests): ``drop_replies`` drops the next N replies; ``reset_after`` resets the
device after N commands, as a board that browns out mid-command.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import numpy as np

from audio_nas.energy import load_board
from audio_nas.energy.models import EmulatedModel
from audio_nas.energy.op_model import ops_from_tflite as op_shapes_from_tflite
from audio_nas.errors import VerificationError
from audio_nas.export.verify import check_structure, tflm_arena_bytes
from audio_nas.firmware_bridge.framing import CommandAssembler, crc32
from audio_nas.streaming.recognizer import Recognizer

log = logging.getLogger(__name__)
PROTOCOL_VERSION = "1"
FIRMWARE_VERSION = "emulated-0.1"


class EmulatedDevice:
    def __init__(
        self,
        board: str = "mps2-an386",
        *,
        model_buffer_bytes: int = 512 * 1024,
        input_buffer_bytes: int = 64 * 1024,
        cycle_model: Callable[[bytes], float] | None = None,
    ):

        self.board = load_board(board)
        self.model_buffer_bytes, self.input_buffer_bytes = model_buffer_bytes, input_buffer_bytes
        self.cycle_model = cycle_model or self._default_cycles
        self.t0 = time.monotonic()
        self._reset_state()
        self.drop_replies = 0
        self.reset_after: int | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = 0

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self.upload: bytearray | None = None
        self.upload_size = self.upload_crc = 0
        self.model: bytes | None = None
        self.interp = None
        self.input_expected = 0
        self.input = bytearray()
        self.last_scores: list[float] = []
        self.last_cycles = 0.0
        self.infer_count = 0
        self.commands = 0

    def _default_cycles(self, model: bytes) -> float:
        # the emulated energy source's model (energy.models.EmulatedModel) on the uploaded model's ops
        return EmulatedModel().estimate(None, self.board, layers=op_shapes_from_tflite(model)).cycles

    # ------------------------------------------------------------------ commands
    def handle(self, cmd: str) -> list[str]:
        """One command -> reply lines (without the final m-ready)."""
        tok = cmd.split(" ")
        name, args = tok[0], tok[1:]
        handler = self.COMMANDS.get(name)
        if handler is None:
            return [f"e-[unknown command: {name}]"]
        try:
            return handler(self, args)
        except (ValueError, IndexError) as exc:
            return [f"e-[bad argument: {exc}]"]

    def _name(self, args):
        return ["m-name-dut-[audio-nas]"]

    def _profile(self, args):
        return ["m-profile-[ulp-mlperf]", "m-model-[kws01]"]

    def _timestamp(self, args):
        return [f"m-lap-us-{int((time.monotonic() - self.t0) * 1e6)}"]

    def _ping(self, args):
        return ["m-pong"]

    def _version(self, args):
        return [f"m-version-{PROTOCOL_VERSION}-{FIRMWARE_VERSION}", f"m-board-{self.board.name}", "m-tflm-1"]

    def _db(self, args):
        if args and args[0] == "load":
            n = int(args[1])
            if n > self.input_buffer_bytes:
                return [f"e-[db load too large: {n} > {self.input_buffer_bytes}]"]
            self.input_expected, self.input = n, bytearray()
            return [f"m-[Expecting {n} bytes]"]
        if args and args[0] == "print":
            n = int(args[2]) if len(args) > 2 else len(self.input)
            return [f"m-buffer-[{bytes(self.input[:n]).hex()}]"]
        data = bytes.fromhex(args[0])
        if len(self.input) + len(data) > self.input_expected:
            return ["e-[db overflow]"]
        self.input += data
        return ["m-load-done"] if len(self.input) == self.input_expected else []

    def _model(self, args):
        if args[0] == "load":
            size, crc = int(args[1]), int(args[2], 16)
            if size > self.model_buffer_bytes:
                return [f"e-[model too large: {size} > {self.model_buffer_bytes}]"]
            self.upload, self.upload_size, self.upload_crc = bytearray(), size, crc
            return [f"m-expecting-{size}"]
        if args[0] == "info":
            src = "uploaded" if self.model else "none"
            return [
                f"m-model-bytes-{len(self.model or b'')}",
                f"m-model-crc-{crc32(self.model or b''):08x}",
                f"m-model-source-{src}",
            ]
        if args[0] == "activate":
            return self._activate(int(args[1]) if len(args) > 1 else 0)
        if self.upload is None:
            return ["e-[no upload in progress: send model load SIZE CRC first]"]
        offset, data = int(args[0]), bytes.fromhex(args[1])
        if offset != len(self.upload):
            return [f"e-[bad offset: got {offset}, expected {len(self.upload)}]"]
        if offset + len(data) > self.upload_size:
            self.upload = None
            return ["e-[model overflow]"]
        self.upload += data
        out = [f"m-ack-{len(self.upload)}"]
        if len(self.upload) == self.upload_size:
            got = crc32(bytes(self.upload))
            if got != self.upload_crc:
                self.upload = None
                return [f"e-[crc mismatch: expected {self.upload_crc:08x} got {got:08x}]"]
            self.model, self.upload, self.interp = bytes(self.upload), None, None
            out.append(f"m-model-ok-{got:08x}")
        return out

    def _activate(self, arena: int):

        if not self.model:
            return ["e-[no model]"]
        try:
            check_structure(self.model)
            need = tflm_arena_bytes(self.model)
        except VerificationError as exc:
            return [f"e-[model invalid: {exc}]"]
        if arena and arena < need:
            return [f"e-[arena too small: need {need}]"]
        from tflite_micro.python.tflite_micro import runtime

        self.interp = runtime.Interpreter.from_bytes(self.model, arena_size=arena or need + 1024)
        self.last_cycles = self.cycle_model(self.model)
        i, o = self.interp.get_input_details(0), self.interp.get_output_details(0)

        def fmt(d) -> str:
            return (
                "x".join(map(str, d["shape"])) + f"-{d['quantization_parameters']['scales'][0]:.8g}-"
                f"{d['quantization_parameters']['zero_points'][0]}"
            )

        self._in_shape = tuple(i["shape"])
        self._out_q = o["quantization_parameters"]
        return [f"m-arena-used-{need}", f"m-input-{fmt(i)}", f"m-output-{fmt(o)}"]

    def _infer(self, args):
        n, warm = int(args[0]), int(args[1]) if len(args) > 1 else 0
        if self.interp is None:
            return ["e-[no model]"]
        need = int(np.prod(self._in_shape))
        if len(self.input) != need:
            return ["e-[input not loaded]"]
        x = np.frombuffer(bytes(self.input), np.int8).reshape(self._in_shape)
        for _ in range(warm):
            self.interp.set_input(x, 0)
            self.interp.invoke()
        out = [f"m-warmup-start-{warm}", "m-warmup-done", f"m-infer-start-{n}"]
        t_start = (time.monotonic() - self.t0) * 1e6
        for _ in range(n):
            self.interp.set_input(x, 0)
            self.interp.invoke()
        self.infer_count += n
        # the emulated board's clock: cycles of the cycle model, not host time
        t_end = t_start + n * self.last_cycles / self.board.clock_hz * 1e6
        q = np.asarray(self.interp.get_output(0), np.float64).ravel()
        scale, zp = self._out_q["scales"][0], self._out_q["zero_points"][0]
        self.last_scores = list((q - zp) * scale)
        out += [f"m-lap-us-{int(t_start)}", f"m-lap-us-{int(t_end)}", "m-infer-done", self._results_line()]
        return out

    def _results_line(self) -> str:
        return "m-results-[" + ",".join(f"{v:.6f}" for v in self.last_scores) + "]"

    def _results(self, args):
        return [self._results_line()]

    def _stream(self, args):
        """stream start features [STRIDE_FRAMES] [THRESHOLD_PERMILLE] [IGNORE=i,j]
        | stream <hex frames>
        | stream stop
        """

        if args[0] == "start":
            if args[1] != "features":
                return [f"e-[stream mode {args[1]} not supported here: use features]"]
            if self.interp is None:
                return ["e-[no model]"]
            stride = int(args[2]) if len(args) > 2 else 2
            threshold = int(args[3]) / 1000 if len(args) > 3 else 0.7
            ignore = {int(i) for i in args[4].split("=", 1)[1].split(",") if i} if len(args) > 4 else set()
            n_classes = int(np.prod(self.interp.get_output_details(0)["shape"]))
            names = tuple(
                "_silence_" if i in ignore else f"c{i}" for i in range(n_classes)
            )  # ignored = background
            _, t, f, _ = self._in_shape
            zp = self.interp.get_input_details(0)["quantization_parameters"]["zero_points"][0]
            self.stream = {
                "ring": np.full((t, f), zp, np.int8),
                "seen": 0,
                "next": t,
                "stride": stride,
                "runs": 0,
                "rec": Recognizer(names, threshold=threshold),
                "bins": f,
                "hop_ms": None,
            }
            return ["m-stream-started"]
        if args[0] == "stop":
            runs = self.stream["runs"] if getattr(self, "stream", None) else 0
            self.stream = None
            return [f"m-stream-stopped-{runs}"]
        st = getattr(self, "stream", None)
        if not st:
            return ["e-[no stream: send stream start first]"]
        frames = np.frombuffer(bytes.fromhex(args[0]), np.int8)
        if len(frames) % st["bins"]:
            return [f"e-[stream data must be whole frames of {st['bins']} bytes]"]
        hop_ms = float(args[1]) if len(args) > 1 else 20.0
        out = []
        scale, zp = self._out_q["scales"][0], self._out_q["zero_points"][0]
        for fr in frames.reshape(-1, st["bins"]):
            st["ring"] = np.concatenate([st["ring"][1:], fr[None]])
            st["seen"] += 1
            if st["seen"] < st["next"]:
                continue
            st["next"] += st["stride"]
            self.interp.set_input(st["ring"][None, :, :, None], 0)
            self.interp.invoke()
            logits = (np.asarray(self.interp.get_output(0), np.float64).ravel() - zp) * scale
            p = np.exp(logits - logits.max())
            p /= p.sum()
            st["runs"] += 1
            t_ms = st["seen"] * hop_ms
            out.append("m-scores-[" + ",".join(f"{v:.4f}" for v in p) + "]")
            d = st["rec"].update(t_ms / 1000, p)
            if d is not None:
                out.append(
                    f"m-det-{st['rec'].class_names.index(d.label)}-{int(round(d.score * 1000))}-{int(t_ms)}"
                )
        return out

    def _stats(self, args):
        return [
            f"m-clock-hz-{self.board.clock_hz}",
            f"m-cycles-last-{int(self.last_cycles)}",
            f"m-infer-count-{self.infer_count}",
            "m-timer-cycle-model",
        ]

    def _reset(self, args):
        self._reset_state()
        return ["m-resetting"]

    COMMANDS = {
        "name": _name,
        "profile": _profile,
        "timestamp": _timestamp,
        "ping": _ping,
        "version": _version,
        "db": _db,
        "model": _model,
        "infer": _infer,
        "results": _results,
        "stats": _stats,
        "reset": _reset,
        "stream": _stream,
    }

    # ------------------------------------------------------------------ serving
    def start(self) -> str:
        """Serve on 127.0.0.1 (a free port) in a background thread; returns the socket:// URL."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return f"socket://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(0.2)
            asm = CommandAssembler()
            with conn:
                while not self._stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    for kind, cmd in asm.feed(data):
                        self.commands += 1
                        lines = self.handle(cmd) if kind == "ok" else [f"e-[{cmd}]"]
                        if self.reset_after is not None and self.commands >= self.reset_after:
                            self.reset_after = None
                            self._reset_state()
                            conn.sendall(
                                b"audio-nas boot\r\n"
                            )  # a reset board prints its banner, not a reply
                            continue
                        if self.drop_replies:
                            self.drop_replies -= 1
                            continue
                        conn.sendall(("".join(f"{l}\r\n" for l in lines) + "m-ready\r\n").encode())

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> EmulatedDevice:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
