"""Reproducible, durable searches (issue 14, item 6).

Same seed and worker count -> the same trials, even when workers finish out of order; a SIGKILL at the
worst moments (inside the ask transaction, right after it, after a result is stored but not told, inside
the tell transaction) loses no result, duplicates no proposal, and the resumed run ends with exactly the
trials of an uninterrupted one.

The searches run in subprocesses with a fixture evaluator defined in the script (no training, no
dependence on the table surrogate): its accuracy is a hash of the spec, its learning curve honours
the pruner, and it sleeps a random, unseeded time so that two workers finish in varying order.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from audio_nas.errors import SearchError
from audio_nas.search import TrialStore

pytestmark = pytest.mark.xdist_group("search")

SCRIPT = textwrap.dedent("""
    import hashlib, math, os, sys, time
    from audio_nas.search import PrunerConfig, SearchConfig
    from audio_nas.search.evaluate import should_prune
    from audio_nas.search.runner import SearchRunner
    from audio_nas.training import TrainConfig

    def fixture_evaluate(payload):
        h = hashlib.sha256(payload["spec"].encode()).digest()
        acc_max = 0.3 + 0.6 * h[0] / 255
        epochs = payload["train"]["epochs"]
        log_e = math.log10(max(payload["cheap"]["energy_uj"], 1e-9))
        curve = []
        for e in range(epochs):
            curve.append(round(acc_max * (1 - 0.5 ** (e + 1)), 6))
            if e + 1 < epochs and should_prune(e, curve[-1], log_e, payload["peers"], payload["pruner"]):
                break
        time.sleep(os.urandom(1)[0] / 255 * 0.15)  # unseeded: the finishing order varies between runs
        return {"state": "pruned" if len(curve) < epochs else "complete", "accuracy": max(curve),
                "test_accuracy": max(curve), "curve": curve, "epochs_run": len(curve), "duration_s": 0.0}

    if __name__ == "__main__":  # worker processes are spawned and re-import this file
        run_dir, workers, n_trials, strategy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        cfg = SearchConfig(name="d", evaluator="surrogate", strategy=strategy, n_trials=n_trials,
                           workers=workers, n_initial=4, seed=0, train=TrainConfig(epochs=4),
                           pruner=PrunerConfig(warmup_epochs=2, min_peers=2))
        SearchRunner(cfg, run_dir, evaluate_fn=fixture_evaluate).run()
""")


N_TRIALS, WORKERS, STRATEGY = 12, 2, "hybrid"


def _run(script, run_dir, crash_at=None, timeout=300):
    env = {**os.environ, "AUDIO_NAS_NO_PROGRESS": "1"}
    env.pop("AUDIO_NAS_CRASH_AT", None)
    if crash_at:
        env["AUDIO_NAS_CRASH_AT"] = crash_at
    log = run_dir.parent / f"{run_dir.name}-{crash_at or 'run'}.log".replace(":", "-")
    with open(log, "w") as err:  # a file, not a pipe: orphaned pool workers of a killed run keep pipes open
        proc = subprocess.Popen(
            [sys.executable, str(script), str(run_dir), str(WORKERS), str(N_TRIALS), STRATEGY],
            env=env,
            start_new_session=True,
            stderr=err,
        )
        try:
            proc.wait(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the orphaned pool workers of a killed run
            except ProcessLookupError:
                pass
    return proc.returncode, log.read_text()


def _trials(run_dir):
    store = TrialStore(run_dir / "study.sqlite")
    try:
        return store.trials()
    finally:
        store.close()


def _summary(trials):
    return [(t.spec, t.origin, t.state, t.accuracy, t.curve) for t in trials]


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("script") / "search_script.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture(scope="module")
def reference(script, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    rc, err = _run(script, run_dir)
    assert rc == 0, err
    return _trials(run_dir)


def _finish_order_differs_from_ask_order(trials) -> bool:
    rows = sqlite3.connect(trials).execute("SELECT id FROM trials ORDER BY finished, id").fetchall()
    return [r[0] for r in rows] != sorted(r[0] for r in rows)


def test_same_seed_and_workers_give_the_same_trials_whatever_the_finishing_order(script, reference, tmp_path):
    assert len(reference) == N_TRIALS and len({t.spec for t in reference}) == N_TRIALS
    assert all(t.told for t in reference)
    assert {t.state for t in reference} <= {"complete", "pruned"}
    again = []
    for i in range(2):
        rc, err = _run(script, tmp_path / f"r{i}")
        assert rc == 0, err
        again.append(_trials(tmp_path / f"r{i}"))
        assert _summary(again[-1]) == _summary(reference)
    # the check means something only if workers did finish out of ask order in some run
    dbs = [tmp_path / f"r{i}" / "study.sqlite" for i in range(2)]
    assert any(_finish_order_differs_from_ask_order(db) for db in dbs)


@pytest.mark.parametrize("crash_at", ["ask:5", "asked:5", "finished:4", "tell:4"])
def test_kill_at_the_worst_moment_then_resume_equals_the_uninterrupted_run(
    script, reference, tmp_path, crash_at
):
    run_dir = tmp_path / "run"
    rc, err = _run(script, run_dir, crash_at=crash_at)
    assert rc == -signal.SIGKILL, f"the crash hook did not fire (rc {rc}): {err[-2000:]}"
    before = _trials(run_dir)
    assert len(before) < N_TRIALS or not all(t.told for t in before)  # it really stopped early
    assert len({t.spec for t in before}) == len(before)
    kept = {t.id: (t.spec, t.state, t.accuracy) for t in before if t.state in ("complete", "pruned")}
    rc, err = _run(script, run_dir)
    assert rc == 0, err
    after = _trials(run_dir)
    assert _summary(after) == _summary(reference)  # no loss, no duplicate, same proposals in the same order
    assert all(t.told for t in after)
    for tid, row in kept.items():  # results stored before the kill are kept, not redone differently
        t = next(t for t in after if t.id == tid)
        assert (t.spec, t.state, t.accuracy) == row


LEGACY_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
  id INTEGER PRIMARY KEY, spec TEXT NOT NULL, spec_hash TEXT NOT NULL, origin TEXT NOT NULL,
  state TEXT NOT NULL, accuracy REAL, test_accuracy REAL, energy_uj REAL, energy_source TEXT,
  latency_ms REAL, peak_ram_bytes INTEGER, flash_bytes INTEGER, params INTEGER, macs INTEGER,
  curve TEXT, epochs_run INTEGER, created REAL NOT NULL, started REAL, finished REAL, duration_s REAL,
  attempts INTEGER NOT NULL DEFAULT 0, error TEXT, worker TEXT
);
CREATE TABLE baselines (name TEXT PRIMARY KEY, result TEXT NOT NULL);
"""


def _legacy_db(path, rows):
    db = sqlite3.connect(path)
    db.executescript(LEGACY_SCHEMA)
    for i, (spec, h, state) in enumerate(rows, 1):
        db.execute(
            "INSERT INTO trials (id, spec, spec_hash, origin, state, created) "
            "VALUES (?, ?, ?, 'random', ?, 0)",
            (i, spec, h, state),
        )
    db.commit()
    db.close()


def test_version_1_study_is_migrated_told_and_unique(tmp_path):
    path = tmp_path / "study.sqlite"
    _legacy_db(path, [("a", "ha", "complete"), ("b", "hb", "failed"), ("c", "hc", "queued")])
    store = TrialStore(path)
    store.check_resumable()
    assert [t.told for t in store.trials()] == [True, True, False]  # version 1 told trials as they finished
    with pytest.raises(SearchError, match="already trial 2"):
        store.add("b", "hb", "random")
    store.close()
    assert TrialStore(path).get_meta("schema_version") == 2


def test_version_1_study_with_a_duplicate_is_readable_but_refused_for_resume(tmp_path):
    path = tmp_path / "study.sqlite"
    _legacy_db(path, [("a", "ha", "complete"), ("a", "ha", "complete")])
    store = TrialStore(path)
    assert len(store.trials()) == 2  # reports can still read it
    with pytest.raises(SearchError, match="new run directory"):
        store.check_resumable()


def test_a_failed_transaction_writes_nothing(tmp_path):
    store = TrialStore(tmp_path / "study.sqlite")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add("x", "hx", "random")
            store.set_meta("strategy_state", {"asked": 1})
            raise RuntimeError("killed here")
    assert store.trials() == [] and store.get_meta("strategy_state") is None
