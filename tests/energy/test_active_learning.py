"""Active learning for the energy predictor: measure what the forest is least sure about, never twice.

The rows come from the Python emulated device over the bridge (source "emulated-device": the cycle model
served
through the protocol, not a measurement); they test the loop, not how well the forest learns a board."""

from __future__ import annotations

import numpy as np
import pytest

from audio_nas.energy import load_board
from audio_nas.energy.measurements import MeasurementStore
from audio_nas.energy.predictor import RandomForestEnergyPredictor, spec_features
from audio_nas.errors import EnergyModelError
from audio_nas.firmware_bridge.campaign import campaign_specs, run_active_campaign
from audio_nas.firmware_bridge.emulator import EmulatedDevice
from audio_nas.space import ArchSpec

pytestmark = pytest.mark.xdist_group("energy")


@pytest.fixture(scope="module")
def device_port():
    with EmulatedDevice("nucleo-l4r5zi") as dev:
        yield f"socket://127.0.0.1:{dev.port}"


def test_active_rounds_measure_the_most_uncertain_candidates(tmp_path, device_port):
    board = load_board("nucleo-l4r5zi")
    store = MeasurementStore(tmp_path / "m.sqlite")
    history = run_active_campaign(
        board, rounds=2, per_round=2, pool_size=10, start=6, store=store, backend="device", port=device_port
    )
    ms = store.all(board.name)
    assert {m.source for m in ms} == {"emulated-device"}
    assert len(ms) == 6 + 2 * 2 and len({m.spec for m in ms}) == len(ms)  # nothing measured twice
    assert [h.measured_total for h in history] == [8, 10]
    assert all(np.isfinite(h.prequential_mape) and h.mean_relative_spread > 0 for h in history)

    # Round 0 again, by hand: the forest on the first 6, the spread of its trees over the same pool
    first = [ArchSpec.from_str(m.spec) for m in ms[:6]]
    rf = RandomForestEnergyPredictor(board, seed=0).fit(first, np.array([m.latency_ms for m in ms[:6]]))
    pool = [s for s in campaign_specs(10, 1000, board) if s.spec_hash not in {f.spec_hash for f in first}]
    X = np.stack([spec_features(s) for s in pool])
    per_tree = np.exp(np.stack([t.predict(X) for t in rf.model.estimators_]) + X[:, 0])
    rel_spread = per_tree.std(axis=0) / per_tree.mean(axis=0)
    expected = {pool[i].to_str() for i in np.argsort(-rel_spread)[:2]}
    assert {m.spec for m in ms[6:8]} == expected
    assert min(rel_spread[[i for i, s in enumerate(pool) if s.to_str() in expected]]) >= np.median(rel_spread)


def test_active_learning_resumes_and_draws_from_a_given_pool(tmp_path, device_port):
    board = load_board("nucleo-l4r5zi")
    store = MeasurementStore(tmp_path / "m.sqlite")
    pool = campaign_specs(9, 77, board)
    dev = {"backend": "device", "port": device_port}
    run_active_campaign(board, rounds=1, per_round=2, pool_specs=pool, start=5, store=store, **dev)
    before = {m.spec for m in store.all(board.name)}
    assert len(before) == 7 and len(before & {s.to_str() for s in pool}) >= 2
    history = run_active_campaign(board, rounds=5, per_round=3, pool_specs=pool, start=5, store=store, **dev)
    after = [m.spec for m in store.all(board.name)]
    assert len(after) == len(set(after))  # a resumed loop never repeats a measurement
    assert {s.to_str() for s in pool} <= set(after)  # it stops when the pool is exhausted
    assert len(history) < 5
    with pytest.raises(EnergyModelError, match="--per-round"):
        run_active_campaign(board, rounds=1, per_round=0, store=store, **dev)


def test_active_learning_refuses_the_cycle_model_backend(tmp_path):
    with pytest.raises(EnergyModelError, match="--backend device"):
        run_active_campaign(
            load_board("nucleo-l4r5zi"), rounds=1, per_round=1, store=MeasurementStore(tmp_path / "m.sqlite")
        )
