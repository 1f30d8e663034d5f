"""The table of trained architectures: a stratified, deterministic plan; rows that survive kill -9; resume
without retraining; the manifest; ``bench table info``'s coverage and seed-noise summary."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from audio_nas.search.table import (
    BLOCK_TYPES,
    PRESET,
    SAMPLED,
    RowLog,
    noise_floor,
    read_table,
    sample_plan,
    write_table,
)
from audio_nas.space import PRESETS

pytestmark = pytest.mark.xdist_group("search")


def test_plan_is_deterministic_stratified_and_has_second_seeds():
    plan = sample_plan(60, seeds_for=6)
    assert plan == sample_plan(60, seeds_for=6)
    assert [it.origin for it in plan[: len(PRESETS)]] == [f"{PRESET}:{n}" for n in PRESETS]
    sampled = [it for it in plan if it.origin == SAMPLED]
    first = [it for it in sampled if it.seed == 0]
    assert len(first) == 60 and len({it.spec for it in first}) == 60
    assert {it.block_type for it in first} == set(BLOCK_TYPES)  # every block type dominates some rows
    bins = {int(it.stratum.split("/")[1]) for it in first}
    assert {0, 9} <= bins  # both ends of the MAC range
    # even over strata: no stratum has more than one row more than any stratum that has spare specs
    seconds = [i for i, it in enumerate(plan) if it.seed == 1]
    assert len(seconds) == 6
    for i in seconds:  # the second seed is trained right after its first
        assert plan[i - 1].spec == plan[i].spec and plan[i - 1].seed == 0
    assert sample_plan(60, seeds_for=6, seed=1) != plan


def test_row_log_drops_a_torn_last_line_and_keeps_the_latest_row(tmp_path):
    log = RowLog(tmp_path / "t.work.jsonl")
    log.append({"spec_hash": "a", "seed": 0, "error": "boom"})
    log.append({"spec_hash": "a", "seed": 0, "val_acc": 0.5})
    with open(log.path, "a") as f:
        f.write('{"spec_hash": "b", "se')  # a kill in the middle of a write
    log = RowLog(log.path)
    assert log.done() == {("a", 0)}
    log.append({"spec_hash": "b", "seed": 1, "val_acc": 0.25})
    assert {(r["spec_hash"], r["seed"]) for r in log.rows()} == {("a", 0), ("b", 1)}


def test_noise_floor_by_hand():
    rows = [
        {"spec_hash": h, "seed": s, "test_acc": a}
        for h, s, a in [
            ("x", 0, 0.5),
            ("x", 1, 0.6),
            ("y", 0, 0.7),
            ("y", 1, 0.7),
            ("z", 0, 0.9),
            ("z", 1, 0.8),
        ]
    ]
    nf = noise_floor(rows + [{"spec_hash": "w", "seed": 0, "test_acc": 0.1}])
    assert nf["pairs"] == 3
    assert nf["median_abs_diff"] == pytest.approx(0.1)
    assert nf["kendall_tau"] == pytest.approx(1.0)


def _tiny_dataset(root):
    """3 classes x 12 one-second clips (a tone per class in noise): 8 train, 2 validation, 2 test each."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    rows = []
    for c, freq in enumerate((300.0, 900.0, 2000.0)):
        for i in range(12):
            split = "train" if i < 8 else ("validation" if i < 10 else "test")
            wav = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.normal(size=t.size)
            path = root / f"c{c}_{i}.wav"
            sf.write(path, wav.astype(np.float32), 16000)
            rows.append({"path": path.name, "label": f"c{c}", "split": split})
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return f"csv:{root / 'manifest.csv'}"


def _build_cmd(dataset, out, *extra):
    return [
        sys.executable,
        "-m",
        "audio_nas.cli",
        "bench",
        "table",
        "build",
        "--dataset",
        dataset,
        "--count",
        "3",
        "--seeds-for",
        "1",
        "--no-presets",
        "--epochs",
        "1",
        "--workers",
        "1",
        "--out",
        str(out),
        *extra,
    ]


def test_build_resumes_after_kill_minus_9_and_writes_the_manifest(tmp_path):
    (tmp_path / "d").mkdir()
    dataset = _tiny_dataset(tmp_path / "d")
    out = tmp_path / "nas-table" / "tiny.csv.gz"
    work = out.with_name("tiny.work.jsonl")
    env = {**os.environ, "AUDIO_NAS_HOME": str(tmp_path), "AUDIO_NAS_NO_PROGRESS": "1"}

    # a MAC range with no row in it trains nothing
    res = subprocess.run(
        _build_cmd(dataset, out, "--min-macs", str(10**12)),
        env=env,
        check=True,
        timeout=300,
        capture_output=True,
    )
    assert b"0 done, 0 to train" in res.stdout and RowLog(work).rows() == []
    # a partial run: one row
    subprocess.run(_build_cmd(dataset, out, "--limit", "1"), env=env, check=True, timeout=300)
    first = RowLog(work).rows()
    assert len(first) == 1 and not first[0].get("error")
    assert out.exists() and out.with_name("tiny.manifest.json").exists()

    # a full run, SIGKILLed as soon as it has written one more row (or when it ends, if it is faster)
    proc = subprocess.Popen(_build_cmd(dataset, out), env=env, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(RowLog(work).rows()) < 2:
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    with open(work, "a") as f:
        f.write('{"spec": "torn')  # as if the kill had hit the middle of a write
    left = 4 - len(RowLog(work).rows())  # 0 when the killed run had already finished every row

    res = subprocess.run(
        _build_cmd(dataset, out), env=env, check=True, timeout=300, capture_output=True, text=True
    )
    if left:
        assert "[" in res.stdout and "s/row" in res.stdout  # progress lines for the rows it trains
    rows = read_table(out)
    assert len(rows) == 4  # 3 architectures + 1 second seed, each (spec, seed) once
    assert len({(r["spec_hash"], r["seed"]) for r in rows}) == 4
    assert sorted(r["seed"] for r in rows) == [0, 0, 0, 1]
    kept = next(r for r in rows if r["spec_hash"] == first[0]["spec_hash"] and r["seed"] == first[0]["seed"])
    assert kept["train_time_s"] == pytest.approx(first[0]["train_time_s"], abs=1e-3)  # not retrained
    for r in rows:
        assert not r["error"] and len(r["val_acc_curve"]) == 1 and 0 <= r["test_acc"] <= 1
        assert r["params"] > 0 and r["macs"] > 0 and r["flash_bytes"] > 0 and r["arena_bytes"] > 0
    with gzip.open(out, "rt") as f:
        assert next(csv.reader(f))[:3] == ["spec", "spec_hash", "seed"]

    man = json.loads(out.with_name("tiny.manifest.json").read_text())
    assert man["complete"] and man["plan"]["items"] == 4 and man["plan"]["done"] == 4
    assert man["dataset"] == dataset and len(man["dataset_hash"]) >= 8
    assert man["recipe"]["epochs"] == 1 and man["recipe"]["batch_size"] == 64  # the search's recipe
    assert man["counts"]["rows_ok"] == 4 and man["counts"]["seeds"] == {"0": 3, "1": 1}
    assert man["noise_floor"]["pairs"] == 1
    assert "cpu_count" in man["machine"] and "hours" in man
    assert man["machines"][-1] == man["machine"] and man["rows_by_device"] == {"cpu": 4}

    info = subprocess.run(
        [sys.executable, "-m", "audio_nas.cli", "bench", "table", "info", str(out)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "4 rows" in info and "seed noise (test_acc, 1 archs with 2 seeds)" in info
    assert "MAC decile" in info and "uib_ffn" in info


def test_write_and_read_round_trip(tmp_path):
    rows = [
        {"spec": "s", "spec_hash": "h", "seed": 0, "val_acc": 0.5, "val_acc_curve": [0.25, 0.5], "macs": 10},
        {"spec": "t", "spec_hash": "g", "seed": 1, "error": "x"},
    ]
    for name in ("t.csv", "t.csv.gz"):
        back = read_table(write_table(rows, tmp_path / name))
        assert back[0]["val_acc_curve"] == [0.25, 0.5] and back[0]["macs"] == 10 and back[0]["val_acc"] == 0.5
        assert back[1]["error"] == "x" and back[1]["val_acc"] is None


def test_table_carries_per_board_costs_from_the_current_models(tmp_path):
    from audio_nas.energy.boards import available_boards
    from audio_nas.space import resolve_arch

    spec = resolve_arch("ds_cnn_s").to_str()
    rows = [{"spec": spec, "spec_hash": "h", "seed": 0, "val_acc": 0.5, "val_acc_curve": [0.5]}]
    back = read_table(write_table(rows, tmp_path / "t.csv"))[0]
    for board in available_boards():
        key = board.replace("-", "_")
        assert back[f"energy_uj__{key}"] > 0 and back[f"latency_ms__{key}"] > 0
        assert back[f"board_ram_bytes__{key}"] > 0 and back[f"board_flash_bytes__{key}"] > 0


def test_manifest_keeps_earlier_machines_and_counts_rows_by_device():
    from audio_nas.search.table import manifest
    from audio_nas.space import ArchSpec
    from audio_nas.space.presets import PRESETS

    specs = [ArchSpec.from_str(PRESETS[n]) for n in ("ds_cnn_s", "mobilenet_v1_x0.25", "mobilenet_v2_x0.35")]
    rows = [
        {
            "spec": s.to_str(),
            "spec_hash": s.spec_hash,
            "seed": 0,
            "device": d,
            "block_type": "ds",
            "macs": 1000,
            "test_acc": 0.5,
            "val_acc": 0.5,
            "train_time_s": 1.0,
        }
        for s, d in zip(specs, ("cuda", "cpu", "cuda"), strict=True)
    ]
    rows[2]["error"] = "OutOfMemoryError: CUDA out of memory"
    gpu, cpu = {"device": "cuda", "gpu": "H100"}, {"device": "cpu", "cpu_count": 2}
    man = manifest(
        dataset="d",
        dataset_hash="h",
        recipe={},
        plan_args={},
        plan=[],
        rows=rows,
        git_commit=None,
        machine=cpu,
        wall_s=1.0,
        earlier_machines=[cpu, gpu],
    )
    assert man["machines"] == [gpu, cpu]  # this build's machine last, no repeat
    assert man["rows_by_device"] == {"cpu": 1, "cuda": 1}  # error rows are not counted
