"""Audio files whose header disagrees with their data are errors (or counted skips), never padded clips;
every command that loads a dataset offers --on-error, and the errors name it."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audio_nas.data import load_dataset
from audio_nas.data.audio_io import read_audio
from audio_nas.errors import DataError

SR = 16_000


def _tone(n: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x] * channels, axis=1).astype(np.float32) if channels > 1 else x.astype(np.float32)


def _truncated_wav(path: Path, cut_bytes: int = 10_000) -> Path:
    sf.write(str(path), _tone(), SR, subtype="PCM_16")  # 16000 frames = 32000 data bytes
    data = path.read_bytes()
    path.write_bytes(data[:-cut_bytes])
    return path


def _flac_with_total_samples(path: Path, total: int) -> Path:
    """A valid FLAC whose STREAMINFO total-samples field is rewritten (the audio frames are untouched)."""
    sf.write(str(path), _tone(), SR, format="FLAC")
    b = bytearray(path.read_bytes())
    assert b[:4] == b"fLaC" and b[4] & 0x7F == 0  # STREAMINFO first
    packed = int.from_bytes(b[18:26], "big")
    assert packed & ((1 << 36) - 1) == SR
    b[18:26] = ((packed & ~((1 << 36) - 1)) | total).to_bytes(8, "big")
    path.write_bytes(bytes(b))
    return path


def test_truncated_wav_is_an_error_naming_header_and_data(tmp_path):
    path = _truncated_wav(tmp_path / "cut.wav")
    assert sf.info(str(path)).frames == 11_000  # libsndfile alone would silently give a short clip
    with pytest.raises(DataError) as exc:
        read_audio(path, SR)
    msg = str(exc.value)
    assert str(path) in msg
    assert "truncated WAV" in msg
    assert "declares 16000 frames (32000 data bytes)" in msg
    assert "holds 11000 frames (22000 bytes)" in msg
    assert "--on-error skip" in msg


@pytest.mark.parametrize("cut", [1, 2, 31_999])
def test_truncated_wav_any_amount(tmp_path, cut):
    with pytest.raises(DataError, match="truncated WAV"):
        read_audio(_truncated_wav(tmp_path / "cut.wav", cut), SR)


def test_consistent_wavs_still_load(tmp_path):
    """Chunks after the data chunk and the streaming placeholder size (0xFFFFFFFF) are not errors."""
    sf.write(str(tmp_path / "ok.wav"), _tone(), SR, subtype="PCM_16")
    raw = bytearray((tmp_path / "ok.wav").read_bytes())
    with_list = raw + b"LIST" + struct.pack("<I", 6) + b"INFOab"
    with_list[4:8] = struct.pack("<I", len(with_list) - 8)
    (tmp_path / "list.wav").write_bytes(bytes(with_list))
    streamed = bytearray(raw)
    i = streamed.index(b"data")
    streamed[i + 4 : i + 8] = struct.pack("<I", 0xFFFFFFFF)
    streamed[4:8] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    for name in ("ok.wav", "list.wav", "streamed.wav"):
        x = read_audio(tmp_path / name, SR)
        assert x.shape == (SR,)
        np.testing.assert_allclose(x, _tone(), atol=1e-4)


def test_flac_header_with_fewer_frames_than_the_stream(tmp_path):
    path = _flac_with_total_samples(tmp_path / "short_header.flac", 8000)
    assert sf.read(str(path))[0].shape == (8000,)  # libsndfile alone would silently drop half the clip
    with pytest.raises(DataError) as exc:
        read_audio(path, SR)
    msg = str(exc.value)
    assert str(path) in msg and "MD5" in msg and "declares 8000" in msg and "--on-error skip" in msg


def test_flac_header_with_more_frames_than_the_stream(tmp_path):
    path = _flac_with_total_samples(tmp_path / "long_header.flac", 32000)
    with pytest.raises(
        DataError, match=r"long_header.flac: the header declares 32000 frames.*--on-error skip"
    ):
        read_audio(path, SR)


def test_truncated_flac(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(str(path), _tone(), SR, format="FLAC")
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(DataError, match=r"cut.flac: the header declares 16000 frames.*truncated or damaged"):
        read_audio(path, SR)


@pytest.mark.parametrize("subtype,channels", [("PCM_16", 1), ("PCM_24", 2), ("PCM_S8", 2)])
def test_valid_flac_passes_the_checksum(tmp_path, subtype, channels):
    path = tmp_path / "ok.flac"
    sf.write(str(path), _tone(channels=channels), SR, format="FLAC", subtype=subtype)
    assert read_audio(path, SR).shape == (SR,)


def test_empty_file_names_the_cli_option(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.wav: file is empty.*--on-error skip"):
        read_audio(tmp_path / "empty.wav", SR)


def _folder_with_bad_files(root: Path) -> Path:
    for c in ("yes", "no"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            sf.write(str(root / c / f"{i}.wav"), _tone(), SR, subtype="PCM_16")
    _truncated_wav(root / "yes" / "0.wav")
    (root / "no" / "0.wav").write_bytes(b"")
    _flac_with_total_samples(root / "no" / "9.flac", 8000)
    return root


def test_skip_counts_and_warns_once(tmp_path, caplog):
    root = _folder_with_bad_files(tmp_path / "ds")
    with pytest.raises(DataError, match="--on-error skip"):
        load_dataset(f"folder:{root}")
    caplog.set_level(logging.WARNING)
    ds = load_dataset(f"folder:{root}", on_error="skip")
    assert len(ds) == 4  # 6 good WAVs + 1 FLAC - 3 bad files
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3 bad audio file(s)" in warnings[0]


def test_all_files_bad_says_how_many_were_skipped(tmp_path):
    (tmp_path / "ds" / "x").mkdir(parents=True)
    _truncated_wav(tmp_path / "ds" / "x" / "a.wav")
    with pytest.raises(DataError, match=r"no readable audio files found \(1 bad file\(s\) skipped"):
        load_dataset(f"folder:{tmp_path / 'ds'}", on_error="skip")


def test_cli_data_info_on_error_option(tmp_path):
    from audio_nas.cli import app

    root = _folder_with_bad_files(tmp_path / "ds")
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "info", f"folder:{root}", "--on-error", "skip"])
    assert ok.exit_code == 0, ok.output
    assert "4 clips" in ok.output
    bad = runner.invoke(app, ["data", "info", f"folder:{root}"])
    assert isinstance(bad.exception, DataError)
    assert "--on-error skip" in str(bad.exception)
    wrong = runner.invoke(app, ["data", "info", f"folder:{root}", "--on-error", "ignore"])
    assert wrong.exit_code == 2


def test_search_config_on_error_key():
    from audio_nas.config import from_dict
    from audio_nas.errors import ConfigError
    from audio_nas.search import SearchConfig

    assert SearchConfig().on_error == "raise"
    assert from_dict(SearchConfig, {"on_error": "skip"}).on_error == "skip"
    with pytest.raises(ConfigError, match="on_error"):
        from_dict(SearchConfig, {"on_error": "ignore"})


@pytest.mark.parametrize("command", [["data", "info"], ["train"], ["search"], ["export"], ["stream"]])
def test_every_dataset_command_offers_on_error(command):
    from audio_nas.cli import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--on-error" in result.output


def test_cli_error_exit_and_progress_lines_on_a_non_terminal(tmp_path):
    """`audio-nas data make`, stderr to a pipe: progress lines; a bad dataset exits 2 naming the option."""
    env = {**os.environ, "AUDIO_NAS_HOME": str(tmp_path), "AUDIO_NAS_PROGRESS_INTERVAL_S": "0.5"}
    cmd = [sys.executable, "-c", "from audio_nas.cli import main; main()"]
    out = tmp_path / "kws"
    r = subprocess.run(
        [*cmd, "data", "make", "synth-kws", "--per-class", "1", "--workers", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "generating synth-kws: started, 0/12 clips (0%)" in r.stderr
    assert "generating synth-kws: done, 12/12 clips (100%)" in r.stderr
    root = _folder_with_bad_files(tmp_path / "ds")
    r = subprocess.run(
        [*cmd, "data", "info", f"folder:{root}"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 2
    assert "--on-error skip" in r.stderr and "Traceback" not in r.stderr
