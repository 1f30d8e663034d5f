"""The real firmware image on an emulated Cortex-M4 (QEMU mps2-an386), driven by the Python bridge (socket).

Builds firmware/ with CMake + arm-none-eabi-gcc once per session, then runs it in qemu-system-arm and talks to
it with DeviceClient exactly as to a board on a serial port. Tests that need TFLM run when TFLM_DIR names a
TFLM tree (tflite-micro's create_tflm_tree.py output) and are skipped otherwise.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from audio_nas.errors import DeviceError
from audio_nas.firmware_bridge.build import tflm_build_dir
from audio_nas.firmware_bridge.client import DeviceClient
from audio_nas.firmware_bridge.qemu import QemuBoard, build_firmware, missing_tools

pytestmark = [
    pytest.mark.xdist_group("qemu"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (see .ci/run)"),
]


@pytest.fixture(scope="module")
def elf(tmp_path_factory):
    return build_firmware(tmp_path_factory.mktemp("fw") / "build")


@pytest.fixture()
def client(elf):
    with QemuBoard(elf) as board, DeviceClient(board.url, connect_timeout_s=20, command_timeout_s=5) as c:
        yield c


def test_protocol_round_trips_on_the_firmware(client):
    assert client.name() == "[mps2-an386]"
    prof = client.checked("profile")
    assert prof.lines[:2] == ("m-profile-[ulp-mlperf]", "m-model-[kws01]")
    v = client.checked("version")
    assert v.value("m-version-") == "1-fw-0.2-qemu-emulated" and v.value("m-tflm-") == "0"
    t0 = int(client.checked("timestamp").value("m-lap-us-"))
    t1 = int(client.checked("timestamp").value("m-lap-us-"))
    assert 0 < t0 < t1  # the CMSDK timer advances with executed instructions
    stats = client.stats()
    assert stats.value("m-clock-hz-") == "25000000" and stats.value("m-timer-") == "cmsdk-icount"


def test_input_upload_and_print(client):
    data = np.random.default_rng(0).integers(0, 256, 700, dtype=np.uint8).tobytes()
    client.load_input(data)
    assert client.checked("db", "print", 32).value("m-buffer-[") == data[:32].hex() + "]"
    r = client.command("db", "00")
    assert r.errors == ("e-[db overflow]",)


def test_model_upload_with_crc_and_its_errors(client):
    model = np.random.default_rng(1).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    t = time.monotonic()
    client.upload_model(model)
    rate_kib_s = len(model) / 1024 / (time.monotonic() - t)
    info = client.checked("model", "info")
    assert info.value("m-model-bytes-") == "6000" and info.value("m-model-crc-") == f"{zlib.crc32(model):08x}"
    assert info.value("m-model-source-") == "uploaded"
    assert rate_kib_s > 1.0
    # a CRC mismatch discards the upload and the board keeps serving
    assert client.checked("model", "load", 4, "00000000").value("m-expecting-") == "4"
    r = client.command("model", 0, "01020304")
    assert r.errors and r.errors[0].startswith("e-[crc mismatch: expected 00000000 got ")
    assert client.checked("model", "info").value("m-model-source-") == "none"
    # oversized, bad offset, malformed
    assert (
        client.command("model", "load", 50_000_000, "00000000")
        .errors[0]
        .startswith("e-[model too large: 50000000 >")
    )
    client.checked("model", "load", 4, f"{zlib.crc32(b'abcd'):08x}")
    assert client.command("model", 2, "6364").errors == ("e-[bad offset: got 2, expected 0]",)
    assert client.command("model", 0, "6x").errors == ("e-[bad argument: model]",)
    assert client.checked("model", 0, "61626364").value("m-model-ok-") == f"{zlib.crc32(b'abcd'):08x}"


def test_framing_errors_and_recovery(client):
    client.port.write(b"na\x01me%")
    assert client._read_reply(5, "invalid").errors == ("e-[invalid byte]",)
    client.port.write(b"x" * 1500 + b"%")
    assert client._read_reply(5, "long").errors == ("e-[line too long]",)
    assert client.command("frobnicate").errors == ("e-[unknown command: frobnicate]",)
    assert client.name() == "[mps2-an386]"


def test_inference_without_tflm_says_so(client):
    assert client.command("infer", 1, 0).errors == ("e-[no inference engine: built without TFLM]",)
    client.upload_model(b"abcd")
    assert client.command("model", "activate", 0).errors == ("e-[no inference engine: built without TFLM]",)


def test_firmware_front_end_is_bit_exact_with_python(client):
    from audio_nas.features.config import FrontEndConfig
    from audio_nas.features.fixed_point import frames_q15, make_tables

    t = make_tables(FrontEndConfig())
    rng = np.random.default_rng(3)
    n = np.arange(t.window_samples)
    audio = (3000 * np.sin(2 * np.pi * 440 * n / 16000) + rng.normal(0, 500, n.size)).astype(np.int16)
    assert (
        client.command("frontend")
        .errors[0]
        .startswith(f"e-[frontend needs {t.window_samples} samples, got 0")
    )
    client.load_input(audio.astype("<i2").tobytes())
    r = client.checked("frontend")
    got = [int(v) for v in r.value("m-frame-[").rstrip("]").split(",")]
    assert got == frames_q15(audio, t)[0].tolist()
    assert int(r.value("m-cycles-")) > 1000


def test_reset_command_reboots_and_forgets_the_model(client):
    client.upload_model(b"abcdefgh")
    client.port.write(b"reset%")
    client._read_reply(5, "reset")
    client.parser.__init__()
    client.connect()
    assert client.checked("model", "info").value("m-model-source-") == "none"


def test_missing_image_and_tools_get_clear_errors(tmp_path):
    with pytest.raises(DeviceError, match="no firmware image"):
        QemuBoard(tmp_path / "nope.elf")


TFLM_DIR = os.environ.get("TFLM_DIR")


@pytest.mark.skipif(
    not TFLM_DIR,
    reason="TFLM_DIR is not set: the TFLM firmware tests need a TFLM tree "
    "(python3 tflite-micro/tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py DIR)",
)
def test_tflm_uploaded_model_runs_on_the_emulated_board_bit_exact(tmp_path):
    from tflite_micro.python.tflite_micro import runtime

    model, xq = _make_model()
    # a stable build directory: TFLM takes minutes to compile the first time, seconds after that
    elf = build_firmware(tflm_build_dir(Path(__file__).resolve().parents[2], TFLM_DIR), tflm_dir=TFLM_DIR)
    interp = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    interp.set_input(xq, 0)
    interp.invoke()
    host = np.asarray(interp.get_output(0)).ravel()
    q = interp.get_output_details(0)["quantization_parameters"]
    expected = [f"{(int(v) - q['zero_points'][0]) * np.float32(q['scales'][0]):.6f}" for v in host]
    with QemuBoard(elf) as board, DeviceClient(board.url, connect_timeout_s=20, infer_timeout_s=120) as c:
        assert c.checked("version").value("m-tflm-") == "1"
        c.upload_model(model)
        assert c.activate() > 0
        c.load_input(xq.tobytes())
        r = c.checked("infer", 2, 1, timeout_s=120)
        got = r.value("m-results-[").rstrip("]").split(",")
        assert got == expected
        assert int(c.stats().value("m-cycles-last-")) > 0
        # a CRC-valid upload that is not a flatbuffer is refused by the verifier; the board keeps serving
        c.upload_model(b"\x00" * 64)
        assert (
            c.command("model", "activate", 0)
            .errors[0]
            .startswith("e-[model invalid: not a TFLite flatbuffer")
        )
        c.upload_model(model)
        assert c.command("model", "activate", 500).errors[0].startswith("e-[arena too small: 500 B given")


def _make_model():
    """The bridge tests' tiny model (DS block, 12 classes) and one int8 input."""
    import torch

    from audio_nas.export.graph import lower_model
    from audio_nas.export.quantize import quantize_graph, quantize_input
    from audio_nas.export.tflite_writer import write_tflite
    from audio_nas.space import ArchSpec, build_model

    torch.manual_seed(0)
    spec = ArchSpec.from_str("fe:logmel_w30_h20_m20|stem:c2d_k3_s2_c8_relu|ds_k3_s2_c16_r1_relu|n12")
    x = np.random.default_rng(0).normal(-5, 2, size=(4, *spec.input_shape)).astype(np.float32)
    g = quantize_graph(lower_model(build_model(spec).eval()), x)
    return write_tflite(g), quantize_input(g, x)[:1]


@pytest.mark.skipif(not TFLM_DIR, reason="TFLM_DIR is not set: the TFLM firmware tests need a TFLM tree")
def test_tflm_streaming_on_the_firmware_matches_the_python_emulated_board():
    from audio_nas.firmware_bridge.emulator import EmulatedDevice

    model, xq = _make_model()
    elf = build_firmware(tflm_build_dir(Path(__file__).resolve().parents[2], TFLM_DIR), tflm_dir=TFLM_DIR)
    frames = np.random.default_rng(5).integers(-128, 128, size=(70, xq.shape[2]), dtype=np.int8)
    results = []
    with EmulatedDevice("mps2-an386") as dev, DeviceClient(f"socket://127.0.0.1:{dev.port}") as c:
        c.upload_model(model)
        c.activate()
        c.stream_start(stride_frames=3, threshold=0.2, ignore=(0, 1))
        results.append(c.stream_frames(frames, 20.0))
        assert c.stream_stop() == len(results[0][0])
    with QemuBoard(elf) as board, DeviceClient(board.url, connect_timeout_s=20, command_timeout_s=30) as c:
        c.upload_model(model)
        c.activate()
        c.stream_start(stride_frames=3, threshold=0.2, ignore=(0, 1))
        results.append(c.stream_frames(frames, 20.0))
        assert c.stream_stop() == len(results[1][0])
        # audio mode: int16 samples through the firmware's fixed-point front-end (a 20-mel model: mismatch)
        r = c.command("stream", "start", "audio")
        assert r.errors and r.errors[0].startswith("e-[front-end mismatch: model wants 20 bins")
    (py_scores, py_dets), (fw_scores, fw_dets) = results
    assert len(fw_scores) == len(py_scores) == 1 + (70 - xq.shape[1]) // 3
    np.testing.assert_allclose(
        fw_scores, py_scores, atol=2e-4
    )  # float32 softmax on the board, float64 in Python
    assert fw_dets == py_dets
