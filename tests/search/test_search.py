"""Search: strategies, store, resume after kill -9, pruning, hypervolume, config errors, executors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from audio_nas.config import from_dict
from audio_nas.errors import ConfigError, SearchError
from audio_nas.search import STRATEGIES, SearchConfig, TrialStore, run_search
from audio_nas.search.evaluate import evaluate_trial, should_prune
from audio_nas.search.objectives import hypervolume, non_dominated
from audio_nas.search.runner import SearchRunner
from audio_nas.search.strategies import StrategyContext
from audio_nas.space import DEFAULT_SPACE, ArchSpec

pytestmark = pytest.mark.xdist_group("search")


FIXTURE_TABLE = str(Path(__file__).resolve().parent / "data" / "nas-table-fixture.csv.gz")


def synth_cfg(**kw):
    base = dict(
        name="t",
        evaluator="surrogate",
        surrogate_table=FIXTURE_TABLE,
        n_trials=12,
        workers=1,
        n_initial=4,
        seed=0,
    )
    return SearchConfig(**{**base, **kw})


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_each_strategy_finishes_the_budget_with_a_front(tmp_path, strategy):
    res = run_search(synth_cfg(strategy=strategy, n_trials=14), tmp_path / strategy)
    assert res.n_finished == 14
    store = TrialStore(tmp_path / strategy / "study.sqlite")
    trials = store.trials()
    assert len(trials) == 14 and len({t.spec for t in trials}) == 14  # no duplicates
    assert all(t.state in ("complete", "pruned") for t in trials)
    assert res.pareto_ids and res.hypervolume > 0
    if strategy == "hybrid":
        assert {t.origin for t in trials} - {"random"}  # model-based parts took part


def test_same_seed_same_trials_and_other_seed_differs(tmp_path):
    a = run_search(synth_cfg(strategy="hybrid"), tmp_path / "a")
    b = run_search(synth_cfg(strategy="hybrid"), tmp_path / "b")
    c = run_search(synth_cfg(strategy="hybrid", seed=1), tmp_path / "c")
    specs = lambda r: [t.spec for t in TrialStore(r.run_dir / "study.sqlite").trials()]  # noqa: E731
    assert specs(a) == specs(b) and specs(a) != specs(c)


def test_strategy_state_round_trip_gives_identical_next_asks():
    from audio_nas.energy import load_board
    from audio_nas.search.evaluate import cheap_objectives
    from audio_nas.search.objectives import objective_vector
    from audio_nas.search.surrogate import load_surrogate

    board = load_board("nucleo-l4r5zi")

    def cheap(spec):
        c = cheap_objectives(spec, board)
        return None if c["infeasible"] else (np.log10(c["energy_uj"]), np.log10(c["peak_ram_bytes"]))

    for name, cls in STRATEGIES.items():
        s1 = cls(StrategyContext(DEFAULT_SPACE, cheap), seed=3)
        for _ in range(10):
            spec, _ = s1.ask(1)[0]
            c = cheap_objectives(spec, board)
            acc = load_surrogate(FIXTURE_TABLE).predict_curve(spec)[0][-1]
            s1.tell(spec, objective_vector(acc, c["energy_uj"], c["peak_ram_bytes"]))
        import json

        state = json.loads(json.dumps(s1.state_dict()))  # must be JSON-able
        s2 = cls(StrategyContext(DEFAULT_SPACE, cheap), seed=99)
        s2.load_state_dict(state)
        assert [s.to_str() for s, _ in s1.ask(3)] == [s.to_str() for s, _ in s2.ask(3)], name


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from audio_nas.search import SearchConfig
    from audio_nas.search.runner import SearchRunner
    if __name__ == "__main__":  # worker processes are spawned and re-import this file
        cfg = SearchConfig(name="k", evaluator="surrogate", surrogate_table=sys.argv[3], n_trials=16,
                           workers=2, n_initial=4, seed=0)
        SearchRunner(cfg, sys.argv[1], sleep_s=float(sys.argv[2])).run()
""")


def test_kill_minus_9_then_resume_loses_nothing(tmp_path):
    run_dir = tmp_path / "run"
    script = tmp_path / "s.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "AUDIO_NAS_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), "0.4", FIXTURE_TABLE], env=env, start_new_session=True
    )
    db = run_dir / "study.sqlite"
    deadline = time.time() + 120
    done_before = []
    while time.time() < deadline:
        time.sleep(0.5)
        if db.exists():
            done_before = TrialStore(db).trials(("complete", "pruned"))
            if len(done_before) >= 5:
                break
    assert len(done_before) >= 5, "the search made no progress before the kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    snapshot = {t.id: (t.spec, t.accuracy, t.state) for t in TrialStore(db).trials(("complete", "pruned"))}
    subprocess.run(
        [sys.executable, str(script), str(run_dir), "0", FIXTURE_TABLE], env=env, check=True, timeout=300
    )
    after = TrialStore(db).trials()
    finished = [t for t in after if t.state in ("complete", "pruned", "failed", "infeasible")]
    assert len(finished) == 16  # the budget exactly
    assert not [t for t in after if t.state in ("queued", "running")]
    for tid, (spec, acc, state) in snapshot.items():
        t = next(t for t in after if t.id == tid)
        assert (t.spec, t.accuracy, t.state) == (spec, acc, state)  # zero completed trials lost or redone


def test_crashing_candidate_is_recorded_as_failed():
    spec = "fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c8_relu|ds_k3_s1_c8_r1_relu|n12"
    res = evaluate_trial(
        {
            "spec": spec,
            "evaluator": "train",
            "dataset": "no-such-dataset",
            "train": {"epochs": 1},
            "pruner": {"kind": "none", "warmup_epochs": 1, "min_peers": 1},
            "peers": [],
            "cheap": {"energy_uj": 10.0, "macs": 1, "params": 1},
        }
    )
    assert res["state"] == "failed" and "no-such-dataset" in res["error"]


def test_pruner_only_compares_with_cheaper_peers():
    cfg = {"kind": "pareto-median", "warmup_epochs": 2, "min_peers": 2}
    peers = [(2.0, [0.5, 0.7, 0.8]), (2.5, [0.6, 0.8, 0.9]), (4.0, [0.9, 0.95, 0.97])]
    assert should_prune(1, 0.6, log_energy=3.0, peers=peers, cfg=cfg)  # two cheaper peers at 0.7/0.8
    assert not should_prune(1, 0.6, log_energy=2.2, peers=peers, cfg=cfg)  # only one cheaper peer
    assert not should_prune(0, 0.1, log_energy=3.0, peers=peers, cfg=cfg)  # warm-up
    assert not should_prune(1, 0.9, log_energy=3.0, peers=peers, cfg=cfg)
    assert not should_prune(1, 0.1, 3.0, peers, {**cfg, "kind": "none"})


def test_hypervolume_and_front_by_hand():
    ref = (1.0, 1.0, 1.0)
    assert hypervolume(np.array([[0.5, 0.5, 0.5]]), ref) == pytest.approx(0.125)
    # two boxes 0.5x0.5x0.5 and 0.25x1x1 (from [0.75,0,0]): union = 0.125 + 0.25 - 0.25*0.5*0.5
    F = np.array([[0.5, 0.5, 0.5], [0.75, 0.0, 0.0]])
    assert hypervolume(F, ref) == pytest.approx(0.125 + 0.25 - 0.0625)
    assert hypervolume(np.zeros((0, 3)), ref) == 0.0
    assert hypervolume(np.array([[2.0, 0.0, 0.0]]), ref) == 0.0  # beyond the reference point
    assert sorted(non_dominated(np.array([[1, 1, 1], [0, 2, 2], [2, 2, 2]]))) == [0, 1]


def test_incompatible_run_directory_is_refused(tmp_path):
    run_search(synth_cfg(n_trials=3, n_initial=2), tmp_path)
    with pytest.raises(SearchError, match="seed: 0 there, 5 now"):
        SearchRunner(synth_cfg(n_trials=3, n_initial=2, seed=5), tmp_path)
    # a larger budget with the same config resumes
    assert run_search(synth_cfg(n_trials=5, n_initial=2), tmp_path).n_finished == 5


@pytest.mark.parametrize(
    "data, key",
    [
        ({"n_trails": 3}, "n_trails"),
        ({"n_trials": "many"}, "n_trials"),
        ({"n_trials": 0}, "n_trials"),
        ({"strategy": "genetic"}, "strategy"),
        ({"n_initial": 50, "n_trials": 10}, "n_initial"),
        ({"train": {"epochz": 2}}, "train.epochz"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_config_names_the_key(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(SearchConfig, data)


def test_board_constraint_marks_infeasible_before_training(tmp_path):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(
        "name: tiny\ncore: cortex-m4f\nclock_hz: 48000000\nsram_bytes: 8000\nflash_bytes: 1000000\n"
        "active_power_mw: 10\nsleep_power_mw: 0.01\nkernels: cmsis-nn\nsources: [test]\n"
    )
    runner = SearchRunner(synth_cfg(board=str(tiny), n_trials=4), tmp_path / "r")
    big = ArchSpec.from_str("fe:logmel_w30_h20_m40|stem:c2d_k3_s1_c48_relu|ds_k3_s1_c64_r1_relu|n12")
    assert runner.cheap(big)["infeasible"].startswith("needs")
    assert runner.ctx.cheap_objectives(big) is None


@pytest.mark.slow
def test_ray_executor_on_a_local_instance(tmp_path):
    pytest.importorskip("ray")
    res = run_search(synth_cfg(executor="ray", workers=1, n_trials=4), tmp_path)
    assert res.n_finished == 4


def test_predicted_energy_source_uses_the_fitted_forest(tmp_path, monkeypatch):
    """The search's "predicted" source: the forest fitted on the board's measurements (QEMU instruction counts
    of the emulated board, tests/energy/data), used only while fresh and while it beats the emulated
    source."""
    import csv

    from audio_nas.energy import load_board
    from audio_nas.energy.measurements import Measurement, MeasurementStore, store_path
    from audio_nas.energy.predictor import fit_from_store, predictor_path
    from audio_nas.errors import EnergyModelError
    from audio_nas.search import evaluate as ev

    monkeypatch.setenv("AUDIO_NAS_HOME", str(tmp_path))
    monkeypatch.setattr(ev, "_ENERGY_MODELS", {})
    board = load_board("mps2-an386-cmsis")
    rows = list(csv.DictReader((Path(__file__).parents[1] / "energy/data/qemu_cmsis_invoke.csv").open()))
    spec = ArchSpec.from_str(rows[-1]["spec"])
    with pytest.raises(EnergyModelError, match="predictor fit"):
        ev.cheap_objectives(spec, board, "predicted")
    store = MeasurementStore(store_path(board.name))
    for r in rows[:-1]:
        lat = float(r["instructions"]) / board.clock_hz * 1e3
        m = Measurement(r["spec"], board.name, "measured", lat, lat * board.active_power_mw, None, None, 1)
        store.add(m, ArchSpec.from_str(r["spec"]).spec_hash)
    p = fit_from_store(store, board, n_estimators=30)
    p.meta["heldout"] = {**p.meta["heldout"], "better": "predicted"}  # as if the forest won held out
    p.save(predictor_path(board))
    monkeypatch.setattr(ev, "_ENERGY_MODELS", {})
    c = ev.cheap_objectives(spec, board, "predicted")
    assert c["energy_source"] == "predicted"
    measured = float(rows[-1]["instructions"]) / board.clock_hz * 1e3  # held out: never seen by the forest
    assert c["latency_ms"] == pytest.approx(measured, rel=0.6)
    p.meta["heldout"] = {**p.meta["heldout"], "better": "emulated"}
    p.save(predictor_path(board))
    monkeypatch.setattr(ev, "_ENERGY_MODELS", {})
    with pytest.raises(EnergyModelError, match="energy_source: emulated"):
        ev.cheap_objectives(spec, board, "predicted")


def test_ram_and_flash_are_board_totals_model_plus_firmware(tmp_path):
    from audio_nas.energy import load_board
    from audio_nas.energy.boards import board_memory
    from audio_nas.search.evaluate import cheap_objectives
    from audio_nas.space import arch_costs, resolve_arch

    board, spec = load_board("nucleo-l4r5zi"), resolve_arch("ds_cnn_s")
    c, mem = cheap_objectives(spec, board), board_memory(spec, board)
    assert mem.firmware_known and mem.firmware_ram_bytes > 0 and mem.firmware_flash_bytes > 0
    assert c["peak_ram_bytes"] == mem.total_ram_bytes == mem.model_ram_bytes + mem.firmware_ram_bytes
    assert c["flash_bytes"] == mem.total_flash_bytes and c["model_ram_bytes"] == mem.model_ram_bytes
    assert mem.model_ram_bytes > arch_costs(spec).arena_bytes  # + input staging + front-end
    # a board whose RAM holds the model but not the firmware too is infeasible
    snug = tmp_path / "snug.yaml"
    text = (Path(__file__).parents[2] / "audio_nas/energy/boards/nucleo-l4r5zi.yaml").read_text()
    snug.write_text(text.replace("sram_bytes: 655360", f"sram_bytes: {mem.model_ram_bytes + 1}"))
    reason = cheap_objectives(spec, load_board(snug))["infeasible"]
    assert reason and "B RAM (model" in reason and "firmware" in reason


def test_pareto_csv_has_the_model_share_and_the_board_total(tmp_path):
    import csv

    from audio_nas.energy.boards import board_memory
    from audio_nas.search.report import write_report

    cfg = synth_cfg(n_trials=6)
    run_search(cfg, tmp_path)
    runner = SearchRunner(cfg, tmp_path)
    write_report(runner, export=False)
    rows = list(csv.DictReader((tmp_path / "pareto.csv").open()))
    assert rows
    for r in rows:
        mem = board_memory(ArchSpec.from_str(r["spec"]), runner.board)
        assert int(r["total_ram_bytes"]) == mem.total_ram_bytes > int(r["model_ram_bytes"]) > 0
        assert int(r["total_flash_bytes"]) == mem.total_flash_bytes > int(r["model_flash_bytes"]) > 0
        assert "TFLM arena" in r["ram_source"] and "firmware: board profile" in r["flash_source"]
    report = (tmp_path / "report.md").read_text()
    assert "RAM B (model / total)" in report
    # the energy figures say what validates them (the per-op model's held-out error, the board's timing basis)
    assert "expected error: instruction counts held out by architecture: median 0.5%" in report
    assert "181.9 ms" in report  # synth_cfg's board is the Nucleo-L4R5ZI, calibrated on MLPerf Tiny


def test_weight_bits_key_searches_mixed_precision(tmp_path):
    cfg = synth_cfg(n_trials=16, weight_bits=(4, 8))
    res = run_search(cfg, tmp_path / "mixed")
    int4 = re.compile(r"_w4(?![0-9])")  # the weight-bits suffix, not a 40 ms window (fe:logmel_w40)
    specs = [t.spec for t in TrialStore(tmp_path / "mixed" / "study.sqlite").trials()]
    assert res.n_finished == 16 and any(int4.search(s) for s in specs)
    run_search(synth_cfg(n_trials=6), tmp_path / "int8")  # the default (8,) keeps every spec int8
    assert not any(int4.search(t.spec) for t in TrialStore(tmp_path / "int8" / "study.sqlite").trials())
    with pytest.raises(ConfigError, match="weight_bits"):
        synth_cfg(weight_bits=(2,))


def test_a_run_stored_before_a_compat_key_existed_still_resumes(tmp_path):
    cfg = synth_cfg(n_trials=4)
    run_search(cfg, tmp_path)
    store = TrialStore(tmp_path / "study.sqlite")
    old = store.get_meta("config")
    del old["weight_bits"]  # as written before the key existed
    store.set_meta("config", old)
    store.close()
    assert run_search(synth_cfg(n_trials=6), tmp_path).n_finished == 6
    with pytest.raises(SearchError, match="weight_bits"):
        run_search(synth_cfg(n_trials=8, weight_bits=(4, 8)), tmp_path)


def test_a_run_stored_before_a_nested_key_existed_still_resumes(tmp_path):
    from audio_nas.config import to_dict

    cfg = synth_cfg()
    old = to_dict(cfg)
    old["pruner"] = {k: v for k, v in old["pruner"].items() if k != "eta"}  # written before pruner.eta
    store = TrialStore(tmp_path / "study.sqlite")
    store.check_config(old, SearchConfig.COMPATIBILITY_KEYS)
    store.check_config(
        to_dict(cfg), SearchConfig.COMPATIBILITY_KEYS, defaults=to_dict(SearchConfig(name="t"))
    )
    changed = to_dict(synth_cfg(pruner=from_dict(type(cfg.pruner), {"kind": "asha"})))
    with pytest.raises(SearchError, match="pruner"):
        store.check_config(changed, SearchConfig.COMPATIBILITY_KEYS, defaults=to_dict(SearchConfig(name="t")))
