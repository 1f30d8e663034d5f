"""The search report's streaming section: pareto.csv columns and the report text from the stream_eval
hook, and the config switch that turns it off."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from audio_nas.search import SearchConfig, run_search
from audio_nas.search.report import write_report
from audio_nas.search.runner import SearchRunner

pytestmark = pytest.mark.xdist_group("search")
FIXTURE_TABLE = str(Path(__file__).resolve().parent / "data" / "nas-table-fixture.csv.gz")


def tiny_cfg(**kw) -> SearchConfig:
    base = dict(name="t", n_trials=6, workers=1, n_initial=3, seed=0, baselines=("ds_cnn_s",), **kw)
    return SearchConfig(evaluator="surrogate", surrogate_table=FIXTURE_TABLE, **base)


def fake_stream_eval(runner, front):
    cols = ["frr_at_0p5_fa_h", "frr_at_1_fa_h", "frr_at_2_fa_h", "threshold_at_1_fa_h"]
    values = {t.id: {"frr_at_1_fa_h": "0.2500", "threshold_at_1_fa_h": "0.970"} for t in front[:1]}
    md = ["", "## Streaming: FRR at a false-alarm rate", "", "- test stream: 1.00 h of negatives"]
    return SimpleNamespace(columns=cols, values=values, markdown=md)


def test_report_has_the_streaming_columns_and_section_unless_switched_off(tmp_path):
    cfg = tiny_cfg()
    assert cfg.stream_eval  # on by default
    run_search(cfg, tmp_path)
    write_report(SearchRunner(cfg, tmp_path), export=False, stream_eval=fake_stream_eval)
    rows = list(csv.DictReader((tmp_path / "pareto.csv").open()))
    report = (tmp_path / "report.md").read_text()
    assert rows
    assert {"frr_at_0p5_fa_h", "frr_at_1_fa_h", "frr_at_2_fa_h", "threshold_at_1_fa_h"} <= set(rows[0])
    assert sum(r["frr_at_1_fa_h"] == "0.2500" for r in rows) == 1
    assert all(r["spec"] for r in rows)  # the original columns are intact
    assert "## Streaming: FRR at a false-alarm rate" in report and "h of negatives" in report
    assert "Streaming" in (tmp_path / "report.html").read_text()
    off = dataclasses.replace(cfg, stream_eval=False)
    write_report(SearchRunner(off, tmp_path), export=False, stream_eval=fake_stream_eval)
    rows = list(csv.DictReader((tmp_path / "pareto.csv").open()))
    assert "frr_at_1_fa_h" not in rows[0] and "Streaming" not in (tmp_path / "report.md").read_text()
