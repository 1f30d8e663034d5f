"""`audio-nas data add-mixtures` (more teacher-labelled mixtures for a synthesised set, no new inversion) and
`audio-nas data merge-synth` (one inversion pool from sets of different seeds)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from synth_helpers import OTHER_FRONTEND, TINY_SYNTHESIS, TINY_TEACHER_SPEC

from audio_nas.errors import ConfigError, DataError
from audio_nas.features.synthset import load_synth_set
from audio_nas.training.checkpoint import load_checkpoint
from audio_nas.training.grow_synth import add_mixtures, merge_synth_sets
from audio_nas.training.portable_synth import (
    PARAMS_FILE,
    RECIPE_FILE,
    MixtureRecipe,
    Renderer,
    render_synth_features,
)


@pytest.fixture(scope="module")
def sets(tiny_synth_sets):
    t = tiny_synth_sets
    return t.teacher, t.root, t.sf, t.grid


def _teacher_logits(teacher, x: np.ndarray) -> np.ndarray:
    _, model, _ = load_checkpoint(teacher)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(np.array(x, np.float32))).numpy()


def test_a_source_filter_set_grows_by_mixtures_its_teacher_labelled(sets, tmp_path):
    teacher, _, s, _ = sets
    before = (s.path / "features.npy").read_bytes()
    out = add_mixtures(s.path, 10, tmp_path / "grown", seed=3, progress=False)
    g = load_synth_set(out)
    assert len(g.features.x) == len(s.features.x) + 10 and g.n_mixtures == 34
    assert np.array_equal(np.asarray(g.features.x[:40]), np.asarray(s.features.x))  # old rows kept, in order
    assert g.features.split[40:].tolist() == [0] * 10  # new mixtures train only; validation unchanged
    assert g.manifest["mixtures"]["validation"] == 4 and g.manifest["split_counts"] == {
        "train": 43,
        "validation": 7,
    }
    assert (
        g.manifest["mixtures"]["added"][0]["n"] == 10
        and g.manifest["content_hash"] != s.manifest["content_hash"]
    )
    # the stored recipe renders the new rows, whose labels are the teacher's on exactly those inputs
    with np.load(g.path / PARAMS_FILE) as z:
        params = {k: z[k] for k in z.files}
    recipe = MixtureRecipe.load(g.path / RECIPE_FILE)
    assert len(recipe) == 38
    r = Renderer(params, tuple(g.manifest["portable"]["span_s"]), g.features.frontend)
    new = np.asarray(g.features.x[40:])
    assert np.allclose(r.mixtures(recipe.rows(slice(28, 38))).numpy(), new, atol=1e-4)
    n_inv = 12
    assert (g.features.split[recipe.a[28:]] == 0).all() and (recipe.a[28:] < n_inv).all()
    assert np.allclose(g.teacher_logits[40:], _teacher_logits(teacher, new), atol=1e-4)
    assert np.array_equal(g.features.labels[40:], g.teacher_logits[40:].argmax(1))
    # another front-end renders the grown set (recipe and rows agree)
    rendered = render_synth_features(g, OTHER_FRONTEND, progress=False)
    assert rendered.x.shape == (50, *OTHER_FRONTEND.output_shape)
    assert (s.path / "features.npy").read_bytes() == before  # the source set is untouched


def test_growing_is_deterministic_and_a_second_addition_draws_new_mixtures(sets, tmp_path):
    _, _, s, _ = sets
    a = load_synth_set(add_mixtures(s.path, 6, tmp_path / "a", seed=1, progress=False))
    b = load_synth_set(add_mixtures(s.path, 6, tmp_path / "b", seed=1, progress=False))
    assert np.array_equal(np.asarray(a.features.x), np.asarray(b.features.x))
    again = load_synth_set(add_mixtures(a.path, 6, tmp_path / "c", seed=1, progress=False))
    assert again.n_mixtures == 36 and len(again.manifest["mixtures"]["added"]) == 2
    assert not np.allclose(np.asarray(again.features.x[-6:]), np.asarray(a.features.x[-6:]))


def test_a_grid_set_grows_in_its_feature_space(sets, tmp_path):
    teacher, _, _, grid = sets
    g = load_synth_set(add_mixtures(f"synth:{grid.path}", 8, tmp_path / "g", progress=False))
    assert len(g.features.x) == len(grid.features.x) + 8 and g.n_mixtures == 32
    assert np.allclose(g.teacher_logits[-8:], _teacher_logits(teacher, g.features.x[-8:]), atol=1e-4)


def test_bad_requests_get_clear_errors_and_write_nothing(sets, tmp_path, make_tiny_teacher):
    _, root, s, _ = sets
    with pytest.raises(ConfigError, match="at least one mixture"):
        add_mixtures(s.path, 0, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        add_mixtures(s.path, 4, tmp_path / "x", device="gpu", progress=False)
    with pytest.raises(DataError, match="is the source set"):
        add_mixtures(s.path, 4, s.path, progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(DataError, match="already exists"):
        add_mixtures(s.path, 4, tmp_path / "exists", progress=False)
    other = make_tiny_teacher(root / "other", TINY_TEACHER_SPEC.replace("c8_r1", "c12_r1"), ("a", "b", "c"))
    with pytest.raises(DataError, match="not the one"):
        add_mixtures(s.path, 4, tmp_path / "y", teacher_path=other, progress=False)
    moved = tmp_path / "moved"
    shutil.copytree(s.path, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["teacher"]["path"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="not there any more; pass the original checkpoint with --teacher"):
        add_mixtures(moved, 4, tmp_path / "z", progress=False)
    assert not any((tmp_path / n).exists() for n in ("x", "y", "z"))
    assert not list(tmp_path.glob("*.partial"))


def test_the_command_reports_the_grown_set(sets, tmp_path):
    from typer.testing import CliRunner

    from audio_nas.cli import app

    _, _, s, _ = sets
    r = CliRunner().invoke(
        app, ["data", "add-mixtures", f"synth:{s.path}", "--n", "5", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 0, r.output
    assert "29 in the train split, 4 in the validation split; 45 examples" in r.output
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["mixtures"]["n"] == 29


@pytest.fixture(scope="module")
def three(tiny_synth_sets):
    """The fixture's source-filter set (seed 0), one of seed 1, and the grid set."""
    from audio_nas.training.inversion import InversionConfig
    from audio_nas.training.synthesize import synthesize

    t = tiny_synth_sets
    cfg = InversionConfig(**{**TINY_SYNTHESIS, "mixtures": 10}, seed=1)
    other = synthesize(t.teacher, cfg, t.root / "sf-s1", progress=False)
    return t.sf, load_synth_set(other), t.grid


def _renderer(synth) -> Renderer:
    with np.load(synth.path / PARAMS_FILE) as z:
        params = {k: z[k] for k in z.files}
    return Renderer(params, tuple(synth.manifest["portable"]["span_s"]), synth.features.frontend)


def test_validation_mixtures_come_from_validation_inversions_and_leave_the_train_draw_alone(three, tmp_path):
    s, _, _ = three
    plain = load_synth_set(add_mixtures(s.path, 5, tmp_path / "p", seed=2, progress=False))
    g = load_synth_set(add_mixtures(s.path, 5, tmp_path / "v", n_validation=3, seed=2, progress=False))
    n = len(s.features.x)
    assert g.features.split[n:].tolist() == [0] * 5 + [1] * 3
    assert np.array_equal(np.asarray(g.features.x[: n + 5]), np.asarray(plain.features.x))
    assert (
        g.manifest["mixtures"]["validation"] == 4 + 3
        and g.manifest["mixtures"]["added"][0]["validation"] == 3
    )
    recipe = MixtureRecipe.load(g.path / RECIPE_FILE)
    new_val = recipe.rows(slice(len(recipe) - 3, len(recipe)))
    assert (g.features.split[new_val.a] == 1).all() and (g.features.split[new_val.b] == 1).all()
    assert np.allclose(_renderer(g).mixtures(new_val).numpy(), np.asarray(g.features.x[-3:]), atol=1e-4)


def test_merged_sets_keep_every_row_and_their_recipes_render_the_merged_rows(three, tmp_path):
    a, b, _ = three
    m = load_synth_set(merge_synth_sets([a.path, f"synth:{b.path}"], tmp_path / "m"))
    assert len(m.features.x) == len(a.features.x) + len(b.features.x)
    x, xa, xb = (np.asarray(s.features.x) for s in (m, a, b))
    # inversions of a, inversions of b, then a's mixtures, then b's
    assert np.array_equal(x[:12], xa[:12]) and np.array_equal(x[12:24], xb[:12])
    assert np.array_equal(x[24:52], xa[12:]) and np.array_equal(x[52:], xb[12:])
    assert m.manifest["mixtures"]["n"] == 24 + 10 and m.manifest["mixtures"]["validation"] == 4 + 2
    assert [f["seed"] for f in m.manifest["merged_from"]] == [0, 1]
    assert [f["student"] for f in m.manifest["merged_from"]] == [None, None] and "student" not in m.manifest
    assert m.manifest["inversion"]["steps"] == 6 and "seed" not in m.manifest["inversion"]  # shared settings
    recipe = MixtureRecipe.load(m.path / RECIPE_FILE)
    assert len(recipe) == len(x) - 24 and (recipe.a[28:] >= 12).all() and (recipe.a[:28] < 12).all()
    assert np.allclose(_renderer(m).mixtures(recipe).numpy(), x[24:], atol=1e-4)
    assert np.array_equal(m.teacher_logits[12:24], b.teacher_logits[:12])
    rendered = render_synth_features(m, OTHER_FRONTEND, progress=False)
    assert rendered.x.shape == (len(x), *OTHER_FRONTEND.output_shape)


def test_an_inversions_only_merge_grows_with_mixtures_of_the_whole_pool(three, tmp_path):
    a, b, _ = three
    m = load_synth_set(merge_synth_sets([a.path, b.path], tmp_path / "m", inversions_only=True))
    assert len(m.features.x) == 24 and m.n_mixtures == 0
    assert m.manifest["portable"]["mixture_recipe"] is None
    g = load_synth_set(add_mixtures(m.path, 200, tmp_path / "g", n_validation=20, seed=0, progress=False))
    recipe = MixtureRecipe.load(g.path / RECIPE_FILE)
    train_rows = np.r_[recipe.a[:200], recipe.b[:200]]
    assert (train_rows < 12).any() and (train_rows >= 12).any()  # both seeds' inversions are mixed
    assert (g.features.split[train_rows] == 0).all()


def test_bad_merges_get_clear_errors_and_write_nothing(three, tmp_path):
    a, b, grid = three
    with pytest.raises(ConfigError, match="at least two"):
        merge_synth_sets([a.path], tmp_path / "x")
    with pytest.raises(DataError, match="same inversions"):
        merge_synth_sets([a.path, a.path], tmp_path / "x")
    with pytest.raises(DataError, match="differ in prior"):
        merge_synth_sets([a.path, grid.path], tmp_path / "x")
    with pytest.raises(DataError, match="one of the sets to merge"):
        merge_synth_sets([a.path, b.path], b.path)
    (tmp_path / "exists").mkdir()
    with pytest.raises(DataError, match="already exists"):
        merge_synth_sets([a.path, b.path], tmp_path / "exists")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob("*.partial"))


def test_the_merge_command_reports_the_pool(three, tmp_path):
    from typer.testing import CliRunner

    from audio_nas.cli import app

    a, b, _ = three
    r = CliRunner().invoke(
        app,
        ["data", "merge-synth", str(a.path), str(b.path), "--out", str(tmp_path / "o"), "--inversions-only"],
    )
    assert r.exit_code == 0, r.output
    assert "2 sets merged: 24 inversions, 0 train and 0 validation mixtures; 24 examples" in r.output
    assert "data add-mixtures" in r.output
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["n_examples"] == 24


def test_warped_mixtures_are_the_same_draw_with_a_voice_and_rate_of_their_own(sets, tmp_path):
    teacher, _, s, grid = sets
    plain = load_synth_set(add_mixtures(s.path, 8, tmp_path / "plain", seed=2, progress=False))
    warped = load_synth_set(add_mixtures(s.path, 8, tmp_path / "warped", seed=2, warp=1.0, progress=False))
    assert warped.manifest["mixtures"]["added"][-1]["warp"] == 1.0
    assert "warp" not in plain.manifest["mixtures"]["added"][-1]
    p, w = (MixtureRecipe.load(g.path / RECIPE_FILE) for g in (plain, warped))
    assert p.f0_scale is None and w.warped  # old-style recipe still loads without warp arrays
    for name in ("a", "b", "weight", "shift_s", "time_masks_s", "freq_masks_hz"):
        assert np.array_equal(getattr(p, name), getattr(w, name))  # the warp is drawn after the rest
    # the synthesis's own mixtures are kept unwarped (identity rows), the new ones span the range
    assert (w.f0_scale[:28] == 1).all() and (w.gain_db[:28] == 0).all()
    new = slice(28, 36)
    assert (w.f0_scale[new] != 1).all() and 2 ** (-4 / 12) <= w.f0_scale[new].min()
    assert w.f0_scale[new].max() <= 2 ** (4 / 12) and np.abs(w.gain_db[new]).max() <= 10
    assert np.array_equal(np.asarray(warped.features.x[:40]), np.asarray(plain.features.x[:40]))
    assert not np.allclose(np.asarray(warped.features.x[40:]), np.asarray(plain.features.x[40:]))
    assert np.allclose(
        warped.teacher_logits[40:], _teacher_logits(teacher, warped.features.x[40:]), atol=1e-4
    )
    # the stored recipe renders the warped rows, in the teacher's and in another front-end
    with np.load(warped.path / PARAMS_FILE) as z:
        params = {k: z[k] for k in z.files}
    r = Renderer(params, tuple(warped.manifest["portable"]["span_s"]), warped.features.frontend)
    assert np.allclose(r.mixtures(w.rows(slice(20, 36))).numpy(), warped.features.x[32:48], atol=1e-4)
    assert render_synth_features(warped, OTHER_FRONTEND, progress=False).x.shape[0] == 48
    with pytest.raises(ConfigError, match="stores features only"):
        add_mixtures(grid.path, 4, tmp_path / "g", warp=1.0, progress=False)
    with pytest.raises(ConfigError, match=">= 0"):
        add_mixtures(s.path, 4, tmp_path / "n", warp=-1.0, progress=False)
    assert not (tmp_path / "g").exists() and not (tmp_path / "n").exists()
