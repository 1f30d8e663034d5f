"""Reading audio files: any rate, mono or stereo, WAV/FLAC/OGG via soundfile, resampled with soxr."""

from __future__ import annotations

import hashlib
import logging
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audio_nas.errors import DataError

log = logging.getLogger(__name__)


# how every per-file error ends: the fix, including the skip option of the CLI and of the Python API
SKIP_HINT = "or skip bad files with --on-error skip (on_error='skip' in Python)"
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data-chunk sizes that streaming writers leave in the header
_UNKNOWN_FRAMES = (1 << 63) - 1  # libsndfile's SF_COUNT_MAX: a stream of unknown length


def _wav_data_problem(path: Path, file_bytes: int) -> str | None:
    """A RIFF/RIFX WAV whose data chunk claims more bytes than the file holds (a truncated file).

    libsndfile silently shortens such a file to the bytes present, which a loader would then pad
    with zeros; this reads the chunk headers itself. None when the file is not a WAV, the data size
    is a streaming placeholder, or the chunks are consistent (let libsndfile judge the rest).
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        block_align = 0
        pos = 12
        while pos + 8 <= file_bytes:
            fh.seek(pos)
            chunk_id, chunk_bytes = struct.unpack(endian + "4sI", fh.read(8))
            if chunk_id == b"fmt ":
                fmt = fh.read(min(chunk_bytes, 16))
                if len(fmt) >= 14:
                    block_align = struct.unpack(endian + "H", fmt[12:14])[0]
            elif chunk_id == b"data":
                present = file_bytes - (pos + 8)
                if chunk_bytes in _UNKNOWN_SIZES or chunk_bytes <= present:
                    return None
                frame = block_align or 1
                return (
                    f"truncated WAV: the header declares {chunk_bytes // frame} frames ({chunk_bytes} data "
                    f"bytes) but the file holds {present // frame} frames ({present} bytes)"
                )
            pos += 8 + chunk_bytes + (chunk_bytes & 1)
    return None


def _flac_md5_problem(path: Path, n_frames: int) -> str | None:
    """A FLAC whose decoded audio does not match the MD5 of the unencoded audio stored in its header.

    Catches a header whose total-samples field disagrees with the frames (libsndfile stops at the
    declared count and drops the rest silently) and damaged frames. None when the header stores
    no MD5 (all zeros: allowed by the format) or the checksum matches.
    """
    with open(path, "rb") as fh:
        head = fh.read(42)
    # "fLaC", then the first metadata block is STREAMINFO: 4-byte block header + 34 bytes
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    packed = int.from_bytes(head[18:26], "big")  # sample rate 20 bits, channels-1 3, bps-1 5, total 36
    bits = ((packed >> 36) & 0x1F) + 1
    declared = packed & ((1 << 36) - 1)
    md5 = head[26:42]
    if not any(md5):
        return None
    ints = sf.read(str(path), dtype="int32", always_2d=True)[0] >> (32 - bits)
    width = (bits + 7) // 8  # the MD5 covers little-endian signed samples of this width, interleaved
    raw = np.ascontiguousarray(ints.astype("<i4")).view(np.uint8).reshape(-1, 4)[:, :width]
    if hashlib.md5(raw.tobytes()).digest() == md5:
        return None
    return (
        f"FLAC header and audio disagree: the {n_frames} frames decoded (the header declares {declared}) do "
        f"not match the MD5 checksum in the header, so frames are missing, extra or damaged"
    )


def read_audio(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 at ``sample_rate_hz``. Raises DataError naming the file for anything unreadable.

    A file whose header disagrees with its audio (a truncated WAV, a FLAC whose frame count or
    checksum does not match) is an error, never a short clip padded with zeros.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; check the dataset layout or the manifest path")
    file_bytes = path.stat().st_size
    if file_bytes == 0:
        raise DataError(f"{path}: file is empty (0 bytes); delete or replace it, {SKIP_HINT}")
    fix = f"re-export or re-download the file, delete it, {SKIP_HINT}"
    problem = _wav_data_problem(path, file_bytes)
    if problem:
        raise DataError(f"{path}: {problem}; {fix}")
    declared = None
    try:
        with sf.SoundFile(str(path)) as fh:
            declared, rate, container = fh.frames, fh.samplerate, fh.format
            data = fh.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if declared:
            raise DataError(
                f"{path}: the header declares {declared} frames but the audio after it cannot be decoded "
                f"({exc}); the file ({file_bytes} bytes) is probably truncated or damaged; {fix}"
            ) from exc
        raise DataError(
            f"{path}: cannot decode audio ({exc}); re-encode it as WAV/FLAC/OGG, {SKIP_HINT}"
        ) from exc
    if data.shape[0] == 0:
        raise DataError(f"{path}: audio has zero samples; replace the file, {SKIP_HINT}")
    if 0 < declared < _UNKNOWN_FRAMES and declared != len(data):
        raise DataError(
            f"{path}: the header declares {declared} frames but only {len(data)} could be decoded; {fix}"
        )
    if container == "FLAC":
        problem = _flac_md5_problem(path, len(data))
        if problem:
            raise DataError(f"{path}: {problem}; {fix}")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise DataError(f"{path}: audio contains NaN or infinite samples; replace the file, {SKIP_HINT}")
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
                "%s: skipped %d bad audio file(s) (--on-error skip); first: %s",
                self.dataset,
                len(self.skipped),
                self.skipped[0],
            )
