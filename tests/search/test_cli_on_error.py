"""`audio-nas search --on-error skip` overrides the config's on_error and reaches the stored run config."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from audio_nas.search import TrialStore


def test_search_cli_on_error_overrides_the_config(tmp_path, monkeypatch):
    from audio_nas.cli import app

    monkeypatch.setenv("AUDIO_NAS_HOME", str(tmp_path))
    cfg = tmp_path / "s.yaml"
    table = Path(__file__).resolve().parent / "data" / "nas-table-fixture.csv.gz"
    cfg.write_text(
        f"name: oe\nevaluator: surrogate\nsurrogate_table: {table}\nn_trials: 2\nn_initial: 1\nworkers: 1\n"
        "baselines: []\n"
    )
    r = CliRunner().invoke(app, ["search", "--config", str(cfg), "--on-error", "skip"])
    assert r.exit_code == 0, r.output
    stored = TrialStore(tmp_path / "runs" / "oe" / "study.sqlite").get_meta("config")
    assert stored["on_error"] == "skip"
