"""Front-ends against librosa (tolerances stated), cache behaviour and the cost model."""

from __future__ import annotations

import dataclasses
import json
import time

import librosa
import numpy as np
import pytest

from audio_nas.data.dataset import AudioDataset, content_hash
from audio_nas.errors import ConfigError, DataError
from audio_nas.features import FrontEndConfig, compute_features, frontend_cost, make_frontend
from audio_nas.features.frontends import LOG_EPS, PCEN


def audio(n=3, seconds=1.0, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = [
        0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t) + 0.05 * rng.standard_normal(len(t))
        for _ in range(n)
    ]
    return np.stack(x).astype(np.float32)


def librosa_mel_power(x, cfg):
    """librosa with the same framing: frames of window_samples, periodic Hann, zero-padded to n_fft."""
    frames = librosa.util.frame(x, frame_length=cfg.window_samples, hop_length=cfg.hop_samples, axis=0)
    win = librosa.filters.get_window("hann", cfg.window_samples, fftbins=True)
    spec = np.abs(np.fft.rfft(frames * win, n=cfg.n_fft_effective, axis=1)) ** 2
    fb = librosa.filters.mel(
        sr=cfg.sample_rate_hz,
        n_fft=cfg.n_fft_effective,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin_hz,
        fmax=cfg.fmax_hz_effective,
        htk=True,
        norm=None,
    )
    return spec @ fb.T


@pytest.mark.parametrize("window_ms, hop_ms, n_mels", [(30, 20, 40), (40, 20, 32), (25, 10, 20)])
def test_logmel_matches_librosa(window_ms, hop_ms, n_mels):
    cfg = FrontEndConfig(kind="logmel", window_ms=window_ms, hop_ms=hop_ms, n_mels=n_mels)
    x = audio()
    ours = make_frontend(cfg)(x)
    assert ours.shape == (3, *cfg.output_shape)
    ref = np.log(librosa_mel_power(x[0].astype(np.float64), cfg) + LOG_EPS)
    # tolerance: float32 vs float64 arithmetic; 1e-3 nats is 0.004 dB
    np.testing.assert_allclose(ours[0], ref, atol=1e-3)


def test_mfcc_matches_librosa_dct():
    cfg = FrontEndConfig(kind="mfcc", window_ms=40, hop_ms=20, n_mels=40, n_mfcc=10)
    x = audio()
    ours = make_frontend(cfg)(x)
    assert ours.shape == (3, 49, 10)
    logmel = np.log(librosa_mel_power(x[1].astype(np.float64), cfg) + LOG_EPS)
    ref = librosa.feature.mfcc(S=logmel.T, n_mfcc=10, dct_type=2, norm="ortho").T
    np.testing.assert_allclose(ours[1], ref, atol=2e-3)


def test_pcen_matches_librosa():
    cfg = FrontEndConfig(kind="pcen", window_ms=30, hop_ms=20, n_mels=40)
    fe = PCEN(cfg)
    x = audio(1)
    ours = fe(x)[0]
    mel = librosa_mel_power(x[0].astype(np.float64), cfg)
    ref = librosa.pcen(
        mel.T,
        sr=cfg.sample_rate_hz,
        hop_length=cfg.hop_samples,
        gain=0.98,
        bias=2.0,
        power=0.5,
        time_constant=0.4,
        eps=1e-6,
        zi=None,
    ).T
    # same smoother start as librosa (steady state for unit input); float32 vs float64: 0.1% relative
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-5)


def test_output_shape_is_derived_from_config_alone():
    for cfg in [
        FrontEndConfig(kind="mfcc", window_ms=40, hop_ms=20, n_mfcc=13),
        FrontEndConfig(window_ms=30, hop_ms=30, n_mels=20),
        FrontEndConfig(clip_ms=500),
    ]:
        x = np.zeros((1, cfg.clip_samples), np.float32)
        assert make_frontend(cfg)(x).shape[1:] == cfg.output_shape


def fake_dataset(n=40, sr=16000, name="fake"):
    w = audio(n)
    labels = np.arange(n) % 4
    split = (np.arange(n) % 10 >= 8).astype(np.uint8)
    classes = ("a", "b", "c", "d")
    return AudioDataset(
        name=name,
        waveforms=w,
        labels=labels,
        split=split,
        class_names=classes,
        sample_rate_hz=sr,
        content_hash=content_hash(w, labels, split, classes),
    )


def test_cache_reuses_and_keys_on_config_and_data(tmp_path):
    ds = fake_dataset()
    cfg = FrontEndConfig()
    a = compute_features(ds, cfg, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    b = compute_features(ds, cfg, tmp_path)
    assert a.key == b.key and sorted(p.name for p in tmp_path.iterdir()) == files
    assert isinstance(b.x, np.memmap)
    np.testing.assert_array_equal(np.asarray(a.x), make_frontend(cfg)(ds.waveforms))
    c = compute_features(ds, dataclasses.replace(cfg, n_mels=20), tmp_path)
    assert c.key != a.key and c.x.shape[2] == 20
    ds2 = fake_dataset(n=41)
    assert compute_features(ds2, cfg, tmp_path).key != a.key
    assert not list(tmp_path.glob("*.tmp"))
    sub = a.subset("validation")
    assert len(sub.labels) == int((ds.split == 1).sum())


def test_cache_survives_concurrent_writers_of_one_key(tmp_path):
    # Parallel searches extract the same front-end at once; a shared temporary name for the metadata made
    # one writer rename the other's file away (FileNotFoundError, a failed trial on the GPU machine).
    from concurrent.futures import ThreadPoolExecutor

    ds, cfg = fake_dataset(), FrontEndConfig()
    with ThreadPoolExecutor(6) as pool:
        keys = list(pool.map(lambda _: compute_features(ds, cfg, tmp_path).key, range(12)))
    assert len(set(keys)) == 1
    assert not list(tmp_path.glob("*.tmp"))
    assert np.asarray(compute_features(ds, cfg, tmp_path).x).shape[0] == len(ds.labels)


def test_cache_is_much_faster_than_recomputing(tmp_path):
    ds = fake_dataset(n=200)
    cfg = FrontEndConfig()
    t0 = time.perf_counter()
    compute_features(ds, cfg, tmp_path)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.asarray(compute_features(ds, cfg, tmp_path).x).sum()
    warm = time.perf_counter() - t0
    assert warm < cold  # the 20x target is measured in `make bench` (docs/benchmarks.md)


def test_rate_and_length_mismatch_errors(tmp_path):
    ds = fake_dataset()
    with pytest.raises(DataError, match="8000 Hz"):
        compute_features(ds, FrontEndConfig(sample_rate_hz=8000), tmp_path)
    with pytest.raises(DataError, match="clip_ms"):
        compute_features(ds, FrontEndConfig(clip_ms=500), tmp_path)


def test_cost_model_scales_and_names_cores():
    small = frontend_cost(FrontEndConfig(window_ms=30, hop_ms=20, n_mels=20))
    mfcc = frontend_cost(FrontEndConfig(kind="mfcc", window_ms=30, hop_ms=20, n_mels=20, n_mfcc=10))
    fast = frontend_cost(FrontEndConfig(window_ms=30, hop_ms=10, n_mels=20))
    m0 = frontend_cost(FrontEndConfig(window_ms=30, hop_ms=20, n_mels=20), core="cortex-m0plus")
    assert mfcc.macs_per_frame == small.macs_per_frame + 200
    assert fast.cycles_per_s == pytest.approx(2 * small.cycles_per_s)
    assert m0.cycles_per_frame > small.cycles_per_frame
    # 512-point real FFT: 128 x 8 butterflies x 4 + 256 x 4 split = 5120 MACs, plus window 480, power/mel 2 x
    # 2 x 257
    assert small.macs_per_frame == 480 + 5120 + 4 * 257
    with pytest.raises(ConfigError, match="cortex-m4f"):
        frontend_cost(FrontEndConfig(), core="z80")


@pytest.mark.parametrize("kind", ["logmel", "mfcc", "pcen"])
def test_features_from_a_power_spectrum_are_differentiable_and_match_the_audio_path(kind):
    import torch

    cfg = FrontEndConfig(kind=kind, window_ms=30, hop_ms=20, n_mels=40)
    fe = make_frontend(cfg)
    x = audio(2)
    frames = torch.from_numpy(x).unfold(-1, cfg.window_samples, cfg.hop_samples) * fe.window
    power = torch.fft.rfft(frames, n=cfg.n_fft_effective).abs().pow(2).requires_grad_(True)
    feats = fe.from_mel_power(fe.mel_of_power(power))
    assert np.allclose(feats.detach().numpy(), fe(x), atol=1e-4)  # the same features as from audio
    feats.sum().backward()
    assert power.grad is not None and torch.isfinite(power.grad).all() and power.grad.abs().sum() > 0


def test_stateful_front_end_is_cached_after_a_lead_in_from_its_own_split(tmp_path, monkeypatch):
    # PCEN's smoother carries the level of the audio before a frame: on a stream that is the seconds before
    # the keyword, so the cache computes PCEN clips after a lead-in of other clips of the same split (and
    # log-mel / MFCC, which keep no state, on the clip alone).
    from audio_nas.features import cache
    from audio_nas.features.frontends import carries_state

    assert carries_state(FrontEndConfig(kind="pcen")) and not carries_state(FrontEndConfig(kind="logmel"))
    ds = fake_dataset(n=40)
    pcen = FrontEndConfig(kind="pcen")
    feats = np.asarray(compute_features(ds, pcen, tmp_path).x)
    alone = make_frontend(pcen)(ds.waveforms)
    assert feats.shape == alone.shape and not np.allclose(feats, alone, atol=1e-3)
    # The clip's frames are exactly the last n_frames of lead-in + clip (the lead-in is whole hops).
    lead_n = cache.lead_in_samples(pcen)
    assert lead_n % pcen.hop_samples == 0 and abs(lead_n / pcen.sample_rate_hz - cache.LEAD_IN_S) < 0.05
    pools = cache.lead_in_pools(ds.split)
    before = cache.lead_in_audio(ds.waveforms, pools, ds.split, np.arange(3), lead_n)
    again = make_frontend(pcen)(np.concatenate([before, ds.waveforms[:3]], axis=1))[:, -pcen.n_frames :]
    np.testing.assert_allclose(feats[:3], again, rtol=1e-5, atol=1e-6)
    # Deterministic per clip, whatever the batch size; and uncached == cached.
    monkeypatch.setattr(cache, "BATCH", 7)
    np.testing.assert_allclose(np.asarray(compute_features(ds, pcen, use_cache=False).x), feats, rtol=1e-5)
    # Never another split's audio: with the validation clips silent, their lead-ins are silent too.
    w = ds.waveforms.copy()
    w[ds.split == 1] = 0.0
    lead = cache.lead_in_audio(w, pools, ds.split, np.flatnonzero(ds.split == 1), lead_n)
    assert not lead.any()
    lead = cache.lead_in_audio(w, pools, ds.split, np.flatnonzero(ds.split == 0), lead_n)
    assert np.abs(lead).max() > 0.01
    # Train clips appended to the set (as negatives: and more: do) leave the first clips' features alone.
    monkeypatch.setattr(cache, "LEAD_IN_POOL", 8)
    base = np.asarray(compute_features(ds, pcen, use_cache=False).x)
    grown = ds.with_train_clips(
        name="grown", content_hash="grown", waveforms=audio(5, seed=9), labels=np.zeros(5, np.int64)
    )
    np.testing.assert_array_equal(np.asarray(compute_features(grown, pcen, use_cache=False).x)[:40], base)
    # Stateless front-ends: unchanged features and an unchanged cache key.
    mel = FrontEndConfig()
    np.testing.assert_array_equal(
        np.asarray(compute_features(ds, mel, tmp_path).x), make_frontend(mel)(ds.waveforms)
    )
    meta = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert {m["frontend"]["kind"]: m["lead_in"] is not None for m in meta} == {"pcen": True, "logmel": False}
