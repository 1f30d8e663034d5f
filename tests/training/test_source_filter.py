"""The source-filter prior for model inversion: speech-like spectra rendered through the front-end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_nas.errors import ConfigError
from audio_nas.features import FrontEndConfig, make_frontend
from audio_nas.training.source_filter import SourceFilterPrior

CFG = FrontEndConfig(kind="logmel", window_ms=30, hop_ms=20, n_mels=40)


def _prior(n=4, seed=0, cfg=CFG):
    return SourceFilterPrior(cfg, n, np.random.default_rng(seed), torch.device("cpu"))


@pytest.mark.parametrize("kind", ["logmel", "mfcc", "pcen"])
def test_render_has_the_front_ends_shape_and_gradients_reach_every_parameter(kind):
    cfg = FrontEndConfig(kind=kind, window_ms=30, hop_ms=20, n_mels=40)
    p = _prior(cfg=cfg)
    x = p.render()
    assert tuple(x.shape) == (4, *cfg.output_shape) and torch.isfinite(x).all()
    x.pow(2).mean().backward()
    for name, v in p.params.items():
        assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0, name


def test_same_seed_same_parameters():
    a, b, c = _prior(seed=1), _prior(seed=1), _prior(seed=2)
    assert torch.equal(a.render(), b.render()) and not torch.equal(a.render(), c.render())


def test_voiced_frames_have_harmonics_of_f0_and_a_formant_envelope():
    p = _prior(n=1)
    with torch.no_grad():
        p.params["f0"].fill_(0.0)  # sigmoid 0.5: f0 = 190 Hz, flat
        p.params["voice_db"].fill_(10.0)  # loud voicing everywhere
        p.params["noise_db"].fill_(-10.0)
        p.params["bg_db"].fill_(-10.0)
        power = p.power()[0, 10].numpy()  # one frame [bins]
    freqs = np.linspace(0.0, CFG.sample_rate_hz / 2, CFG.n_fft_effective // 2 + 1)
    f0 = 190.0
    low = (freqs > 100) & (freqs < 1200)
    peaks = [i for i in np.flatnonzero(low) if power[i] >= power[i - 1] and power[i] >= power[i + 1]]
    assert len(peaks) >= 4
    for i in peaks:  # every local maximum sits on a harmonic (within a bin of 31 Hz)
        assert abs(freqs[i] / f0 - round(freqs[i] / f0)) * f0 < 32
    # the envelope falls towards high frequencies (source tilt and formants)
    assert power[freqs > 6000].max() < 1e-2 * power.max()


def test_rendered_features_are_those_of_the_front_end_applied_to_the_power():
    p = _prior(n=2)
    fe = make_frontend(CFG)
    with torch.no_grad():
        expected = fe.from_mel_power(fe.mel_of_power(p.power()))
        assert torch.allclose(p.render(), expected)


def test_prior_needs_a_known_front_end():
    with pytest.raises(ConfigError, match="front-end"):
        SourceFilterPrior(FrontEndConfig(kind="wavelet"), 1, np.random.default_rng(0), torch.device("cpu"))
