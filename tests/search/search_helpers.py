"""Search tests' shared data: a tiny two-tone folder dataset a network learns in an epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone_folder(
    root: Path,
    *,
    train_per_class: int,
    other_per_class: int,
    samples: int = 16000,
    tones: tuple[tuple[str, float], ...] = (("low", 300.0), ("high", 2000.0)),
) -> str:
    """``folder:`` dataset of noisy sine tones (one class per tone) under ``root/ds``; its name."""
    rng = np.random.default_rng(0)
    for split in ("train", "validation", "test"):
        for c, freq in tones:
            d = root / "ds" / split / c
            d.mkdir(parents=True)
            for i in range(train_per_class if split == "train" else other_per_class):
                t = np.arange(samples) / 16000
                x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(samples)
                sf.write(d / f"{i}.wav", x.astype(np.float32), 16000)
    return f"folder:{root / 'ds'}"
