"""Reading audio files: any rate, mono or stereo, WAV/FLAC/OGG via soundfile, resampled with soxr."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audio_nas.errors import DataError

log = logging.getLogger(__name__)


def read_audio(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 at ``sample_rate_hz``. Raises DataError naming the file for anything unreadable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; check the dataset layout or the manifest path")
    if path.stat().st_size == 0:
        raise DataError(
            f"{path}: file is empty (0 bytes); delete or replace it, or load with on_error='skip'"
        )
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise DataError(
            f"{path}: cannot decode audio ({exc}); re-encode it as WAV/FLAC/OGG or skip it"
        ) from exc
    if data.shape[0] == 0:
        raise DataError(f"{path}: audio has zero samples; replace the file or load with on_error='skip'")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise DataError(f"{path}: audio contains NaN or infinite samples")
    if rate != sample_rate_hz:
        mono = soxr.resample(mono, rate, sample_rate_hz, quality="HQ").astype(np.float32)
    return mono


def write_wav(path: str | Path, x: np.ndarray, sample_rate_hz: int) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0), sample_rate_hz, subtype="PCM_16")


class ErrorCounter:
    """Collects skipped files so the loader can warn once with a count (on_error='skip')."""

    def __init__(self, on_error: str, dataset: str):
        self.on_error = on_error
        self.dataset = dataset
        self.skipped: list[str] = []

    def handle(self, exc: DataError) -> None:
        if self.on_error == "raise":
            raise exc
        self.skipped.append(str(exc))

    def report(self) -> None:
        if self.skipped:
            log.warning(
                "%s: skipped %d unreadable or invalid file(s); first: %s",
                self.dataset,
                len(self.skipped),
                self.skipped[0],
            )
