"""The objectives registry and the ``objectives`` config key (search/objectives.py, issue 15)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from audio_nas.config import load_yaml, to_dict
from audio_nas.errors import ConfigError, SearchError
from audio_nas.search import SearchConfig, run_search
from audio_nas.search.objectives import (
    DEFAULT_OBJECTIVES,
    OBJECTIVES,
    cost_values,
    default_hv_reference,
    objective_values,
    objective_vector,
)
from audio_nas.search.runner import SearchRunner, trial_objectives
from audio_nas.search.store import TrialStore
from audio_nas.space import PRESETS, ArchSpec, arch_costs

pytestmark = pytest.mark.xdist_group("search")

DS = PRESETS["ds_cnn_s"]
FIXTURE_TABLE = str(Path(__file__).resolve().parent / "data" / "nas-table-fixture.csv.gz")


def cheap_evaluator() -> dict:
    """The cheap test evaluator: the learning-curve surrogate on the fixture table of real rows."""
    return {"evaluator": "surrogate", "surrogate_table": FIXTURE_TABLE}


def test_registry_has_units_and_references_and_the_default_is_unchanged():
    for o in OBJECTIVES.values():
        assert o.unit and o.about and math.isfinite(o.hv_reference)
    assert DEFAULT_OBJECTIVES == ("accuracy", "energy_uj", "ram_bytes")
    # the default reference point of every config written before the key existed
    assert default_hv_reference(DEFAULT_OBJECTIVES) == (1.0, 5.0, 6.0)
    values = {"accuracy": 0.9, "energy_uj": 500.0, "peak_ram_bytes": 120_000, "spec": DS}
    np.testing.assert_allclose(objective_values(values), objective_vector(0.9, 500.0, 120_000))


def test_ace_v2_objective_reads_the_spec_and_counts_int4_as_fewer_bitops():
    spec = ArchSpec.from_str(DS)
    w4 = spec.to_str().replace("_relu|head", "_relu_w4|head")
    names = ("accuracy", "ace_v2", "ram_bytes")
    v8 = objective_values({"accuracy": 0.9, "spec": DS, "peak_ram_bytes": 1e5}, names)
    v4 = objective_values({"accuracy": 0.9, "spec": w4, "peak_ram_bytes": 1e5}, names)
    assert v8[1] == pytest.approx(math.log10(arch_costs(spec).ace_v2))
    assert v4[1] < v8[1]  # ACEv2 is hardware-agnostic: half the weight bits, fewer bit-operations
    assert cost_values({"spec": DS, "peak_ram_bytes": 1e5}, names) == tuple(v8[1:])


@pytest.mark.parametrize(
    "objectives, match",
    [
        (("accuracy", "ace"), "unknown"),
        (("energy_uj", "accuracy", "ram_bytes"), "accuracy followed by"),
        (("accuracy", "energy_uj", "energy_uj"), "two different"),
        (("accuracy", "energy_uj"), "two different"),
    ],
)
def test_bad_objectives_name_the_fix(objectives, match):
    with pytest.raises(ConfigError, match=match):
        SearchConfig(objectives=objectives)


def test_config_key_from_yaml_sets_the_reference_point(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("objectives: [accuracy, ace_v2, ram_bytes]\n")
    cfg = load_yaml(SearchConfig, p)
    assert cfg.objectives == ("accuracy", "ace_v2", "ram_bytes") and cfg.hv_reference == (1.0, 12.0, 6.0)
    p.write_text("objectives: [accuracy, ace_v2, ram_bytes]\nhv_reference: [1.0, 11.0, 6.0]\n")
    assert load_yaml(SearchConfig, p).hv_reference == (1.0, 11.0, 6.0)
    with pytest.raises(ConfigError, match="one entry per objective"):
        SearchConfig(hv_reference=(1.0, 5.0))
    assert load_yaml(SearchConfig, "audio_nas/search/configs/default.yaml").objectives == DEFAULT_OBJECTIVES


def test_search_on_ace_v2_ranks_by_it_and_refuses_a_changed_objective(tmp_path):
    names = ("accuracy", "ace_v2", "ram_bytes")
    base = dict(name="o", strategy="random", n_trials=6, workers=1, n_initial=4, seed=0, **cheap_evaluator())
    res = run_search(SearchConfig(**base, objectives=names), tmp_path / "o")
    assert res.n_finished == 6 and res.pareto_ids and res.hypervolume > 0
    store = TrialStore(tmp_path / "o" / "study.sqlite")
    trials = [t for t in store.trials() if t.has_objectives]
    F = np.stack([trial_objectives(t, names) for t in trials])
    assert np.allclose(F[:, 1], [math.log10(arch_costs(ArchSpec.from_str(t.spec)).ace_v2) for t in trials])
    store.close()
    with pytest.raises(SearchError, match="objectives"):
        SearchRunner(SearchConfig(**base), tmp_path / "o")


def test_a_store_written_before_the_key_resumes_with_the_default(tmp_path):
    base = dict(name="d", n_trials=4, workers=1, n_initial=4, seed=0, **cheap_evaluator())
    cfg = SearchConfig(**base)
    old = to_dict(cfg)
    del old["objectives"]  # a config stored before the key existed
    store = TrialStore(tmp_path / "d" / "study.sqlite")
    store.set_meta("config", old)
    store.close()
    SearchRunner(cfg, tmp_path / "d").store.close()  # the missing key compares as its default
    with pytest.raises(SearchError, match="objectives"):
        SearchRunner(
            SearchConfig(**base, objectives=("accuracy", "flash_bytes", "ram_bytes")), tmp_path / "d"
        )
