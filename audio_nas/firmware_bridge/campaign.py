"""Measurement campaigns: sample N architectures, export each, measure it, store every result at once.

The spec list is derived from the seed, so an interrupted campaign asks for the same specs again and
skips those already stored: nothing is lost or duplicated. Backends (registry ``BACKENDS``):
  emulated  the exported .tflite runs in the TFLM host interpreter (outputs, real arena size) and its
            op list (parsed from the flatbuffer) goes through the per-op cycle model of the board's core.
            An estimate, stored as source "emulated".
  device    the serial bridge (``audio_nas.firmware_bridge``): upload, warm-up + 5 repeats, median;
            the board's cycle count when it reports one. The firmware on a board (real, or QEMU for an
            emulated board) is stored as "measured"; the Python emulated device (which serves the cycle
            model) as "emulated-device".
Each backend resumes only its own rows (``energy.measurements.ROW_SOURCES``): a device campaign is never
skipped because cycle-model rows of the same specs exist, and the device backend asks the device which it
is first. With a power monitor, the monitor powers the board BEFORE the host opens its port (a board powered
by a PPK2 has no serial port, and no firmware to answer, until then), and the stored energy is the monitor's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_nas.energy.boards import BoardProfile
from audio_nas.energy.measurements import Measurement, MeasurementStore, store_path
from audio_nas.energy.models import EmulatedModel, energy_from_cycles
from audio_nas.energy.op_model import ops_from_tflite as op_shapes_from_tflite
from audio_nas.energy.predictor import RandomForestEnergyPredictor, check_fit_rows, energy_targets, mape
from audio_nas.errors import DeviceError, EnergyModelError
from audio_nas.export import export_random_with_input, tflm_arena_bytes
from audio_nas.firmware_bridge.client import DeviceClient
from audio_nas.firmware_bridge.ppk2 import energy_per_inference_uj
from audio_nas.progress import Progress
from audio_nas.search.store import TrialStore
from audio_nas.space import ArchSpec, arch_costs, sample_spec

log = logging.getLogger(__name__)


def campaign_specs(count: int, seed: int, board: BoardProfile) -> list:
    """The campaign's specs: deterministic from the seed, feasible on the board, no duplicates."""

    rng = np.random.default_rng(seed)
    specs, seen = [], set()
    while len(specs) < count:
        s = sample_spec(rng)
        c = arch_costs(s)
        if s.to_str() in seen or c.peak_ram_bytes + c.frontend_ram_bytes > board.sram_bytes:
            continue
        seen.add(s.to_str())
        specs.append(s)
    return specs


def measure_emulated(spec, board: BoardProfile, seed: int = 0, port: str | None = None) -> Measurement:
    tflite, _ = export_random_with_input(spec, seed)
    arena = tflm_arena_bytes(tflite)
    est = EmulatedModel().estimate(spec, board, layers=op_shapes_from_tflite(tflite))
    cycles = est.cycles
    return Measurement(spec.to_str(), board.name, "emulated", est.latency_ms, est.energy_uj, cycles, arena, 1)


def measure_device(
    spec, board: BoardProfile, seed: int = 0, port: str | None = None, monitor=None, marker_channel: int = 0
) -> Measurement:
    """Upload over the serial bridge, run warm-up + repeats on the board, keep the median.

    Energy: timing x the profile's active power, or, with a ``monitor``
    (audio_nas.firmware_bridge.ppk2.PowerMonitor), the current it sampled while the firmware's marker pin
    was high (wired to digital input ``marker_channel``); the monitor powers the board before the port opens.
    """
    if not port:
        raise DeviceError("the device backend needs --port (a serial port or socket://HOST:PORT)")
    tflite, x = export_random_with_input(spec, seed)
    if monitor is not None:
        monitor.start()  # powers the board (source-meter mode) before the host opens its port
    trace = None
    try:
        with DeviceClient(port) as client:
            m = client.measure(tflite, x, repeats=5, warmup=2)
    finally:
        if monitor is not None:
            trace = monitor.stop()
    if m.cycles:
        cycles = float(m.cycles)
        latency_ms = cycles / board.clock_hz * 1e3
    else:
        latency_ms, cycles = m.latency_ms, m.latency_ms * 1e-3 * board.clock_hz
    energy_uj, energy_from = energy_from_cycles(cycles, board, "measured").energy_uj, "profile-power"
    if trace is not None:
        energy_uj, energy_from = energy_per_inference_uj(trace, marker_channel, m.repeats), "monitor"
    return Measurement(
        spec.to_str(),
        board.name,
        DEVICE_ROW_SOURCE[m.source],
        latency_ms,
        energy_uj,
        cycles,
        m.arena_bytes,
        m.repeats,
        energy_from=energy_from,
    )


# what the device says it is (DeviceClient: its `version%` reply) -> the stored row's source
DEVICE_ROW_SOURCE = {"emulated": "emulated-device", "measured": "measured"}


def device_row_source(port: str | None, monitor=None) -> str:
    """The source the device at ``port`` produces ("measured" or "emulated-device"), asked before a
    campaign so that it resumes only its own rows. With a monitor, the monitor powers the board first."""
    if not port:
        raise DeviceError("the device backend needs --port (a serial port or socket://HOST:PORT)")
    if monitor is not None:
        monitor.start()
    try:
        with DeviceClient(port) as client:
            version = client.command("version").value("m-version-") or ""
    finally:
        if monitor is not None:
            monitor.stop()
    return DEVICE_ROW_SOURCE["emulated" if "emulated" in version else "measured"]


BACKENDS: dict[str, Callable] = {"emulated": measure_emulated, "device": measure_device}


def _todo(specs: list, board: BoardProfile, backend: str, store: MeasurementStore, port, monitor) -> list:
    """The specs this backend has not stored yet; only rows of the source it produces count as done."""
    source = "emulated" if backend == "emulated" else device_row_source(port, monitor)
    todo = [s for s in specs if not store.has(s.spec_hash, board.name, source)]
    log.info(
        "campaign on %s (%s rows): %d of %d specs already stored",
        board.name,
        source,
        len(specs) - len(todo),
        len(specs),
    )
    return todo


def _measure_and_store(
    spec,
    board: BoardProfile,
    backend: str,
    seed: int,
    port: str | None,
    store: MeasurementStore,
    max_errors: int,
    monitor=None,
) -> Measurement:
    """One measurement, retried with backoff on a board reset or a pulled cable, stored as soon as it
    arrives."""
    for attempt in range(max_errors):
        try:
            extra = {"monitor": monitor} if monitor is not None else {}
            m = BACKENDS[backend](spec, board, seed, port, **extra)
            break
        except DeviceError as exc:
            if attempt + 1 == max_errors:
                done = len(store.all(board.name))
                raise DeviceError(
                    f"{exc} (after {max_errors} attempts; {done} measurements are stored, "
                    f"run the same command again to resume)"
                ) from exc
            time.sleep(0.5 * 2**attempt)
    store.add(m, spec.spec_hash)
    return m


def run_campaign(
    board: BoardProfile,
    count: int,
    *,
    seed: int = 0,
    backend: str = "emulated",
    store: MeasurementStore | None = None,
    max_errors: int = 3,
    port: str | None = None,
    monitor=None,
) -> MeasurementStore:
    if backend not in BACKENDS:
        raise EnergyModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if monitor is not None and backend != "device":
        raise EnergyModelError(
            "a power monitor (--monitor) needs the device backend (--backend device --port P)"
        )
    store = store or MeasurementStore(store_path(board.name))
    specs = campaign_specs(count, seed, board)
    todo = _todo(specs, board, backend, store, port, monitor)
    lat = []
    with Progress(f"measuring on {board.name} ({backend})", len(todo), unit="model", logger=log) as bar:
        for spec in todo:
            m = _measure_and_store(spec, board, backend, seed, port, store, max_errors, monitor)
            lat.append(m.latency_ms)
            bar.update(1, median_ms=f"{np.median(lat):.1f}")
    return store


@dataclass
class ActiveRound:
    """One round of active learning: what was measured and how wrong the forest was about it beforehand."""

    round: int
    measured_total: int
    chosen: int
    mean_relative_spread: float  # of the chosen specs, before measuring (tree std / mean)
    prequential_mape: float  # prediction error on the chosen specs, predicted before they were measured


def run_active_campaign(
    board: BoardProfile,
    rounds: int,
    per_round: int,
    *,
    pool_size: int = 200,
    pool_specs: list | None = None,
    start: int = 10,
    seed: int = 0,
    backend: str = "emulated",
    store: MeasurementStore | None = None,
    port: str | None = None,
    max_errors: int = 3,
) -> list[ActiveRound]:
    """Active learning for the energy predictor: fit the forest on what is measured, measure the ``per_round``
    candidates whose prediction the trees disagree on most, refit, repeat.

    Candidates come from ``pool_specs`` (e.g. the architectures a search visited) or a fresh random sample of
    ``pool_size`` per round. With fewer than ``start`` measurements a random campaign of ``start`` runs first.
    Every measurement is stored as it arrives, so an interrupted loop resumes with nothing lost or repeated.
    The forest learns only from the device's own rows: the in-process "emulated" backend is refused, since a
    forest fitted on the cycle model's outputs would pick what the cycle model finds hard, not the board.
    """
    if backend not in BACKENDS:
        raise EnergyModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "device":
        raise EnergyModelError(
            f"active learning fits the forest on measurements; the {backend!r} backend is the cycle model. "
            f"Measure a board: --backend device --port P"
        )
    if rounds < 1 or per_round < 1:
        raise EnergyModelError(
            f"--active needs rounds >= 1 and --per-round >= 1, got {rounds} and {per_round}"
        )
    store = store or MeasurementStore(store_path(board.name))
    source = device_row_source(port)
    if len(store.all(board.name, source)) < max(start, 5):
        run_campaign(
            board, max(start, 5), seed=seed, backend=backend, store=store, port=port, max_errors=max_errors
        )
    history = []
    for r in range(rounds):
        ms = store.all(board.name, source)
        check_fit_rows(ms, board)
        specs = [ArchSpec.from_str(m.spec) for m in ms]
        pred = RandomForestEnergyPredictor(board, seed=seed).fit(
            specs,
            np.array([m.latency_ms for m in ms]),
            store.content_hash(board.name, source),
            energies_uj=energy_targets(ms, board),
        )
        seen = {s.spec_hash for s in specs}
        candidates = (
            pool_specs if pool_specs is not None else campaign_specs(pool_size, seed + 1000 + r, board)
        )
        pool = list({s.spec_hash: s for s in candidates if s.spec_hash not in seen}.values())
        if not pool:
            log.info("active learning: every candidate is measured; stopping after %d rounds", r)
            break
        chosen = pred.most_uncertain(pool, per_round)
        mean, sd = pred.predict_latency(chosen)
        actual = []
        for spec in chosen:
            actual.append(_measure_and_store(spec, board, backend, seed, port, store, max_errors).latency_ms)
        history.append(
            ActiveRound(
                r,
                len(store.all(board.name, source)),
                len(chosen),
                float(np.mean(sd / mean)),
                mape(np.array(actual), mean),
            )
        )
        log.info(
            "active round %d: measured %d (spread %.3f), prequential MAPE %.1f%%",
            r,
            len(chosen),
            history[-1].mean_relative_spread,
            history[-1].prequential_mape,
        )
    return history


def search_pool(run_dir: str | Path) -> list:
    """The architectures a search run visited: the candidate pool for measuring what the search cares
    about."""
    path = Path(run_dir) / "study.sqlite"
    if not path.exists():
        raise EnergyModelError(
            f"{run_dir} has no study.sqlite: pass a search run directory (e.g. runs/default)"
        )
    return [ArchSpec.from_str(t.spec) for t in TrialStore(path).trials()]
