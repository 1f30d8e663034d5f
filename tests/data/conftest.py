"""Shared fixtures of the data tests."""

from __future__ import annotations

import numpy as np
import pytest

from audio_nas.data import KWS12_CLASSES, AudioDataset

SR = 16_000


def tone_kws_set(per_class: int = 3, classes=KWS12_CLASSES) -> AudioDataset:
    rng = np.random.default_rng(0)
    wav, labels, split = [], [], []
    for c in range(len(classes)):
        for s in range(3):
            for _ in range(per_class):
                x = rng.normal(0, 0.01, SR)
                if classes[c] != "_silence_":  # a "word": a tone burst in the middle
                    t = np.arange(4000) / SR
                    x[6000:10000] += 0.5 * np.sin(2 * np.pi * (300 + 40 * c) * t)
                wav.append(x)
                labels.append(c)
                split.append(s)
    return AudioDataset(
        "tiny-kws",
        np.asarray(wav, np.float32),
        np.asarray(labels),
        np.asarray(split, np.uint8),
        tuple(classes),
        SR,
        "tiny",
        groups=np.asarray([f"v{i % 5}" for i in range(len(wav))]),
    )


@pytest.fixture
def tone_kws():
    """A factory of tiny keyword sets: 1-s clips of faint noise, a tone burst per class as its "word"."""
    return tone_kws_set
