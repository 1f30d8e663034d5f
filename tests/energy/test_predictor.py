"""The random forest learns from measurements of one source, its energy from a power monitor when there is
one,
and the search gets it only when it is fresh and beats the emulated source on held-out measurements.

Measured rows: QEMU instruction counts of the emulated board mps2-an386-cmsis (TFLM + CMSIS-NN), committed in
tests/energy/data/ (README there: where and how they were measured)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from audio_nas.energy import load_board, make_energy_model
from audio_nas.energy.measurements import Measurement, MeasurementStore
from audio_nas.energy.predictor import (
    PredictedModel,
    RandomForestEnergyPredictor,
    cross_validate,
    fit_from_store,
)
from audio_nas.errors import EnergyModelError
from audio_nas.space import ArchSpec

pytestmark = pytest.mark.xdist_group("energy")
DATA = Path(__file__).parent / "data" / "qemu_cmsis_invoke.csv"
BOARD = "mps2-an386-cmsis"


def qemu_measurements(n: int | None = None, energy_mw: float | None = None) -> list[Measurement]:
    """The committed QEMU rows as the device backend stores them: cycles = instructions, latency at the
    board's
    clock, energy = latency x profile power (or x ``energy_mw`` labelled as a monitor's, for the energy
    tests)."""
    b = load_board(BOARD)
    out = []
    for r in list(csv.DictReader(DATA.open()))[:n]:
        cycles = float(r["instructions"])
        lat = cycles / b.clock_hz * 1e3
        if energy_mw is None:
            out.append(
                Measurement(r["spec"], b.name, "measured", lat, lat * b.active_power_mw, cycles, None, 1)
            )
        else:
            out.append(
                Measurement(
                    r["spec"],
                    b.name,
                    "measured",
                    lat,
                    lat * energy_mw,
                    cycles,
                    None,
                    1,
                    energy_from="monitor",
                )
            )
    return out


def fill(store: MeasurementStore, ms: list[Measurement]) -> None:
    for m in ms:
        store.add(m, ArchSpec.from_str(m.spec).spec_hash)


def cycle_model_rows(specs: list[str]) -> list[Measurement]:
    b = load_board(BOARD)
    em = make_energy_model("emulated")
    out = []
    for s in specs:
        e = em.estimate(ArchSpec.from_str(s), b)
        out.append(Measurement(s, b.name, "emulated", e.latency_ms, e.energy_uj, e.cycles, None, 1))
    return out


def test_predictor_fits_predicts_with_uncertainty_and_saves_with_hash(tmp_path):
    b = load_board(BOARD)
    ms = qemu_measurements()
    specs = [ArchSpec.from_str(m.spec) for m in ms]
    y = np.array([m.latency_ms for m in ms])
    p = RandomForestEnergyPredictor(b, n_estimators=60).fit(specs[:50], y[:50], "abc")
    lat, sd = p.predict_latency(specs[50:])
    lo, hi = p.latency_interval(specs[50:])
    assert np.all(sd > 0) and np.all(lo <= lat) and np.all(lat <= hi)
    e, _ = p.predict(specs[50:])
    np.testing.assert_allclose(e, lat * b.active_power_mw)  # no monitor energy: latency x profile power
    assert len(p.most_uncertain(specs[50:], 3)) == 3
    path = p.save(tmp_path / "pred")
    q = RandomForestEnergyPredictor.load(path, b, expect_hash="abc")
    np.testing.assert_allclose(q.predict_latency(specs[50:])[0], lat)
    with pytest.raises(EnergyModelError, match="predictor fit --board mps2-an386-cmsis"):
        RandomForestEnergyPredictor.load(path, b, expect_hash="zzz")
    with pytest.raises(EnergyModelError, match="at least 5"):
        RandomForestEnergyPredictor(b).fit(specs[:3], y[:3])


def test_heldout_evaluation_on_measured_rows_refuses_cycle_model_rows():
    b = load_board(BOARD)
    ms = qemu_measurements()
    r = cross_validate(ms, b, folds=5)
    assert r["n"] == 60 and r["source"] == "measured" and r["interval"] == 0.9
    assert 0 < r["rf_mape"] < 100 and 0 <= r["rf_interval_coverage"] <= 1
    assert {"emulated_mape", "cycle_model_mape", "macs_linear_mape", "analytic_mape"} <= set(r)
    assert r["emulated_in_sample_rows"] == 60  # the shipped per-op model was fitted on these very archs
    best_other = min(r["emulated_mape"], r["cycle_model_mape"])
    assert r["better"] == ("predicted" if r["rf_mape"] < best_other else "emulated")
    # the emulated source's own outputs are no measurements: a forest fitted on them learns that model
    with pytest.raises(EnergyModelError, match="emulated model's own outputs"):
        cross_validate(cycle_model_rows([m.spec for m in ms[:20]]), b)
    with pytest.raises(EnergyModelError, match="one source at a time"):
        cross_validate(ms[:10] + cycle_model_rows([m.spec for m in ms[10:20]]), b)


def test_fit_uses_one_source_and_records_it(tmp_path):
    b = load_board(BOARD)
    store = MeasurementStore(tmp_path / "m.sqlite")
    ms = qemu_measurements(30)
    fill(store, ms)
    fill(store, cycle_model_rows([m.spec for m in ms]))  # the same specs through the cycle model
    p = fit_from_store(store, b, n_estimators=50)
    assert p.meta["source"] == "measured" and p.meta["rows"] == 30
    assert "QEMU instruction counts" in p.meta["source_kind"]
    assert p.fitted_on == store.content_hash(b.name, "measured") != store.content_hash(b.name)
    assert p.meta["heldout"]["n"] == 30 and p.meta["energy_target"] == "latency x profile power"
    with pytest.raises(EnergyModelError, match="emulated model's own outputs"):
        fit_from_store(store, b, source="emulated")
    with pytest.raises(EnergyModelError, match="no 'measured' rows for nucleo-l4r5zi"):
        fit_from_store(store, load_board("nucleo-l4r5zi"))


def test_energy_is_learned_from_the_monitor_column(tmp_path):
    b = load_board(BOARD)
    store = MeasurementStore(tmp_path / "m.sqlite")
    # a monitor that measured 10 mW (not the profile's 40.8 mW): the forest must learn the measured energy
    fill(store, qemu_measurements(30, energy_mw=10.0))
    p = fit_from_store(store, b, n_estimators=50)
    assert p.energy_model is not None and p.meta["energy_target"].startswith("power monitor")
    specs = [ArchSpec.from_str(m.spec) for m in qemu_measurements(40)[30:]]
    e, _ = p.predict(specs)
    lat, _ = p.predict_latency(specs)
    # two forests (latency, energy), so the ratio is ~10 mW, learned; the profile would give 40.8
    assert np.median(e / lat) == pytest.approx(10.0, rel=0.05) and np.all(np.abs(e / lat - 10) < 2)
    mixed = MeasurementStore(tmp_path / "mixed.sqlite")
    fill(mixed, qemu_measurements(10, energy_mw=10.0) + qemu_measurements(20)[10:])
    with pytest.raises(EnergyModelError, match="10 of 20 rows"):
        fit_from_store(mixed, b)


def test_search_gets_the_forest_only_when_fresh_and_better(tmp_path):
    b = load_board(BOARD)
    store_file, pred_file = tmp_path / "m.sqlite", tmp_path / "predictor"
    store = MeasurementStore(store_file)
    fill(store, qemu_measurements(30))
    p = fit_from_store(store, b, n_estimators=50)
    spec = ArchSpec.from_str(qemu_measurements(31)[30].spec)

    # pretend the stored held-out evaluation says the forest wins: it is used, with its uncertainty
    p.meta["heldout"] = {**p.meta["heldout"], "better": "predicted"}
    p.save(pred_file)
    e = PredictedModel(store_file, pred_file).estimate(spec, b)
    assert e.source == "predicted" and e.energy_uj > 0 and e.uncertainty_uj > 0

    # a new measurement makes it stale: refused, naming the fix
    fill(store, qemu_measurements(31)[30:])
    with pytest.raises(EnergyModelError, match=r"stale.*audio-nas predictor fit --board mps2-an386-cmsis"):
        PredictedModel(store_file, pred_file).estimate(spec, b)

    # refitted: fresh, and the forest's real held-out result decides
    p = fit_from_store(store, b, n_estimators=50)
    p.save(pred_file)
    model = PredictedModel(store_file, pred_file)
    if p.meta["heldout"]["better"] == "predicted":
        assert model.estimate(spec, b).source == "predicted"
    else:
        with pytest.raises(EnergyModelError, match="energy_source: emulated"):
            model.estimate(spec, b)
