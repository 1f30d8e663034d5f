"""Client against the emulated device over a real socket: upload with CRC, inference, faults, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_nas.errors import DeviceError
from audio_nas.firmware_bridge.client import DeviceClient, open_transport
from audio_nas.firmware_bridge.emulator import EmulatedDevice
from audio_nas.firmware_bridge.framing import crc32

pytestmark = pytest.mark.xdist_group("bridge")


@pytest.fixture(scope="module")
def tiny_model():
    from audio_nas.export.graph import lower_model
    from audio_nas.export.quantize import quantize_graph, quantize_input, run_int8
    from audio_nas.export.tflite_writer import write_tflite
    from audio_nas.space import ArchSpec, build_model

    torch.manual_seed(0)
    spec = ArchSpec.from_str("fe:logmel_w30_h20_m20|stem:c2d_k3_s2_c8_relu|ds_k3_s2_c16_r1_relu|n12")
    x = np.random.default_rng(0).normal(-5, 2, size=(4, *spec.input_shape)).astype(np.float32)
    g = quantize_graph(lower_model(build_model(spec).eval()), x)
    xq = quantize_input(g, x)
    return write_tflite(g), xq[0], run_int8(g, xq[:1])[0], g


@pytest.fixture()
def device():
    with EmulatedDevice("mps2-an386") as dev:
        yield dev


def test_eembc_commands_and_measure(device, tiny_model):
    model, xq, expected_int8, g = tiny_model
    with DeviceClient(f"socket://127.0.0.1:{device.port}") as c:
        assert c.name() == "[audio-nas]"
        assert c.command("profile").value("m-model-") == "[kws01]"
        assert int(c.command("timestamp").value("m-lap-us-")) >= 0
        m = c.measure(model, xq, repeats=3)
    assert m.source == "emulated" and m.cycles > 0 and m.arena_bytes > 0
    # the emulated board's clock: cycles / 25 MHz
    assert m.latency_ms == pytest.approx(m.cycles / 25e6 * 1e3, rel=0.01)
    t = g.tensors[g.output]
    np.testing.assert_allclose(m.outputs, (expected_int8 - t.zero_point[0]) * t.scale[0], atol=1e-5)


def test_upload_errors_and_recovery(device, tiny_model):
    model = tiny_model[0]
    with DeviceClient(f"socket://127.0.0.1:{device.port}") as c:
        r = c.command("model", "load", 10**9, "00000000")
        assert r.errors and "too large" in r.errors[0]
        c.checked("model", "load", 4, f"{crc32(b'abcd') ^ 1:08x}")
        r = c.command("model", 0, b"abcd".hex())
        assert "crc mismatch" in r.errors[0]
        c.checked("model", "load", 4, f"{crc32(b'abcd'):08x}")
        assert "bad offset" in c.command("model", 2, "ab").errors[0]
        assert "unknown command" in c.command("frobnicate").errors[0]
        assert "bad argument" in c.command("infer", "x").errors[0]
        c.port.write(b"x" * 2000 + b"%")
        assert "line too long" in c._read_reply(2, "long").errors[0]
        c.upload_model(model)  # still serving after every error
        assert c.activate() > 0


def test_lost_ack_is_retried_and_resumed(device, tiny_model):
    original = device.handle
    dropped = []

    def flaky(cmd):
        out = original(cmd)
        if cmd.startswith("model 256 ") and not dropped:
            dropped.append(cmd)
            device.drop_replies = 1  # the board took the chunk at offset 256 but its ack is lost once
        return out

    device.handle = flaky
    with DeviceClient(f"socket://127.0.0.1:{device.port}", upload_chunk_timeout_s=0.3) as c:
        c.upload_model(tiny_model[0])
        assert c.checked("model", "info").value("m-model-crc-") == f"{crc32(tiny_model[0]):08x}"
    assert dropped


def test_board_reset_mid_command_is_reported(device):
    with DeviceClient(f"socket://127.0.0.1:{device.port}") as c:
        device.reset_after = device.commands + 1
        with pytest.raises(DeviceError, match="reset"):
            c.command("name")


def test_transport_errors_say_what_to_do():
    with pytest.raises(DeviceError, match="nothing listens"):
        open_transport("socket://127.0.0.1:1")
    with pytest.raises(DeviceError, match="serial ports on this machine"):
        open_transport("/dev/ttyNOPE-audio-nas")


def test_no_answer_times_out_clearly(tiny_model):
    with EmulatedDevice() as dev:
        dev.drop_replies = 10**6
        c = DeviceClient(f"socket://127.0.0.1:{dev.port}", connect_timeout_s=0.8)
        with pytest.raises(DeviceError, match="did not answer ping"):
            c.connect()
        c.close()
