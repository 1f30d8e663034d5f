"""Framing of the serial protocol (docs/protocol.md) as pure bytes-in / objects-out functions.

Two incremental parsers, both safe on any byte sequence and any split of it:
- ``CommandAssembler`` (device side; the Python emulated device uses it, the firmware mirrors it):
  bytes -> complete ``%``-terminated commands, enforcing the 1200-byte limit and printable ASCII.
- ``ReplyParser`` (host side): bytes -> ``Reply`` objects, one per ``m-ready``; ``m-``/``e-`` lines are
  collected, any other line (board log text, garbage) is ignored.
CRC is zlib's CRC-32 (IEEE 802.3), as the protocol says.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from audio_nas.errors import ProtocolError

MAX_COMMAND_BYTES = 1200
MAX_REPLY_LINE_BYTES = 8192
READY = "m-ready"


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_command(name: str, *args: object) -> bytes:
    """``encode_command("db", "load", 12)`` -> ``b"db load 12%"``; refuses what the device would reject."""
    text = " ".join([name, *(str(a) for a in args)])
    raw = text.encode("ascii", errors="strict") + b"%"
    if len(raw) > MAX_COMMAND_BYTES:
        raise ProtocolError(
            f"command of {len(raw)} bytes exceeds the {MAX_COMMAND_BYTES}-byte limit; send smaller chunks"
        )
    if any(b < 0x20 or b > 0x7E for b in raw) or raw.count(b"%") != 1:
        raise ProtocolError(f"command {text!r} contains a non-printable byte or '%'")
    return raw


@dataclass
class CommandAssembler:
    """Device side: feed bytes, get complete commands (str, without '%') or error markers."""

    _buf: bytearray = field(default_factory=bytearray)
    _overflow: bool = False
    _invalid: bool = False

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        """Returns ("ok", command) or ("error", reason) items in arrival order."""
        out: list[tuple[str, str]] = []
        for b in data:
            if b == 0x25:  # '%'
                if self._overflow:
                    out.append(("error", "line too long"))
                elif self._invalid:
                    out.append(("error", "invalid byte"))
                else:
                    out.append(("ok", self._buf.decode("ascii")))
                self._buf.clear()
                self._overflow = self._invalid = False
            elif b in (0x0D, 0x0A) and not self._buf:
                continue  # line breaks before a command are ignored
            elif self._overflow:
                continue
            elif len(self._buf) + 1 >= MAX_COMMAND_BYTES:
                self._overflow = True
                self._buf.clear()
            elif 0x20 <= b <= 0x7E:
                self._buf.append(b)
            else:
                self._invalid = True
        return out


@dataclass(frozen=True)
class Reply:
    lines: tuple[str, ...]  # m-/e- lines before m-ready

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(l for l in self.lines if l.startswith("e-"))

    @property
    def ok(self) -> bool:
        return not self.errors

    def value(self, prefix: str) -> str | None:
        """The rest of the first line starting with ``prefix`` (e.g. ``"m-lap-us-"``)."""
        for l in self.lines:
            if l.startswith(prefix):
                return l[len(prefix) :]
        return None


@dataclass
class ReplyParser:
    """Host side: feed bytes in any split, mixed with log text; get one Reply per ``m-ready``."""

    _line: bytearray = field(default_factory=bytearray)
    _pending: list[str] = field(default_factory=list)
    dropped_lines: int = 0

    def feed(self, data: bytes) -> list[Reply]:
        out: list[Reply] = []
        for b in data:
            if b in (0x0A, 0x0D):
                if self._line:
                    self._line_done(out)
                continue
            if len(self._line) < MAX_REPLY_LINE_BYTES:
                self._line.append(b)
            # longer lines are truncated: a runaway board cannot grow host memory
        return out

    def _line_done(self, out: list[Reply]) -> None:
        text = self._line.decode("ascii", errors="replace")
        self._line.clear()
        # tolerate garbage before the message start on the same line
        m = re.search(r"(m-|e-)", text)
        if not m:
            self.dropped_lines += 1
            return
        line = text[m.start() :].strip()
        if line == READY:
            out.append(Reply(tuple(self._pending)))
            self._pending = []
        else:
            self._pending.append(line)


RESULTS_RE = re.compile(r"^m-results-\[([^\]]*)\]$")


def parse_results(line: str) -> list[float]:
    """``m-results-[0.1,0.9]`` -> [0.1, 0.9]; a malformed line raises ProtocolError naming it."""
    m = RESULTS_RE.match(line.strip())
    if not m:
        raise ProtocolError(f"not a results line: {line!r}")
    body = m.group(1).strip()
    try:
        return [float(v) for v in body.split(",")] if body else []
    except ValueError:
        raise ProtocolError(f"results line has a non-number: {line!r}") from None
