"""Fixed-point front-end: agreement with the float path, and the C++ twin bit-exact on golden data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audio_nas.errors import ConfigError
from audio_nas.features import FrontEndConfig, make_frontend
from audio_nas.features.fixed_point import frames_q15, make_tables, to_float_logmel, write_c_header

ROOT = Path(__file__).resolve().parents[2]
CFG = FrontEndConfig(kind="logmel", window_ms=30, hop_ms=20, n_mels=40)


def speechlike(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    f0 = 120 + 40 * np.sin(2 * np.pi * 3 * t)
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 20)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2
    )
    x = x / np.abs(x).max() * 0.5 + 0.01 * rng.standard_normal(len(t))
    return np.round(x * 32767).astype(np.int16)


def test_fixed_point_agrees_with_float_logmel():
    t = make_tables(CFG)
    audio = speechlike()
    fixed = to_float_logmel(frames_q15(audio, t), t)
    ref = make_frontend(CFG)(audio[None].astype(np.float32) / 32768)[0]
    assert fixed.shape == ref.shape == CFG.output_shape
    energetic = ref > np.log(1e-3)  # above the integer floor of the scaled FFT
    err = np.abs(fixed - ref)[energetic]
    assert energetic.mean() > 0.5
    assert err.mean() < 0.1 and np.percentile(err, 95) < 0.35  # nats; documented in fixed_point.py
    assert np.corrcoef(fixed[energetic], ref[energetic])[0, 1] > 0.99


def test_only_logmel_and_power_of_two_fft():
    with pytest.raises(ConfigError, match="log-mel"):
        make_tables(FrontEndConfig(kind="mfcc"))
    with pytest.raises(ConfigError, match="power-of-two"):
        make_tables(FrontEndConfig(n_fft=600))


def _golden_header(tmp_path: Path, n_frames: int = 12) -> Path:
    t = make_tables(CFG)
    audio = speechlike(seed=3)[: (n_frames - 1) * t.hop_samples + t.window_samples]
    expected = frames_q15(audio, t)
    tables = write_c_header(t, tmp_path / "tables.h")
    golden = tmp_path / "frontend_golden.h"
    golden.write_text(
        f'#pragma once\n#include "{tables}"\n'
        f"constexpr int kGoldenFrames = {n_frames};\nconstexpr int kGoldenMels = {t.n_mels};\n"
        f"constexpr int kGoldenNfft = {t.n_fft};\n"
        f"static const int16_t kGoldenAudio[] = {{{', '.join(map(str, audio))}}};\n"
        f"static const int16_t kGoldenExpected[] = {{{', '.join(map(str, expected.ravel()))}}};\n"
    )
    return golden


def test_cpp_twin_is_bit_exact_with_python(tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed: the C++ front-end cannot be built on this machine")
    _golden_header(tmp_path)
    exe = tmp_path / "test_frontend"
    subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            f"-I{ROOT / 'firmware/src'}",
            f"-I{tmp_path}",
            str(ROOT / "firmware/src/frontend/fixed_frontend.cc"),
            str(ROOT / "firmware/tests/test_frontend.cc"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "frontend: 13 passed, 0 failed" in out.stdout


def test_cpp_twin_cross_compiles_for_cortex_m4(tmp_path):
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip(
            "arm-none-eabi-g++ is not installed (apt-get install gcc-arm-none-eabi "
            "libstdc++-arm-none-eabi-newlib)"
        )
    subprocess.run(
        [
            "arm-none-eabi-g++",
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Werror",
            "-fno-exceptions",
            f"-I{ROOT / 'firmware/src'}",
            "-c",
            str(ROOT / "firmware/src/frontend/fixed_frontend.cc"),
            "-o",
            str(tmp_path / "f.o"),
        ],
        check=True,
    )
    assert (tmp_path / "f.o").stat().st_size > 0


def test_header_carries_the_sample_rate(tmp_path):
    # the firmware's audio mode times frames with hop_samples / sample_rate_hz from these tables
    cfg = FrontEndConfig(sample_rate_hz=8000, n_fft=256, window_ms=30, hop_ms=20)
    text = write_c_header(make_tables(cfg), tmp_path / "t.h").read_text()
    assert "kFrontendLogLut, 8000};" in text
