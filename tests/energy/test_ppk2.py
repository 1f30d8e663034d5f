"""The PPK2 monitor: marker-gated energy integration, the optional-package error, the driver on a fake API."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from audio_nas.errors import DeviceError, EnergyModelError
from audio_nas.firmware_bridge.ppk2 import PowerTrace, Ppk2Monitor, energy_per_inference_uj


def test_energy_integrates_only_marked_samples():
    n = 3000
    current = np.full(n, 100.0)  # 0.1 mA idle
    digital = np.zeros(n, np.uint8)
    current[1000:2000] = 10_000.0  # 10 mA for 1000 samples = 10 ms at 100 kHz
    digital[1000:2000] = 1 << 3
    trace = PowerTrace(current, digital, voltage_mv=3000.0)
    # 10 mA x 3.0 V x 10 ms = 300 µJ over 4 inferences
    assert energy_per_inference_uj(trace, marker_channel=3, n_inferences=4) == pytest.approx(75.0)
    with pytest.raises(EnergyModelError, match="channel 0"):
        energy_per_inference_uj(trace, marker_channel=0, n_inferences=1)
    with pytest.raises(EnergyModelError, match="n_inferences"):
        energy_per_inference_uj(trace, marker_channel=3, n_inferences=0)


def test_missing_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ppk2_api", None)
    monkeypatch.setitem(sys.modules, "ppk2_api.ppk2_api", None)
    with pytest.raises(DeviceError, match=r"pip install 'audio-nas\[ppk2\]'"):
        Ppk2Monitor("/dev/ttyACM9")


class FakePPK2:
    """Stands in for ppk2_api.PPK2_API: 4-byte samples, current in the low 16 bits, digital bits in the
    top byte."""

    def __init__(self, chunks):
        self.chunks, self.calls = list(chunks), []

    def __getattr__(self, name):
        def record(*args):
            self.calls.append((name, args))

        return record

    def get_data(self):
        return self.chunks.pop(0) if self.chunks else b""

    def get_samples(self, data):
        words = np.frombuffer(data, "<u4")
        return list((words & 0xFFFF).astype(float)), list((words >> 24).astype(int))


def test_driver_collects_a_trace_from_the_api():
    words = np.array([500 | (0 << 24)] * 50 + [2000 | (1 << 24)] * 100 + [500] * 50, "<u4")
    fake = FakePPK2([words[:120].tobytes(), words[120:].tobytes()])
    mon = Ppk2Monitor(voltage_mv=1800, api_factory=lambda port: fake, boot_wait_s=0)
    mon.start()
    import time

    deadline = time.monotonic() + 5
    while fake.chunks and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    trace = mon.stop()
    assert [c[0] for c in fake.calls[:5]] == [
        "get_modifiers",
        "use_source_meter",
        "set_source_voltage",
        "toggle_DUT_power",
        "start_measuring",
    ]
    assert ("set_source_voltage", (1800,)) in fake.calls and fake.calls[-1][0] == "stop_measuring"
    assert len(trace.current_ua) == 200 and trace.digital.sum() == 100
    # 2 mA x 1.8 V x 100 samples / 100 kHz = 3.6 µJ
    assert energy_per_inference_uj(trace, 0, 1) == pytest.approx(3.6)
    mon.start()  # the board stays powered between measurements: no second power-on (no reset)
    mon.stop()
    assert [c[0] for c in fake.calls].count("toggle_DUT_power") == 1


def test_the_monitor_powers_the_board_before_the_host_opens_its_port(tmp_path, monkeypatch):
    """A board powered by the PPK2 has no firmware (or, with native USB, no port) until the PPK2 powers it."""
    import audio_nas.firmware_bridge.campaign as camp
    from audio_nas.energy import load_board
    from audio_nas.energy.measurements import MeasurementStore
    from audio_nas.firmware_bridge.emulator import EmulatedDevice

    events = []

    class SwitchedMonitor:  # a fake PPK2 whose start() is the board's power switch
        def start(self):
            events.append("power on")

        def stop(self):
            events.append("stop")
            return PowerTrace(np.full(10, 1000.0), np.ones(10, np.uint8), 3300.0)

    class RecordingClient(camp.DeviceClient):
        def __init__(self, url, **kw):
            assert events and events[-1] == "power on", f"port opened before the board was powered: {events}"
            events.append("open")
            super().__init__(url, **kw)

    monkeypatch.setattr(camp, "DeviceClient", RecordingClient)
    with EmulatedDevice("mps2-an386") as dev:
        camp.run_campaign(
            load_board("mps2-an386"),
            1,
            backend="device",
            port=f"socket://127.0.0.1:{dev.port}",
            monitor=SwitchedMonitor(),
            store=MeasurementStore(tmp_path / "m.sqlite"),
        )
    # the source probe, then the measurement: each opens the port only after the power is on
    assert events == ["power on", "open", "stop", "power on", "open", "stop"]


def test_campaign_takes_energy_from_the_monitor(tmp_path):
    from audio_nas.energy import load_board
    from audio_nas.energy.measurements import MeasurementStore
    from audio_nas.firmware_bridge.campaign import run_campaign
    from audio_nas.firmware_bridge.emulator import EmulatedDevice

    class ConstantMonitor:  # 5 mA at 3.3 V for 500 marked samples: 82.5 µJ over the 5 timed inferences
        started = 0

        def start(self):
            self.started += 1

        def stop(self):
            return PowerTrace(
                np.full(700, 5000.0), np.r_[np.ones(500, np.uint8), np.zeros(200, np.uint8)], 3300.0
            )

    board = load_board("mps2-an386")
    mon = ConstantMonitor()
    with EmulatedDevice("mps2-an386") as dev:
        store = run_campaign(
            board,
            1,
            backend="device",
            port=f"socket://127.0.0.1:{dev.port}",
            monitor=mon,
            store=MeasurementStore(tmp_path / "m.sqlite"),
        )
    (m,) = store.all(board.name)
    # started twice: to ask the device what it is (so the campaign resumes its own rows), then to measure
    assert mon.started == 2 and m.energy_uj == pytest.approx(16.5) and m.energy_from == "monitor"
    with pytest.raises(EnergyModelError, match="needs the device backend"):
        run_campaign(
            board, 1, backend="emulated", monitor=mon, store=MeasurementStore(tmp_path / "m2.sqlite")
        )
