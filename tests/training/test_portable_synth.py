"""Source-filter sets render in any mel front-end: same examples and labels, other framing and filterbank."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from synth_helpers import OTHER_FRONTEND

from audio_nas.errors import TrainingError
from audio_nas.features.synthset import load_synth_set
from audio_nas.training import TrainConfig
from audio_nas.training.portable_synth import (
    PARAMS_FILE,
    RECIPE_FILE,
    MixtureRecipe,
    Renderer,
    is_portable,
    render_synth_features,
)
from audio_nas.training.source_filter import source_filter_power

OTHER = OTHER_FRONTEND


@pytest.fixture(scope="module")
def sets(tiny_synth_sets):
    return tiny_synth_sets.teacher, tiny_synth_sets.sf, tiny_synth_sets.grid


def _renderer(s, frontend=None):
    with np.load(s.path / PARAMS_FILE) as z:
        params = {k: z[k] for k in z.files}
    return params, Renderer(params, tuple(s.manifest["portable"]["span_s"]), frontend or s.features.frontend)


def test_a_source_filter_set_stores_what_renders_it_and_reproduces_its_own_features(sets):
    _, s, grid = sets
    assert is_portable(s) and not is_portable(grid)
    assert (s.path / RECIPE_FILE).exists() and json.loads((s.path / "manifest.json").read_text())["portable"]
    params, r = _renderer(s)
    n_inv = len(params["f0"])
    assert n_inv == 12 and len(s.features.x) == 12 + 24 + 4  # + 15 % validation mixtures
    assert np.allclose(r.examples(np.arange(n_inv)).numpy(), s.features.x[:n_inv], atol=1e-4)
    recipe = MixtureRecipe.load(s.path / RECIPE_FILE)
    assert np.allclose(r.mixtures(recipe).numpy(), s.features.x[n_inv:], atol=1e-4)
    mix_split = s.features.split[n_inv:]  # each mixture is made of inversions of its own split
    assert (s.features.split[recipe.a] == mix_split).all() and (s.features.split[recipe.b] == mix_split).all()
    assert mix_split.tolist() == [0] * 24 + [1] * 4


def test_a_mixture_is_a_power_sum_with_foreground_masks(sets):
    _, s, _ = sets
    params, r = _renderer(s)
    one = dict(shift_s=np.zeros(1, np.float32), weight=np.ones(1, np.float32))
    no_masks = dict(
        time_masks_s=np.zeros((1, 1, 2), np.float32), freq_masks_hz=np.zeros((1, 1, 2), np.float32)
    )
    pure = MixtureRecipe(a=np.array([3]), b=np.array([5]), **one, **no_masks)
    assert np.allclose(r.mixtures(pure).numpy(), r.examples(np.array([3])).numpy(), atol=1e-5)
    all_time = dict(no_masks, time_masks_s=np.array([[[0.0, 10.0]]], np.float32))
    silenced = MixtureRecipe(a=np.array([3]), b=np.array([3]), **one, **all_time)
    _, bg = source_filter_power(
        {k: torch.from_numpy(v[[3]]) for k, v in params.items()}, s.features.frontend, r.span_s
    )
    assert np.allclose(r.mixtures(silenced).numpy(), r._features(bg).numpy(), atol=1e-5)


def test_another_front_end_gets_the_same_examples_rendered_once(sets):
    _, s, _ = sets
    feats = render_synth_features(s, OTHER, progress=False)
    assert feats.x.shape == (40, *OTHER.output_shape) and np.isfinite(np.asarray(feats.x)).all()
    assert np.array_equal(feats.labels, s.features.labels) and np.array_equal(feats.split, s.features.split)
    cached = list((s.path / "rendered").glob("*.npy"))
    assert len(cached) == 1 and not list((s.path / "rendered").glob("*.tmp"))
    again = render_synth_features(s, OTHER, progress=False)
    assert isinstance(again.x, np.memmap) and np.array_equal(np.asarray(again.x), np.asarray(feats.x))
    assert render_synth_features(s, s.features.frontend) is s.features
    _, r = _renderer(s, OTHER)
    assert np.allclose(r.examples(np.arange(4)).numpy(), feats.x[:4], atol=1e-5)


def test_a_damaged_rendering_is_made_again_and_damaged_parameters_get_a_clear_error(sets, tmp_path):
    import shutil

    _, s, _ = sets
    other = dataclasses.replace(OTHER, n_mfcc=10)
    first = np.array(render_synth_features(s, other, progress=False).x)  # a copy, not the mapping
    cached = next((s.path / "rendered").glob("*_c10_*.npy"))
    cached.write_bytes(b"not an array")
    assert np.array_equal(np.asarray(render_synth_features(s, other, progress=False).x), first)
    broken = tmp_path / "broken"
    shutil.copytree(s.path, broken, ignore=shutil.ignore_patterns("rendered"))
    (broken / RECIPE_FILE).write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="synthesise the set again"):
        render_synth_features(load_synth_set(broken), other, progress=False)


def test_front_ends_a_set_cannot_be_rendered_in_get_clear_errors(sets):
    _, s, grid = sets
    with pytest.raises(TrainingError, match="--prior source-filter"):
        render_synth_features(grid, OTHER)
    with pytest.raises(TrainingError, match="1000 ms clips"):
        render_synth_features(s, dataclasses.replace(OTHER, clip_ms=1000))


def test_training_on_a_source_filter_set_in_another_front_end(sets, tmp_path, audio_nas_home):
    from audio_nas.training.pipeline import train_and_save

    _, s, grid = sets
    arch = "fe:mfcc_w40_h30_m32_c13_l300|stem:c2d_k3_s2_c8_relu|ds_k3_s1_c8_r1_relu|head:c0|n3"
    spec, res, _ = train_and_save(
        arch, f"synth:{s.path}", tmp_path / "st", TrainConfig(epochs=1, batch_size=8)
    )
    assert spec.frontend.kind == "mfcc" and 0.0 <= res.val_accuracy <= 1.0
    with pytest.raises(TrainingError, match="stores features only"):
        train_and_save(arch, f"synth:{grid.path}", tmp_path / "st2", TrainConfig(epochs=1, batch_size=8))


def test_a_data_free_search_space_keeps_front_end_genes_only_for_a_portable_set(sets):
    from audio_nas.search.datafree import datafree_space, frontend_is_pinned

    _, s, grid = sets
    free = datafree_space(s, (8,), pin_frontend=False)
    assert not frontend_is_pinned(free) and free.clip_ms == 300 and free.n_classes == 3
    pinned_by_config = datafree_space(s, (8,), pin_frontend=True)
    for pinned in (pinned_by_config, datafree_space(grid, (8,), pin_frontend=False)):
        assert frontend_is_pinned(pinned) and pinned.fe_kinds == ("logmel",) and pinned.n_mels == (20,)


def test_a_warp_moves_pitch_vocal_tract_tempo_and_level_and_identity_is_exact(sets):
    _, s, _ = sets
    params, r = _renderer(s)
    rows = {k: torch.from_numpy(v[[3]]) for k, v in params.items()}
    cfg, span = s.features.frontend, r.span_s

    def power(**warp):
        w = {k: torch.tensor([v], dtype=torch.float32) for k, v in warp.items()}
        return source_filter_power(rows, cfg, span, None, w or None)

    fg, bg = power()
    fg_id, bg_id = power(f0_scale=1.0, formant_scale=1.0, tempo=1.0, gain_db=0.0)
    assert torch.equal(fg, fg_id) and torch.equal(bg, bg_id)  # identity rows render bit for bit
    f = torch.linspace(0.0, cfg.sample_rate_hz / 2, fg.shape[-1])

    def centroid_hz(p):
        return float((p.sum(1) * f).sum() / p.sum())

    # a shorter vocal tract: formants (voicing alone) and the frication band (frication alone) move up
    for silent in ("noise_db", "voice_db"):
        rows = {k: torch.from_numpy(v[[3]]) for k, v in params.items()}
        rows[silent] = torch.full_like(rows[silent], -20.0)  # -90 dB after the sigmoid
        assert centroid_hz(power(formant_scale=1.15)[0]) > 1.03 * centroid_hz(power()[0]), silent
    rows = {k: torch.from_numpy(v[[3]]) for k, v in params.items()}
    assert torch.allclose(power(gain_db=10.0)[0], 10 * fg) and torch.equal(power(gain_db=10.0)[1], bg)
    # faster speech: the foreground's energy envelope is narrower around the span's middle
    frames = torch.arange(fg.shape[1], dtype=torch.float32)

    def spread(p):
        e = p.sum(-1)[0]
        m = (e * frames).sum() / e.sum()
        return float(((e * (frames - m) ** 2).sum() / e.sum()).sqrt())

    assert spread(power(tempo=1.25)[0]) < spread(fg)
    assert not torch.allclose(power(f0_scale=1.2)[0], fg)
    mix = MixtureRecipe(
        a=np.array([3]),
        b=np.array([3]),
        weight=np.ones(1, np.float32),
        shift_s=np.zeros(1, np.float32),
        time_masks_s=np.zeros((1, 1, 2), np.float32),
        freq_masks_hz=np.zeros((1, 1, 2), np.float32),
    )
    assert np.array_equal(r.mixtures(mix).numpy(), r.mixtures(mix._filled()).numpy())
