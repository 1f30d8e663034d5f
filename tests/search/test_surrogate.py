"""The table surrogate, the early-stopping rules and their replay, and the fair benchmark's oracle
(issue 14). The fixture is a slice of real table rows (tests/search/data/nas-table-fixture.csv.gz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio_nas.errors import ConfigError, DataError
from audio_nas.search.pruners import PRUNERS, extrapolate_final, replay, should_stop
from audio_nas.search.surrogate import CurveSurrogate, cross_validate, load_surrogate
from audio_nas.search.table import read_table
from audio_nas.space import DEFAULT_SPACE, ArchSpec, sample_spec

FIXTURE = Path(__file__).resolve().parent / "data" / "nas-table-fixture.csv.gz"


@pytest.fixture(scope="module")
def rows():
    return read_table(FIXTURE)


@pytest.fixture(scope="module")
def surrogate(rows):
    return CurveSurrogate.fit(rows, n_estimators=50)


def test_measured_rows_are_answered_from_the_table(rows, surrogate):
    r = next(r for r in rows if not r.get("error"))
    curve, test = surrogate.predict_curve(ArchSpec.from_str(r["spec"]), seed=int(r["seed"]))
    assert curve == pytest.approx(r["val_acc_curve"]) and test == pytest.approx(r["test_acc"])


def test_predicted_curves_are_deterministic_bounded_and_seed_noisy(surrogate):
    spec = sample_spec(np.random.default_rng(123), DEFAULT_SPACE)
    a, ta = surrogate.predict_curve(spec, seed=0)
    b, _ = surrogate.predict_curve(spec, seed=0)
    c, _ = surrogate.predict_curve(spec, seed=1)
    assert a == b and len(a) == surrogate.epochs
    assert all(0.0 <= v <= 1.0 for v in a) and 0.0 <= ta <= 1.0
    if surrogate.noise_sd > 0:
        assert a != c


def test_other_epochs_and_too_small_tables_are_refused(rows, surrogate):
    spec = sample_spec(np.random.default_rng(1), DEFAULT_SPACE)
    with pytest.raises(ConfigError, match="train.epochs"):
        surrogate.predict_curve(spec, epochs=surrogate.epochs + 1)
    with pytest.raises(DataError, match="bench table build"):
        CurveSurrogate.fit(rows[:3])
    with pytest.raises(ConfigError, match="does not exist"):
        load_surrogate("/nonexistent/table.csv.gz")


def test_cross_validation_reports_tau_next_to_the_noise_floor(rows):
    fid = cross_validate(rows, folds=3)
    assert -1.0 <= fid["kendall_tau"] <= 1.0 and fid["rows"] >= 6
    assert "noise_floor" in fid and fid["mae"] >= 0
    half = cross_validate(rows, folds=3, train_fraction=0.5)  # the same held-out folds, half the training
    assert half["rows"] == fid["rows"] and half["train_rows_per_fold"] < fid["train_rows_per_fold"]
    with pytest.raises(ConfigError, match=r"train_fraction must be in \(0, 1\]; got 0"):
        cross_validate(rows, folds=3, train_fraction=0)


def test_evaluate_trial_with_the_surrogate(rows):
    from audio_nas.search.evaluate import evaluate_trial

    r = next(r for r in rows if not r.get("error") and int(r["seed"]) == 0)
    out = evaluate_trial(
        {
            "spec": r["spec"],
            "evaluator": "surrogate",
            "surrogate_table": str(FIXTURE),
            "train": {"epochs": len(r["val_acc_curve"]), "seed": 0},
            "pruner": {"kind": "none", "warmup_epochs": 1, "min_peers": 1},
            "peers": [],
            "cheap": {"energy_uj": 100.0},
        }
    )
    assert out["state"] == "complete", out.get("error")
    assert out["curve"] == pytest.approx(r["val_acc_curve"]) and out["test_accuracy"] == pytest.approx(
        r["test_acc"]
    )


def test_rules():
    cfg = {"warmup_epochs": 2, "min_peers": 2, "eta": 3, "epochs": 10}
    peers = [(1.0, [0.5] * 10), (1.0, [0.6] * 10), (1.0, [0.7] * 10), (5.0, [0.9] * 10)]
    curve = [0.1] * 10
    assert not should_stop("none", 1, curve, 2.0, peers, cfg)
    assert should_stop("pareto-median", 1, curve, 2.0, peers, cfg)
    assert not should_stop("pareto-median", 0, curve, 2.0, peers, cfg)  # warm-up
    assert should_stop("asha", 1, curve, 2.0, peers, cfg)  # epoch 2 is the first rung
    assert not should_stop("asha", 2, curve, 2.0, peers, cfg)  # epoch 3 is no rung
    assert not should_stop("pareto-asha", 1, curve, 0.5, peers, cfg)  # no cheaper peers
    assert should_stop("lc-extrapolation", 2, curve, 2.0, peers, cfg)
    rising = [0.9 - 0.5 * (e + 1) ** -1.0 for e in range(10)]
    assert extrapolate_final(rising[:4], 10) == pytest.approx(rising[-1], abs=0.02)


def test_replay_none_saves_nothing_and_rules_save_compute(rows):
    rng = np.random.default_rng(0)
    trials = [
        {"curve": r["val_acc_curve"], "energy_uj": float(rng.uniform(10, 1000)), "ram_bytes": 50_000.0}
        for r in rows
        if not r.get("error")
    ]
    ref = (1.0, 5.0, 6.0)
    base = replay(trials, "none", {"warmup_epochs": 2, "min_peers": 2, "eta": 3}, order_seed=0, ref=ref)
    assert base["epochs_trained"] == base["epochs_full"] and base["hv"] == pytest.approx(base["hv_full"])
    for name in PRUNERS:
        r = replay(trials, name, {"warmup_epochs": 2, "min_peers": 2, "eta": 3}, order_seed=0, ref=ref)
        assert r["epochs_trained"] <= r["epochs_full"] and r["hv"] <= r["hv_full"] + 1e-12


def test_benchmark_oracle_answers_infeasible_and_repeated_specs_free(surrogate):
    from audio_nas.bench.search import REF, BudgetExhausted, Oracle, _cheap

    rng = np.random.default_rng(5)
    oracle = Oracle(surrogate, budget=3, seed=0)
    feasible = []
    while len(feasible) < 4:
        s = sample_spec(rng, DEFAULT_SPACE)
        if not _cheap(s.to_str())["infeasible"]:
            feasible.append(s)
    f0 = oracle(feasible[0])
    assert np.array_equal(oracle(feasible[0]), f0) and len(oracle.history) == 1 and oracle.free_answers == 1
    oracle(feasible[1])
    oracle(feasible[2])
    assert oracle.done
    with pytest.raises(BudgetExhausted):
        oracle(feasible[3])
    assert len(REF) == 3


def test_descriptors_are_finite_and_of_one_length():
    from audio_nas.search.arch_features import descriptors
    from audio_nas.space.presets import PRESETS

    rng = np.random.default_rng(3)
    specs = [sample_spec(rng, DEFAULT_SPACE) for _ in range(20)] + [ArchSpec.from_str(PRESETS["ds_cnn_s"])]
    vecs = [descriptors(s) for s in specs]
    assert len({len(v) for v in vecs}) == 1 and all(np.isfinite(v).all() for v in vecs)
    assert not np.allclose(vecs[0], vecs[1])
    # the layer-plan descriptors (receptive field in time, conv count, layer count, largest and smallest
    # per-layer MACs) must see the plan's ops: they once matched no op name and were constant
    assert np.ptp(np.stack(vecs)[:, -9:], axis=0)[[0, 2, 3, 6, 7]].min() > 0


def test_benchmark_grid_does_not_depend_on_the_process_count():
    from audio_nas.bench.search import compare

    one, _ = compare(str(FIXTURE), [0, 1], 6, ["random", "evolution"], jobs=1)
    two, _ = compare(str(FIXTURE), [0, 1], 6, ["random", "evolution"], jobs=2)
    assert all(np.allclose(one[m], two[m]) for m in one)


def test_benchmark_grid_resumes_from_its_cache_of_finished_runs(tmp_path, monkeypatch):
    import audio_nas.bench.search as bs

    first, info = bs.compare(str(FIXTURE), [0, 1], 6, ["random"], jobs=1, cache=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random-s0-b6.npz", "random-s1-b6.npz"]
    (tmp_path / "random-s1-b6.npz").unlink()  # as if killed before seed 1 finished
    ran = []
    real = bs.run_method
    monkeypatch.setattr(bs, "run_method", lambda m, sur, s, b: ran.append(s) or real(m, sur, s, b))
    again, info2 = bs.compare(str(FIXTURE), [0, 1], 6, ["random"], jobs=1, cache=tmp_path)
    assert (
        ran == [1]
        and np.allclose(first["random"], again["random"])
        and info2["random"][0] == info["random"][0]
    )


def test_summary_tests_the_default_against_the_peer_and_its_own_parts():
    from audio_nas.bench.search import DEFAULT_STRATEGY, summary_md

    rng = np.random.default_rng(0)
    part = "hybrid" if DEFAULT_STRATEGY != "hybrid" else "bo"
    curves = {
        DEFAULT_STRATEGY: 3.0 + rng.random((8, 10)) * 0.1,
        part: 2.5 + rng.random((8, 10)) * 0.1,
        "random": 2.0 + rng.random((8, 10)) * 0.1,
    }
    info = {m: [{"evals": 10, "free": 0, "s": 1.0}] * 8 for m in curves}
    md = summary_md(curves, info, 10)
    assert "Best peer at 10: **random**" in md and f"The default ({DEFAULT_STRATEGY}) reaches it" in md
    assert f"Against our other strategies ({DEFAULT_STRATEGY} > each, p at 10 evaluations): {part} " in md


def test_subset_benchmark_names_unknown_methods():
    from audio_nas.bench.search import run_subset
    from audio_nas.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown methods.*available: random"):
        run_subset(["optuna-gpp"], 1, 5)


def test_subset_benchmark_names_unknown_sections():
    from audio_nas.bench.search import run_subset
    from audio_nas.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown section 'search-x'; available: search-subset"):
        run_subset(["bo"], 1, 5, section="search-x")


def test_botorch_peer_spends_its_budget_on_feasible_new_specs():
    from audio_nas.bench.search import run_method

    surrogate = CurveSurrogate.fit(read_table(FIXTURE))
    hv, info = run_method("botorch-qehvi", surrogate, seed=0, budget=8)
    assert info["evals"] == 8 and len(hv) == 8 and hv[-1] > 0
    assert info["free"] == 0  # its pool holds feasible, new specs only: no free answer was needed
    assert np.all(np.diff(hv) >= 0)  # hypervolume of a growing set never falls


def test_qlogehvi_pick_prefers_the_dominating_candidate_and_picks_distinct_rows():
    from audio_nas.search.strategies.gp_bo import qlogehvi_pick

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.random((12, 4)), np.full(12, 3.0), np.full(12, 4.5)])
    acc = 0.5 + 0.3 * X[:, 0]  # accuracy rises with the first gene
    good = [0.95, 0.5, 0.5, 0.5, 2.0, 4.0]  # likely the most accurate, and cheaper than every trial
    bad = [0.05, 0.5, 0.5, 0.5, 4.9, 5.9]  # near the reference point on both costs
    choices = np.array([bad, good, bad])
    assert qlogehvi_pick(X, acc, choices, (1.0, 5.0, 6.0), q=1, seed=0) == [1]
    two = qlogehvi_pick(X, acc, np.array([bad, good]), (1.0, 5.0, 6.0), q=2, seed=0)
    assert sorted(two) == [0, 1]  # q picks are distinct rows


def test_subset_benchmark_keeps_its_runs_and_reports_again_without_running(tmp_path, monkeypatch):
    import audio_nas.bench.search as bs
    from audio_nas.errors import ConfigError

    written = []
    monkeypatch.setattr(bs, "write_section", lambda *a: written.append(a))
    monkeypatch.setattr(bs, "_subset_store", lambda section: tmp_path / f"{section}.npz")
    body = bs.run_subset(["random", "bo"], 2, 6, jobs=1, table=str(FIXTURE))
    assert (tmp_path / "search-subset.npz").exists() and "| random |" in body
    monkeypatch.setattr(bs, "compare", lambda *a, **k: pytest.fail("report_only must not run anything"))
    assert bs.run_subset(["random", "bo"], 2, 6, report_only=True) == body  # the same section from the store
    assert [w[0] for w in written] == ["search-subset", "search-subset"]
    with pytest.raises(ConfigError, match=r"holds \['random', 'bo'\] x 2 seeds x 6 evaluations"):
        bs.run_subset(["bo"], 3, 6, report_only=True)


def test_bo_gp_falls_back_to_the_forest_when_the_gp_fit_fails(monkeypatch):
    import audio_nas.search.strategies.gp_bo as gp_bo
    from audio_nas.bench.search import Oracle, _ctx

    def broken(*a, **k):
        raise RuntimeError("covariance not positive definite")

    monkeypatch.setattr(gp_bo, "qlogehvi_pick", broken)
    oracle = Oracle(CurveSurrogate.fit(read_table(FIXTURE)), budget=8, seed=0)
    strat = gp_bo.GPBayesOpt(_ctx(), seed=0, n_initial=3)
    with pytest.warns(UserWarning, match="GP fit failed .*ranked by bo's forest"):
        while not oracle.done:
            spec, origin = strat.ask(1)[0]
            strat.tell(spec, oracle(spec))
    assert len(oracle.history) == 8
