"""`audio-nas data merge-synth` (one inversion pool from sets of different seeds) and validation
mixtures for `data add-mixtures`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synth_helpers import OTHER_FRONTEND, TINY_SYNTHESIS

from audio_nas.errors import ConfigError, DataError
from audio_nas.features.synthset import load_synth_set
from audio_nas.training.grow_synth import add_mixtures, merge_synth_sets
from audio_nas.training.portable_synth import (
    PARAMS_FILE,
    RECIPE_FILE,
    MixtureRecipe,
    Renderer,
    render_synth_features,
)


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
