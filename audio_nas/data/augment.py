"""Waveform augmentations for synthetic speech (used by the ``kws`` generator, not by synth-kws).

speed_perturb   resampling: tempo and pitch together (Ko et al. 2015, factors ~0.9-1.1)
pitch_shift     pitch without tempo (a phase-vocoder time stretch, then resampling)
vtlp            vocal-tract-length perturbation: a piecewise-linear warp of the frequency axis
                (Jaitly & Hinton 2013), magnitude warped frame by frame, phase kept
room_reverb     the impulse response of a simulated shoebox room (pyroomacoustics image source
                model, RT60 0.15-0.7 s), direct path aligned to the dry signal
channel_colour  microphone/channel: band limit (high-pass 50-300 Hz, sometimes a 3-7.5 kHz low-pass),
                a random 3-band peaking EQ (+-6 dB) and sometimes mild soft clipping

All take and return float mono arrays at ``sample_rate_hz`` and draw randomness only from the
``rng`` they are given, so a clip's seed fixes its augmentation.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as sps
import soxr

from audio_nas.errors import DataError

SAMPLE_RATE_HZ = 16_000


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))) + 1e-12) if len(x) else 1e-12


def speed_perturb(x: np.ndarray, factor: float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``factor`` > 1 plays faster (shorter and higher), as Kaldi's speed perturbation."""
    if factor <= 0:
        raise DataError(f"speed factor must be > 0, got {factor}")
    y = soxr.resample(np.asarray(x, np.float32), sample_rate_hz * factor, sample_rate_hz)
    return np.asarray(y, np.float32)


def time_stretch(x: np.ndarray, stretch: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder time stretch: ``stretch`` > 1 makes ``x`` longer, pitch unchanged."""
    x = np.asarray(x, np.float64)
    if abs(stretch - 1.0) < 1e-6 or len(x) < n_fft:
        return x.astype(np.float32)
    _, _, z = sps.stft(x, nperseg=n_fft, noverlap=n_fft - hop, boundary="zeros", padded=True)
    z = np.concatenate([z, np.zeros((z.shape[0], 1), z.dtype)], axis=1)
    steps = np.arange(0, z.shape[1] - 1, 1.0 / stretch)
    advance = 2 * np.pi * hop * np.arange(z.shape[0]) / n_fft
    mag, ang = np.abs(z), np.angle(z)
    phase = ang[:, 0].copy()
    out = np.empty((z.shape[0], len(steps)), np.complex128)
    for j, t in enumerate(steps):
        i, frac = int(t), t - int(t)
        out[:, j] = ((1 - frac) * mag[:, i] + frac * mag[:, i + 1]) * np.exp(1j * phase)
        dphi = ang[:, i + 1] - ang[:, i] - advance
        phase += advance + dphi - 2 * np.pi * np.round(dphi / (2 * np.pi))
    _, y = sps.istft(out, nperseg=n_fft, noverlap=n_fft - hop)
    n = int(round(len(x) * stretch))
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    return y.astype(np.float32)


def pitch_shift(x: np.ndarray, semitones: float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Pitch by ``semitones``, same length: a phase-vocoder stretch, then resampling back."""
    ratio = 2 ** (float(semitones) / 12)
    if len(x) < 512:
        return np.asarray(x, np.float32)
    y = speed_perturb(time_stretch(x, ratio), ratio, sample_rate_hz)
    y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
    return (y * (_rms(x) / _rms(y))).astype(np.float32)


def vtlp(
    x: np.ndarray, alpha: float, sample_rate_hz: int = SAMPLE_RATE_HZ, f_hi_hz: float = 4800.0
) -> np.ndarray:
    """Warp the frequency axis by ``alpha`` (>1 moves formants up: a shorter vocal tract)."""
    if alpha <= 0:
        raise DataError(f"vtlp alpha must be > 0, got {alpha}")
    x = np.asarray(x, np.float64)
    if abs(alpha - 1.0) < 1e-6 or len(x) < 512:
        return x.astype(np.float32)
    nyq = sample_rate_hz / 2
    n_fft = 512
    _, _, z = sps.stft(x, fs=sample_rate_hz, nperseg=n_fft, noverlap=n_fft - 128)
    f = np.linspace(0, nyq, z.shape[0])
    # forward warp of Jaitly & Hinton: linear below the boundary, then linear to keep nyquist fixed
    bound = f_hi_hz * min(alpha, 1.0) / alpha
    warped = np.where(
        f <= bound, alpha * f, nyq - (nyq - f_hi_hz * min(alpha, 1.0)) / (nyq - bound) * (nyq - f)
    )
    # output bin g takes the magnitude of the source frequency that warps to g
    src = np.interp(f, warped, f)
    mag = np.abs(z)
    new_mag = np.stack([np.interp(src, f, mag[:, t]) for t in range(mag.shape[1])], axis=1)
    z2 = new_mag * np.exp(1j * np.angle(z))
    _, y = sps.istft(z2, fs=sample_rate_hz, nperseg=n_fft, noverlap=n_fft - 128)
    y = y[: len(x)]
    return (y * (_rms(x) / _rms(y))).astype(np.float32)


def room_impulse_response(rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """RIR of a random shoebox room (3-8 x 3-7 x 2.4-3.5 m, RT60 0.15-0.7 s), image sources to order 8."""
    try:
        import pyroomacoustics as pra  # third-party and slow to import (~3 s): only when used
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DataError("pyroomacoustics is not installed; run `pip install pyroomacoustics`") from exc
    dims = np.array([rng.uniform(3, 8), rng.uniform(3, 7), rng.uniform(2.4, 3.5)])
    rt60_s = rng.uniform(0.15, 0.7)
    try:
        e_abs, max_order = pra.inverse_sabine(rt60_s, dims)
    except ValueError:  # a room too small for that RT60: the most reverberant material allowed
        e_abs, max_order = 0.05, 8
    room = pra.ShoeBox(
        dims, fs=sample_rate_hz, materials=pra.Material(float(e_abs)), max_order=int(min(max_order, 8))
    )
    margin = 0.4
    src = [rng.uniform(margin, d - margin) for d in dims]
    mic = [rng.uniform(margin, d - margin) for d in dims]
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    return np.asarray(room.rir[0][0], np.float64)


def room_reverb(x: np.ndarray, rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``x`` heard in a simulated room; the direct path is aligned with the dry signal, same RMS."""
    rir = room_impulse_response(rng, sample_rate_hz)
    d = int(np.argmax(np.abs(rir)))
    wet = sps.fftconvolve(np.asarray(x, np.float64), rir)[d : d + len(x)]
    return (wet * (_rms(x) / _rms(wet))).astype(np.float32)


def _peaking(f0_hz: float, gain_db: float, q: float, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook peaking biquad."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0_hz / sample_rate_hz
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return b / den[0], den / den[0]


def channel_colour(
    x: np.ndarray, rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> np.ndarray:
    """A random microphone/channel: band limit, 3-band EQ, sometimes mild clipping; same RMS."""
    y = np.asarray(x, np.float64)
    sos = sps.butter(2, rng.uniform(50, 300), "highpass", fs=sample_rate_hz, output="sos")
    y = sps.sosfilt(sos, y)
    if rng.random() < 0.5:
        sos = sps.butter(4, rng.uniform(3000, 7500), "lowpass", fs=sample_rate_hz, output="sos")
        y = sps.sosfilt(sos, y)
    for _ in range(3):
        f0 = float(np.exp(rng.uniform(np.log(200), np.log(6000))))
        b, a = _peaking(f0, rng.uniform(-6, 6), rng.uniform(0.7, 2.0), sample_rate_hz)
        y = sps.lfilter(b, a, y)
    if rng.random() < 0.3:
        peak = np.max(np.abs(y)) + 1e-12
        drive = rng.uniform(1.5, 4.0)
        y = np.tanh(drive * y / peak) / np.tanh(drive) * peak
    return (y * (_rms(x) / _rms(y))).astype(np.float32)


def augment_speech(
    x: np.ndarray, rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> np.ndarray:
    """The speaker-side chain on a dry utterance: speed (p 0.5), pitch (p 0.3), VTLP (p 0.5).

    Room and channel come after the utterance is placed in its clip (``room_reverb``, ``channel_colour``).
    """
    y = np.asarray(x, np.float32)
    if rng.random() < 0.5:
        y = speed_perturb(y, rng.uniform(0.9, 1.1), sample_rate_hz)
    if rng.random() < 0.3:
        y = pitch_shift(y, rng.uniform(-2.0, 2.0), sample_rate_hz)
    if rng.random() < 0.5:
        y = vtlp(y, rng.uniform(0.92, 1.08), sample_rate_hz)
    return y


def lpc_vocode(
    x: np.ndarray,
    rng: np.random.Generator,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    order: int = 16,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
) -> np.ndarray:
    """Re-synthesise an utterance with an LPC source-filter vocoder: another "synthesiser" from any voice.

    Per frame, the spectral envelope (order-``order`` LPC, ``librosa.lpc``) and the level are kept; the
    source is replaced by an impulse train at a new f0 contour (a random 80-250 Hz level with a slow
    random drift) in voiced frames and white noise in unvoiced ones (voicing from the zero-crossing rate).
    The words and the formants stay; the voice source, the fine spectrum and the f0 contour are the
    vocoder's, as in a formant or parametric synthesiser. Hand-written because no library here turns an
    LPC envelope back into speech with a new excitation (librosa has the analysis only).
    """
    import librosa

    y = np.asarray(x, np.float64)
    frame, hop = int(sample_rate_hz * frame_ms / 1000), int(sample_rate_hz * hop_ms / 1000)
    if len(y) < frame:
        return np.asarray(x, np.float32)
    n_frames = 1 + (len(y) - frame) // hop
    window = np.hanning(frame)
    # one pulse train for the whole utterance (f0 drifting per frame) and one noise source, so pulses
    # fall at the same absolute times in overlapping frames
    f0_hz = rng.uniform(80.0, 250.0) * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_frames)))
    f0_per_sample = np.interp(np.arange(len(y)), np.arange(n_frames) * hop + frame / 2, f0_hz)
    cycles = np.cumsum(f0_per_sample / sample_rate_hz)
    pulses = np.diff(np.floor(cycles), prepend=0.0)
    noise = rng.standard_normal(len(y))
    out = np.zeros(len(y))
    norm = np.zeros(len(y))
    for i in range(n_frames):
        sl = slice(i * hop, i * hop + frame)
        seg = y[sl]
        level = np.sqrt(np.mean(seg**2))
        if level < 1e-6:
            continue
        a = librosa.lpc(seg * window + 1e-9 * noise[sl], order=order)
        if not np.all(np.isfinite(a)):
            continue
        voiced = np.mean(np.abs(np.diff(np.sign(seg)))) / 2 < 0.25  # zero-crossing rate
        s = sps.lfilter([1.0], a, pulses[sl] if voiced else noise[sl]) * window
        s *= level / (np.sqrt(np.mean(s**2)) + 1e-12)
        out[sl] += s * window
        norm[sl] += window**2
    z = out / np.maximum(norm, 1e-3)
    return (z * (_rms(y) / (_rms(z) + 1e-12))).astype(np.float32)
