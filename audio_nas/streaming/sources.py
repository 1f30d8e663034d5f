"""Stream sources: a synthetic long stream with ground truth, a WAV/FLAC file, the microphone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from audio_nas.data.audio_io import read_audio
from audio_nas.data.dataset import BACKGROUND_CLASSES
from audio_nas.data.long_stream import Event
from audio_nas.errors import DataError, StreamingError


def synthetic_stream(
    dataset, minutes: float, *, seed: int = 0, gap_s: tuple[float, float] = (1.5, 4.0), split: str = "test"
) -> tuple[np.ndarray, list[Event]]:
    """Keyword (or event) clips from ``split`` placed over a background bed made of the split's background
    clips.

    Ground truth: each placed clip's foreground class with its span (onset = where its energy starts).
    """

    rng = np.random.default_rng(seed)
    sub = dataset.subset(split)
    names = dataset.class_names
    bg_idx = [
        i for i, l in enumerate(sub.labels) if names[l] in BACKGROUND_CLASSES and names[l] != "_unknown_"
    ]
    fg_idx = [i for i, l in enumerate(sub.labels) if names[l] not in BACKGROUND_CLASSES]
    if not fg_idx:
        raise StreamingError(
            f"the {split} split of {dataset.name} has no foreground clips to build a stream from"
        )
    sr = dataset.sample_rate_hz
    n = int(minutes * 60 * sr)
    clip = sub.waveforms.shape[1]
    if bg_idx:
        bed = np.concatenate([sub.waveforms[rng.choice(bg_idx)] for _ in range(n // clip + 1)])[:n]
    else:
        bed = np.zeros(n, np.float32)
    audio = bed.astype(np.float32).copy()
    events = []
    t = rng.uniform(*gap_s)
    while (t * sr) + clip < n:
        i = int(rng.choice(fg_idx))
        x = sub.waveforms[i]
        start = int(t * sr)
        audio[start : start + clip] += x
        on, off = sub.foreground_span(i)
        events.append(Event(names[sub.labels[i]], (start + on) / sr, (start + off) / sr))
        t += clip / sr + rng.uniform(*gap_s)
    peak = np.abs(audio).max()
    return (audio / peak * 0.9 if peak > 1 else audio).astype(np.float32), events


def chunked(audio: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    for i in range(0, len(audio), chunk):
        yield audio[i : i + chunk]


def file_source(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """The whole file, mono, resampled to the model's rate (with a note when it was)."""
    import logging

    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise StreamingError(f"{path}: cannot open the audio file ({exc})") from None
    if info.samplerate != sample_rate_hz or info.channels != 1:
        logging.getLogger(__name__).info(
            "%s: %d Hz, %d channel(s) -> resampled to %d Hz mono",
            path,
            info.samplerate,
            info.channels,
            sample_rate_hz,
        )
    try:
        return read_audio(path, sample_rate_hz)
    except DataError as exc:
        raise StreamingError(str(exc)) from None


def mic_source(sample_rate_hz: int, chunk: int, seconds: float | None = None) -> Iterator[np.ndarray]:
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise StreamingError(
            f"no audio system: {exc}; install PortAudio (apt-get install libportaudio2)"
        ) from None
    try:
        stream = sd.InputStream(samplerate=sample_rate_hz, channels=1, dtype="float32", blocksize=chunk)
        stream.start()
    except Exception as exc:  # sd.PortAudioError and friends
        raise StreamingError(
            f"cannot open the microphone ({exc}); check that one is connected and not used by another "
            "program, or use --wav FILE / --synthetic MINUTES"
        ) from None
    got = 0
    try:
        while seconds is None or got < seconds * sample_rate_hz:
            data, _ = stream.read(chunk)
            got += len(data)
            yield data[:, 0].copy()
    finally:
        stream.stop()
        stream.close()
