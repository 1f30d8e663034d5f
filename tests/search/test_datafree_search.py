"""Data-free search end to end: a tiny teacher, synthesis into the run dir, a 2-trial search, the report."""

from __future__ import annotations

import json

import pytest
from search_helpers import tone_folder

from audio_nas.errors import ConfigError
from audio_nas.search import SearchConfig
from audio_nas.search.report import write_report
from audio_nas.search.runner import SearchRunner
from audio_nas.search.store import TrialStore
from audio_nas.space import ArchSpec, SearchSpace
from audio_nas.training import TrainConfig

pytestmark = pytest.mark.xdist_group("search")

TEACHER = "fe:logmel_w30_h20_m20|stem:c2d_k3_s2_c8_relu|ds_k3_s1_c8_r1_relu|head:c0|n2"


@pytest.fixture()
def folder_dataset(tmp_path):
    """Two tone classes, 0.5 s clips: learnable in one epoch."""
    return tone_folder(
        tmp_path, train_per_class=8, other_per_class=4, samples=8000, tones=(("high", 2000.0), ("low", 300.0))
    )


def test_config_checks():
    with pytest.raises(ConfigError, match="data_free: true needs teacher"):
        SearchConfig(data_free=True)
    with pytest.raises(ConfigError, match="data-free search only"):
        SearchConfig(teacher="x")
    with pytest.raises(ConfigError, match="evaluator"):
        SearchConfig(data_free=True, teacher="x", evaluator="synthetic")
    assert SearchConfig(data_free=True, teacher="x").train.distill_alpha == 0.9
    assert (
        SearchConfig(data_free=True, teacher="x", train=TrainConfig(distill_alpha=0.5)).train.distill_alpha
        == 0.5
    )
    with pytest.raises(ConfigError, match="synth_prior"):
        SearchConfig(data_free=True, teacher="x", synth_prior="wavelets")


@pytest.mark.slow  # ~30-45 s on the shared 2-core machine: teacher, synthesis, 2 trials, retrain + export
def test_tiny_data_free_search_end_to_end(folder_dataset, tmp_path, audio_nas_home):
    from audio_nas.training.pipeline import train_and_save

    teacher_spec, teacher_res, teacher = train_and_save(
        TEACHER, folder_dataset, tmp_path / "teacher", TrainConfig(epochs=2, batch_size=8)
    )
    cfg = SearchConfig(
        name="df",
        dataset=folder_dataset,
        data_free=True,
        teacher=str(teacher),
        synth_per_class=6,
        synth_steps=4,
        synth_mixtures=30,
        workers=1,
        n_trials=2,
        n_initial=2,
        train=TrainConfig(epochs=1, batch_size=8, num_threads=1),
        baselines=(),
    )
    runner = SearchRunner(cfg, tmp_path / "run")
    try:
        assert runner.train_dataset.startswith("synth:")
        assert (tmp_path / "run" / "synthetic" / "manifest.json").exists()
        # a source-filter set renders in any mel front-end: the front-end genes stay in the space
        assert runner.space.fe_kinds == SearchSpace().fe_kinds
        assert runner.space.clip_ms == teacher_spec.frontend.clip_ms
        result = runner.run()
        assert result.n_finished == 2
        trials = TrialStore(tmp_path / "run" / "study.sqlite").trials()
        assert all(t.state in ("complete", "pruned", "failed", "infeasible") for t in trials)
        done = [t for t in trials if t.state == "complete"]
        assert done, [t.error for t in trials]
        for t in done:  # every candidate reads the teacher's clips
            assert ArchSpec.from_str(t.spec).frontend.clip_ms == teacher_spec.frontend.clip_ms
        report = write_report(runner).read_text()
    finally:
        runner.store.close()
    assert "data-free search" in report and "never seen by the search" in report
    assert "front-end genes searched" in report
    real = list((tmp_path / "run" / "pareto").glob("trial-*/real_test.json"))
    assert real, "the retrained Pareto models are evaluated on the real test split"
    acc = json.loads(real[0].read_text())
    assert 0.0 <= acc["real_test_accuracy"] <= 1.0 and acc["real_test_examples"] == 8
    assert 0.0 <= teacher_res.test_accuracy <= 1.0


def test_compare_fronts_uses_real_test_accuracy(tmp_path):
    from audio_nas.search.datafree_eval import compare_fronts

    header = "trial,val_accuracy,test_accuracy,energy_uj,total_ram_bytes,params,spec\n"
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "pareto.csv").write_text(
        header + "1,0.8,0.7,100,50000,10,a\n2,0.9,0.8,300,60000,20,b\n"
    )
    free = tmp_path / "free"
    (free / "pareto" / "trial-0003").mkdir(parents=True)
    (free / "pareto.csv").write_text(header + "3,0.99,n/a,150,50000,10,c\n")
    (free / "pareto" / "trial-0003" / "real_test.json").write_text('{"real_test_accuracy": 0.75}')
    out = compare_fronts(tmp_path / "real", free)
    assert [m["test_accuracy"] for m in out["datafree"]] == [0.75]
    at = {row["energy_uj"]: (row["real"], row["datafree"]) for row in out["best_test_at_energy"]}
    assert at[100.0] == (0.7, None) and at[150.0] == (0.7, 0.75) and at[300.0] == (0.8, 0.75)
    hv = out["hypervolume_real_test"]
    assert hv["real"] > 0 and hv["datafree"] > 0


def test_compare_seeds_reports_gaps_per_seed_and_their_median(tmp_path):
    from audio_nas.search.datafree_eval import compare_seeds

    header = "trial,val_accuracy,test_accuracy,energy_uj,total_ram_bytes,params,spec\n"

    def run(name, rows):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pareto.csv").write_text(header + "".join(rows))
        return tmp_path / name

    pairs = [
        (run("r0", ["1,0.8,0.5,150,5000,1,a\n"]), run("f0", ["1,0.9,0.6,150,5000,1,a\n"])),
        (run("r1", ["1,0.8,0.5,150,5000,1,a\n"]), run("f1", ["1,0.9,0.2,250,5000,1,a\n"])),
    ]
    out = compare_seeds(pairs, levels_uj=(200.0, 300.0))
    first, second = out["summary"]
    assert first["gaps"] == pytest.approx([0.1]) and first["seeds_without_datafree_model"] == 1
    assert second["gaps"] == pytest.approx([0.1, -0.3]) and second["median_gap"] == pytest.approx(-0.1)
    assert second["gap_iqr"] == pytest.approx([-0.2, 0.0]) and second["seeds_within"] == 1
    assert out["hypervolume_iqr"]["real"][0] <= out["hypervolume_median"]["real"]
    assert len(out["per_seed"]) == 2 and out["per_seed"][0]["hypervolume"]["datafree"] > 0


def test_selection_signal_rank_pools_the_runs_front_models(tmp_path):
    from audio_nas.search.datafree_eval import selection_signal_rank

    header = "trial,val_accuracy,test_accuracy,energy_uj,total_ram_bytes,params,spec\n"
    runs = []
    for name, rows in (
        ("a", ["1,0.5,0.4,100,5000,1,a\n", "2,0.6,0.5,200,5000,1,b\n", "3,0.7,0.45,300,5000,1,c\n"]),
        ("b", ["1,0.2,0.1,100,5000,1,a\n", "2,0.9,n/a,200,5000,1,b\n"]),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pareto.csv").write_text(header + "".join(rows))
        runs.append(tmp_path / name)
    out = selection_signal_rank(runs)
    assert out["per_run"][0]["kendall_tau"] == pytest.approx(1 / 3)
    assert out["per_run"][1] == {"run": str(runs[1]), "models": 1, "kendall_tau": None}
    assert out["pooled"]["models"] == 4 and out["pooled"]["kendall_tau"] > 0.5
