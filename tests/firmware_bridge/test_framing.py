"""Protocol framing: round trips, frames split at every byte, log text mixed in, 100k fuzzed frames."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio_nas.errors import ProtocolError
from audio_nas.firmware_bridge.framing import (
    MAX_COMMAND_BYTES,
    CommandAssembler,
    ReplyParser,
    crc32,
    encode_command,
    parse_results,
)

REPLY = b"m-name-dut-[audio-nas]\r\nm-lap-us-1234\r\nm-ready\r\n"


def test_encode_and_assemble_round_trip():
    raw = encode_command("db", "load", 12) + encode_command("name") + encode_command("model", 0, "00ff")
    assert CommandAssembler().feed(raw) == [("ok", "db load 12"), ("ok", "name"), ("ok", "model 0 00ff")]


def test_encode_refuses_what_the_device_would_reject():
    with pytest.raises(ProtocolError, match="limit"):
        encode_command("db", "ab" * MAX_COMMAND_BYTES)
    with pytest.raises(ProtocolError, match="non-printable"):
        encode_command("db", "a%b")


def test_reply_split_at_every_byte_with_log_text():
    stream = (
        b"boot log line\r\n\x00\xffgarbage"
        + REPLY
        + b"[INFO] something\r\n"
        + b"e-[unknown command: x]\r\nm-ready\r\n"
    )
    expected = ReplyParser().feed(stream)
    assert [r.lines for r in expected] == [
        ("m-name-dut-[audio-nas]", "m-lap-us-1234"),
        ("e-[unknown command: x]",),
    ]
    assert expected[0].value("m-lap-us-") == "1234" and not expected[1].ok
    for cut in range(len(stream) + 1):
        p = ReplyParser()
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == expected
    p = ReplyParser()
    assert sum((p.feed(bytes([b])) for b in stream), []) == expected


def test_assembler_limits_and_invalid_bytes():
    a = CommandAssembler()
    assert a.feed(b"x" * (MAX_COMMAND_BYTES + 50) + b"%name%") == [("error", "line too long"), ("ok", "name")]
    assert a.feed(b"na\x01me%\r\nping%") == [("error", "invalid byte"), ("ok", "ping")]


def test_parse_results():
    assert parse_results("m-results-[0.125,0.875]") == [0.125, 0.875]
    with pytest.raises(ProtocolError, match="non-number"):
        parse_results("m-results-[0.1,x]")
    with pytest.raises(ProtocolError, match="not a results line"):
        parse_results("m-lap-us-1")


def test_crc_is_zlib_crc32():
    assert crc32(b"123456789") == 0xCBF43926 == zlib.crc32(b"123456789")


def test_100k_random_and_mutated_frames_never_crash_or_grow():
    rng = np.random.default_rng(0)
    valid = [
        encode_command(c) for c in ("name", "profile", "timestamp", "db load 64", "infer 10 1", "results")
    ]
    valid += [REPLY]
    a, p = CommandAssembler(), ReplyParser()
    n = 0
    for i in range(100_000):
        kind = i % 4
        if kind == 0:
            frame = rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8).tobytes()
        else:
            frame = bytearray(valid[int(rng.integers(len(valid)))])
            for _ in range(int(rng.integers(1, 4))):
                op = rng.integers(3)
                pos = int(rng.integers(len(frame) + 1))
                if op == 0 and frame:
                    frame[min(pos, len(frame) - 1)] = int(rng.integers(256))
                elif op == 1:
                    frame[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
                else:
                    del frame[pos : pos + int(rng.integers(1, 8))]
            frame = bytes(frame)
        for kind_, cmd in a.feed(frame):
            assert kind_ in ("ok", "error") and len(cmd) < MAX_COMMAND_BYTES
        for r in p.feed(frame):
            assert all(l.startswith(("m-", "e-")) for l in r.lines)
        n += 1
    assert n == 100_000
    assert len(a._buf) < MAX_COMMAND_BYTES and len(p._line) <= 8192


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 400))
def test_any_bytes_any_split_same_result(data, cut):
    whole = ReplyParser().feed(data)
    p = ReplyParser()
    assert p.feed(data[:cut]) + p.feed(data[cut:]) == whole
    whole_c = CommandAssembler().feed(data)
    a = CommandAssembler()
    assert a.feed(data[:cut]) + a.feed(data[cut:]) == whole_c
