"""Shared fixtures of the data-free training tests: a tiny teacher and the two kinds of synthesised set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from synth_helpers import TINY_SYNTHESIS, TINY_TEACHER_SPEC


@pytest.fixture(scope="module")
def tiny_synth_sets(tmp_path_factory, make_tiny_teacher):
    """Per test module: ``teacher`` (checkpoint dir), ``root`` (its tmp dir), ``sf`` and ``grid``: sets of
    12 inversions (9 train) + 24 train mixtures, with the source-filter prior (+ 4 validation mixtures)
    and the grid prior."""
    from audio_nas.features.synthset import load_synth_set
    from audio_nas.training.inversion import InversionConfig
    from audio_nas.training.synthesize import synthesize

    root = tmp_path_factory.mktemp("synth")
    teacher = make_tiny_teacher(root / "t", TINY_TEACHER_SPEC, ("a", "b", "c"))
    sf = synthesize(teacher, InversionConfig(**TINY_SYNTHESIS), root / "sf", progress=False)
    grid = synthesize(teacher, InversionConfig(**TINY_SYNTHESIS, prior="grid"), root / "grid", progress=False)
    return SimpleNamespace(teacher=teacher, root=root, sf=load_synth_set(sf), grid=load_synth_set(grid))
