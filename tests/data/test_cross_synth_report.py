"""The cross-synthesiser report (audio_nas.bench.data): which model is the in-engine reference."""

import pytest

import audio_nas.bench.data as bd


def _rows(engines, train_sets):
    rows = []
    for name in train_sets:
        for seed in (0, 1):
            row = {"train_on": name, "seed": seed, "train_clips": 100}
            for i, e in enumerate(engines):
                heard = name == "all" or name == e or (name.startswith("all-but-") and name != f"all-but-{e}")
                row[f"test_{e}"] = (0.7 if heard else 0.5) + 0.01 * i
                row[f"n_test_{e}"] = 50
            rows.append(row)
    return rows


META = {"command": "cmd", "n_clips": 10, "generation_time_s": 1, "workers": 1, "content_hash": "ab" * 8}
E3 = ["espeak", "flite", "festival"]


def _written(monkeypatch, engines, arch="ds_cnn_s", *options, meta=None):
    """(section, title, command, body) of the report on made-up rows; ``options``: DANN, equal, overrides."""
    written = []
    monkeypatch.setattr(bd, "write_section", lambda *a: written.append(a))
    sets = [f"all-but-{e}" for e in engines] if len(engines) > 2 else list(engines)
    rows = _rows(engines, sets + ["all"])
    bd._write_cross_synth("kws:x", meta or META, arch, (0, 1), None, engines, rows, *options)
    return written[0]


def test_three_engines_compare_all_but_one_with_all_in_their_own_section(monkeypatch):
    section, title, _cmd, body = _written(monkeypatch, ["espeak", "flite", "festival"])
    assert section == "kws-cross-synth-3" and "3 engines: espeak, flite, festival" in title
    assert (
        "held-out festival: cross-engine (all-but-festival) 0.520 vs in-engine (all) 0.720 (-20.0 points)"
        in body
    )


def test_two_engines_compare_with_the_engine_alone(monkeypatch):
    section, _title, _cmd, body = _written(monkeypatch, ["espeak", "flite"])
    assert section == "kws-cross-synth"
    assert "held-out espeak: cross-engine (flite) 0.500 vs in-engine (espeak) 0.700 (-20.0 points)" in body


def test_another_architecture_gets_its_own_section_and_names_itself(monkeypatch):
    arch = "fe:pcen_w40_h20_m40|stem:c2d_k3_s2_c16_relu|head:c0|n12"
    section, title, cmd, body = _written(monkeypatch, ["espeak", "flite", "festival"], arch)
    assert section.startswith("kws-cross-synth-3-") and section != "kws-cross-synth-3"
    assert "fe:pcen_w40_h20_m40" in title and f"--arch '{arch}'" in cmd and arch in body


def test_dann_and_equal_clips_get_their_own_section_and_say_so(monkeypatch):
    section, title, cmd, body = _written(monkeypatch, E3, "ds_cnn_s", 0.3, True)
    assert section == "kws-cross-synth-3-dann0.3-eq" and "DANN 0.3" in title and "equal clips" in title
    assert "--domain-adversarial 0.3 --equal-clips" in cmd
    assert "weight 0.3" in body and "as many as the smallest all-but-one model" in body


def test_section_from_saved_rows_of_parallel_runs(monkeypatch, tmp_path):
    import json

    written = []
    monkeypatch.setattr(bd, "write_section", lambda *a: written.append(a))
    engines = E3
    meta = {**META, "engines": engines}
    monkeypatch.setattr("audio_nas.data.kws.read_manifest", lambda path: (meta, []))
    rows = _rows(engines, [f"all-but-{e}" for e in engines] + ["all"])
    for r in rows:
        r["epochs"] = 20
    for seed in (0, 1):  # one file per seed, as two processes side by side print them
        (tmp_path / f"s{seed}.jsonl").write_text(
            "progress line\n" + "\n".join(json.dumps(r) for r in rows if r["seed"] == seed)
        )
    bd.write_cross_synth_rows("kws:x", [str(tmp_path / "s1.jsonl"), str(tmp_path / "s0.jsonl")])
    section, _title, cmd, body = written[0]
    assert section == "kws-cross-synth-3" and "--seeds 0,1" in cmd
    assert "all-but-espeak s0: espeak 0.500" in body.split("Per seed:")[1].split(";")[0]
    # the same row twice (a run restarted), or rows made with other options, are refused
    with pytest.raises(SystemExit, match="same \\(train set, seed\\)"):
        bd.write_cross_synth_rows("kws:x", [str(tmp_path / "s0.jsonl"), str(tmp_path / "s0.jsonl")])
    arch = "fe:pcen_w40_h20_m40|stem:c2d_k3_s2_c16_relu|head:c0|n12"
    for seed in (0, 1):
        (tmp_path / f"p{seed}.jsonl").write_text(
            "\n".join(
                json.dumps({**r, "options": {"arch": arch if seed else "ds_cnn_s"}})
                for r in rows
                if r["seed"] == seed
            )
        )
    with pytest.raises(SystemExit, match="different options"):
        bd.write_cross_synth_rows("kws:x", [str(tmp_path / "p0.jsonl"), str(tmp_path / "p1.jsonl")])
    bd.write_cross_synth_rows("kws:x", [str(tmp_path / "p1.jsonl")])
    assert f"--arch '{arch}'" in written[-1][2]


def test_train_overrides_name_themselves_in_section_title_and_command(monkeypatch):
    over = {"specaugment": {"freq_mask_bins": 8}}
    section, title, cmd, body = _written(monkeypatch, E3, "ds_cnn_s", 0.0, False, over)
    assert section.startswith("kws-cross-synth-3-") and "freq_mask_bins: 8" in title
    assert "--train '{specaugment: {freq_mask_bins: 8}}'" in cmd and "but `{specaugment" in body


def test_a_set_made_otherwise_does_not_replace_the_first_sets_section(monkeypatch):
    assert _written(monkeypatch, E3, "ds_cnn_s", 0.0, True, meta={**META, "per_class": 300})[0] == (
        "kws-cross-synth-3-eq"
    )
    section, title, _cmd, _body = _written(
        monkeypatch, E3, "ds_cnn_s", 0.0, True, meta={**META, "per_class": 1000}
    )
    assert section == "kws-cross-synth-3-n1000-eq" and "1000 clips per class" in title
    section, title, _cmd, _body = _written(
        monkeypatch, E3, "ds_cnn_s", 0.0, True, meta={**META, "vocoder": 0.3}
    )
    assert section.startswith("kws-cross-synth-3-") and section.endswith("-eq")
    assert section not in ("kws-cross-synth-3-eq", "kws-cross-synth-3-n1000-eq") and "vocoder 0.3" in title


def test_train_sets_are_named_rows_or_engine_subsets():
    e4 = ["espeak", "flite", "festival", "pico"]
    assert bd._standard_plan(["espeak", "flite"]) == [
        ("espeak", ["espeak"]),
        ("flite", ["flite"]),
        ("all", ["espeak", "flite"]),
    ]
    assert bd._select_plan(e4, ("all-but-pico", "flite+festival")) == [
        ("all-but-pico", ["espeak", "flite", "festival"]),
        ("flite+festival", ["flite", "festival"]),
    ]
    with pytest.raises(SystemExit, match="unknown train set.*'flite\\+mbrola'"):
        bd._select_plan(e4, ("flite+mbrola",))
