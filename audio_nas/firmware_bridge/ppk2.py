"""External power monitors: energy per inference from a current trace gated by the firmware's GPIO marker.

The firmware drives a marker pin high during timed inferences (`infer N W%`; D2 on the Arduino ports, the FPGA
LED on mps2-an386). A monitor that samples current and a digital input at once gives energy without trusting
the board profile's power figure: E = V x sum(I over marked samples) / sample rate, divided by the inferences.

Driver: the Nordic Power Profiler Kit II through ``ppk2-api`` (optional: ``pip install 'audio-nas[ppk2]'``),
100 kHz current samples in µA and 8 digital channels. Anything with ``start()``/``stop() -> PowerTrace``
satisfies ``PowerMonitor`` and can be used instead.

Order: ``start()`` powers the board (source-meter mode) and starts sampling; the campaign calls it BEFORE
the host opens the board's serial port, since a board powered by the PPK2 has no firmware (and, with native
USB, no port) until then. The first power-on waits ``boot_wait_s`` for the board to boot; ``stop()`` stops
sampling and leaves the board powered, so it is not reset between measurements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from audio_nas.errors import DeviceError, EnergyModelError

PPK2_SAMPLE_RATE_HZ = 100_000


@dataclass
class PowerTrace:
    current_ua: np.ndarray  # [n] µA
    digital: np.ndarray  # [n] uint8, bit k = digital input k
    voltage_mv: float
    sample_rate_hz: float = PPK2_SAMPLE_RATE_HZ


class PowerMonitor(Protocol):
    def start(self) -> None: ...

    def stop(self) -> PowerTrace: ...


def energy_per_inference_uj(trace: PowerTrace, marker_channel: int, n_inferences: int) -> float:
    """Energy of the samples with the marker high, per inference (µA x V = µW; / sample rate = µJ)."""
    if n_inferences < 1:
        raise EnergyModelError(f"n_inferences must be >= 1, got {n_inferences}")
    if len(trace.current_ua) != len(trace.digital):
        raise EnergyModelError(
            f"trace has {len(trace.current_ua)} current and {len(trace.digital)} digital samples"
        )
    marked = ((np.asarray(trace.digital, np.uint8) >> marker_channel) & 1).astype(bool)
    if not marked.any():
        raise EnergyModelError(
            f"no samples with the marker high on digital channel {marker_channel}: connect the "
            f"board's marker pin (D2 on the Arduino ports) to that PPK2 input"
        )
    uj = (
        float(np.sum(np.asarray(trace.current_ua, np.float64)[marked]))
        * trace.voltage_mv
        / 1000
        / trace.sample_rate_hz
    )
    return uj / n_inferences


def _default_api_factory(port: str | None) -> Any:
    try:
        from ppk2_api.ppk2_api import PPK2_API
    except ImportError as exc:
        raise DeviceError(
            "the PPK2 driver needs the optional package ppk2-api: pip install 'audio-nas[ppk2]' "
            "(or pip install ppk2-api); without it, energy comes from timing x the board profile's "
            "power"
        ) from exc
    if port is None:
        found = PPK2_API.list_devices()
        if not found:
            raise DeviceError("no PPK2 found: plug it in over USB, or pass its port (--monitor-port)")
        port = found[0] if isinstance(found[0], str) else found[0][0]
    return PPK2_API(port, timeout=1, write_timeout=1, exclusive=True)


class Ppk2Monitor:
    """The PPK2 in source-meter mode powering the board at ``voltage_mv``; samples until ``stop()``."""

    def __init__(
        self,
        port: str | None = None,
        voltage_mv: int = 3300,
        api_factory: Callable[[str | None], Any] = _default_api_factory,
        boot_wait_s: float = 1.0,
    ):
        self.voltage_mv = voltage_mv
        self.boot_wait_s = boot_wait_s
        self.powered = False
        self.api = api_factory(port)
        self._samples: list[float] = []
        self._bits: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> None:
        while not self._stop.is_set():
            data = self.api.get_data()
            if data:
                samples, bits = self.api.get_samples(data)
                self._samples.extend(samples)
                self._bits.extend(bits)
            else:
                time.sleep(0.001)

    def power_on(self) -> None:
        """Source-meter mode at ``voltage_mv`` and the board's supply on; the first time, wait for it to
        boot."""
        if self.powered:
            return
        self.api.get_modifiers()
        self.api.use_source_meter()
        self.api.set_source_voltage(self.voltage_mv)
        self.api.toggle_DUT_power("ON")
        self.powered = True
        time.sleep(self.boot_wait_s)

    def start(self) -> None:
        self.power_on()
        self._samples, self._bits = [], []
        self._stop.clear()
        self.api.start_measuring()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def stop(self) -> PowerTrace:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self.api.stop_measuring()
        n = min(len(self._samples), len(self._bits))
        return PowerTrace(
            np.asarray(self._samples[:n], np.float64),
            np.asarray(self._bits[:n], np.uint8),
            float(self.voltage_mv),
        )


MONITORS: dict[str, Callable[..., PowerMonitor]] = {"ppk2": Ppk2Monitor}
