"""The embedded default datasets, generated deterministically from a seed (no download).

synth-kws     the 12 MLPerf Tiny keyword classes. Words are spoken by espeak-ng with
              ~500 voices (20 language phonologies x ~28 variants: accents, sexes, ages,
              Klatt synthesis), rate and pitch jitter, random gain and time shift, simple
              reverberation (exponentially decaying noise impulse response) and background
              noise (white/pink/brown, babble from other words, mains hum) at 0-20 dB SNR.
              Splits are by voice (70/15/15 by a hash of the voice name): test voices are
              never heard in training. _unknown_ = other Speech Commands words;
              _silence_ = background only.
synth-events  9 always-on sound-event classes in the spirit of AudioSet: siren, alarm beeps,
              knocking, glass-break-like bursts, clapping, engine hum, speech, music,
              background; procedural, with onset jitter and background noise at 0-20 dB SNR.

Each clip has its own seed (SeedSequence of the dataset seed, class and index), so
the recipe of every clip (class, word, voice, rate, pitch, shift, reverb, noise, SNR,
split) does not depend on the number of worker processes. The waveform itself is
bit-identical for most clips but not all: espeak-ng's synthesiser carries state that
differs between processes (measured: 43 of 240 clips differ between a 1- and a
2-worker run, median correlation 0.996 between the two versions; seeding its PRNG and
libc's does not remove it). The content hash in manifest.json records the audio
actually generated, and the generated set is cached, so a user's dataset never
changes under them.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal as sps
import soxr

from audio_nas.data.audio_io import read_audio, write_wav
from audio_nas.data.dataset import (
    KWS12_CLASSES,
    SPLIT_IDS,
    SPLITS,
    AudioDataset,
    active_span,
    content_hash,
    fix_length,
    register_dataset,
)
from audio_nas.data.tts import Espeak, available_voices
from audio_nas.errors import DataError
from audio_nas.paths import data_dir
from audio_nas.progress import track

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SPAN_FIELDS = ("onset_sample", "offset_sample")  # manifest columns: the foreground's first/last sample
SAMPLE_RATE_HZ = 16_000
CLIP_SAMPLES = 16_000
UNKNOWN_WORDS: tuple[str, ...] = (
    "bed",
    "bird",
    "cat",
    "dog",
    "eight",
    "five",
    "four",
    "happy",
    "house",
    "marvin",
    "nine",
    "one",
    "seven",
    "sheila",
    "six",
    "three",
    "tree",
    "two",
    "wow",
    "zero",
    "learn",
    "follow",
    "forward",
    "backward",
    "visual",
)
EVENT_CLASSES: tuple[str, ...] = (
    "siren",
    "alarm_beeps",
    "knocking",
    "glass_break",
    "clapping",
    "engine_hum",
    "speech",
    "music",
    "background",
)


@dataclass(frozen=True)
class SynthRecipe:
    name: str
    classes: tuple[str, ...]
    default_per_class: int
    # -> (audio, group, (first, last) sample of the foreground sound before noise is mixed in, or None)
    make_clip: Callable[[int, int, np.random.Generator, dict], tuple[np.ndarray, str, tuple[int, int] | None]]


# --------------------------------------------------------------------------------------
# Shared signal helpers
# --------------------------------------------------------------------------------------


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        x = white
    elif kind == "pink":  # 1/f via the Voss-McCartney-like IIR of Paul Kellet
        b, a = (
            [0.049922035, -0.095993537, 0.050612699, -0.004408786],
            [1, -2.494956002, 2.017265875, -0.522189400],
        )
        x = sps.lfilter(b, a, white)
    elif kind == "brown":
        x = np.cumsum(white)
        x = x - np.convolve(x, np.ones(400) / 400, mode="same")
    elif kind == "hum":
        t = np.arange(n) / SAMPLE_RATE_HZ
        f0 = rng.choice([50.0, 60.0])
        x = sum(
            rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3))
            for h in range(1, 8)
        )
        x = x + 0.05 * white
    else:
        raise ValueError(kind)
    x = np.asarray(x, dtype=np.float64)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


def _mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    return signal + noise * (_rms(signal) / _rms(noise)) / (10 ** (snr_db / 20))


def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60_s = rng.uniform(0.1, 0.6)
    n = int(rt60_s * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    ir[0] = 1.0
    wet = sps.fftconvolve(x, ir)[: len(x)]
    mix = rng.uniform(0.2, 0.6)
    return (1 - mix) * x + mix * wet * (_rms(x) / _rms(wet))


def _place(event: np.ndarray, rng: np.random.Generator, n: int = CLIP_SAMPLES) -> np.ndarray:
    out = np.zeros(n)
    event = event[:n]
    start = int(rng.integers(0, n - len(event) + 1))
    out[start : start + len(event)] = event
    return out


def _finish(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    peak = np.max(np.abs(x)) + 1e-12
    return (x / peak * rng.uniform(0.25, 0.9)).astype(np.float32)


def _split_of(key: str) -> str:
    """70/15/15 split from a stable hash of the group key (a voice or a source id)."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else ("validation" if h < 85 else "test")


# --------------------------------------------------------------------------------------
# synth-kws
# --------------------------------------------------------------------------------------


def _speak(word: str, voice: str, rng: np.random.Generator) -> np.ndarray:

    eng = Espeak.get()
    params = dict(
        rate_wpm=int(rng.integers(110, 220)),
        pitch=int(rng.integers(20, 80)),
        pitch_range=int(rng.integers(20, 90)),
    )
    try:
        pcm = eng.synth_isolated(word, voice, **params)
    except DataError:
        # seen: a few (voice, text) pairs make espeak-ng fail (e.g. 'nl+klatt' on some multi-word text);
        # fall back to the same language's plain voice, then to en-us, so one utterance never aborts a dataset
        lang = voice.split("+")[0]
        for fallback in (f"{lang}+m3", "en-us+m3"):
            try:
                pcm = eng.synth_isolated(word, fallback, **params)
                break
            except DataError:
                continue
        else:
            raise
    x = soxr.resample(pcm.astype(np.float32) / 32768.0, eng.sample_rate_hz, SAMPLE_RATE_HZ)
    active = np.flatnonzero(np.abs(x) > 0.02 * (np.max(np.abs(x)) + 1e-9))
    return x[active[0] : active[-1] + 1] if len(active) else x


def _background(rng: np.random.Generator, voices: list[str]) -> np.ndarray:
    kind = rng.choice(["white", "pink", "brown", "hum", "babble"])
    if kind != "babble":
        return _noise(str(kind), CLIP_SAMPLES, rng)
    x = np.zeros(CLIP_SAMPLES)
    for _ in range(int(rng.integers(3, 7))):
        w = _speak(str(rng.choice(UNKNOWN_WORDS)), str(rng.choice(voices)), rng)
        x += _place(w / (_rms(w) + 1e-9), rng) * rng.uniform(0.3, 1.0)
    return x / _rms(x) + 0.1 * _noise("pink", CLIP_SAMPLES, rng)


def _kws_clip(
    class_idx: int, index: int, rng: np.random.Generator, ctx: dict
) -> tuple[np.ndarray, str, tuple[int, int] | None]:
    label = KWS12_CLASSES[class_idx]
    if label == "_silence_":
        group = f"silence-{index}"
        voices = ctx["voices_by_split"][_split_of(group)]
        bg = _background(rng, voices)
        level = 10 ** rng.uniform(-3, -0.5)
        return (bg / (np.max(np.abs(bg)) + 1e-9) * level).astype(np.float32), group, None
    voice = ctx["voices"][int(rng.integers(len(ctx["voices"])))]
    word = label if label != "_unknown_" else str(rng.choice(UNKNOWN_WORDS))
    speech = _speak(word, voice, rng)
    x = _place(speech, rng)
    if rng.random() < 0.5:
        x = _reverb(x, rng)
    span = active_span(x)  # of the clean (placed, reverberated) word: noise is not in it yet
    bg = _background(rng, ctx["voices_by_split"][_split_of(voice)])
    x = _mix_at_snr(x, bg, rng.uniform(0.0, 20.0))
    return _finish(x, rng), voice, span


def _kws_context() -> dict:

    voices = available_voices()
    by_split = {s: [v for v in voices if _split_of(v) == s] for s in SPLITS}
    return {"voices": voices, "voices_by_split": by_split}


# --------------------------------------------------------------------------------------
# synth-events
# --------------------------------------------------------------------------------------


def _tone(
    f_hz: np.ndarray | float, n: int, harmonics=(1.0,), sample_rate_hz: int = SAMPLE_RATE_HZ
) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(f_hz, (n,))) / sample_rate_hz
    return sum(a * np.sin((h + 1) * phase) for h, a in enumerate(harmonics))


def procedural_music(rng: np.random.Generator, n: int, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Tonal music-like audio: a sequence of three-note chords of harmonic tones with soft envelopes."""
    x = np.zeros(n)
    note_len = int(rng.uniform(0.1, 0.3) * sample_rate_hz)
    base = 220 * 2 ** (rng.integers(-12, 12) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    for i in range(0, n, note_len):
        m = min(note_len, n - i)
        env = np.minimum(1, np.arange(m) / 200) * np.exp(-np.arange(m) / (m / 2))
        chord = rng.choice(scale, size=3, replace=False)
        x[i : i + m] += env * sum(
            _tone(base * 2 ** (c / 12), m, (1.0, 0.5, 0.25), sample_rate_hz) for c in chord
        )
    return x


def _event(label: str, rng: np.random.Generator) -> np.ndarray:
    sr = SAMPLE_RATE_HZ
    if label == "siren":
        n = int(rng.uniform(0.6, 1.0) * sr)
        t = np.arange(n) / sr
        f = rng.uniform(600, 900) + rng.uniform(200, 500) * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t)
        return _tone(f, n, (1.0, 0.3, 0.1))
    if label == "alarm_beeps":
        f0, on, off = rng.uniform(1500, 3500), rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15)
        n = int(rng.uniform(0.5, 0.95) * sr)
        gate = ((np.arange(n) / sr) % (on + off)) < on
        return np.sign(_tone(f0, n)) * gate * 0.5
    if label in ("knocking", "clapping"):
        n = int(rng.uniform(0.5, 0.95) * sr)
        x = np.zeros(n)
        period = rng.uniform(0.12, 0.25) if label == "knocking" else rng.uniform(0.2, 0.4)
        t = rng.uniform(0, 0.05)
        while t < n / sr - 0.05:
            m = int(rng.uniform(0.02, 0.06) * sr)
            env = np.exp(-np.arange(m) / (m / (6 if label == "knocking" else 3)))
            if label == "knocking":
                burst = env * _tone(rng.uniform(80, 250), m, (1.0, 0.5)) + 0.2 * env * rng.standard_normal(m)
            else:
                burst = env * sps.lfilter([1, -0.9], [1], rng.standard_normal(m))
            i = int(t * sr)
            x[i : i + m] += burst[: len(x) - i]
            t += period * rng.uniform(0.8, 1.2)
        return x
    if label == "glass_break":
        n = int(rng.uniform(0.4, 0.8) * sr)
        env = np.exp(-np.arange(n) / (n / 5))
        crash = sps.lfilter([1, -1], [1], rng.standard_normal(n)) * env
        ring = sum(
            np.exp(-np.arange(n) / (n / rng.uniform(2, 8))) * _tone(rng.uniform(2500, 7000), n)
            for _ in range(4)
        )
        return crash + 0.5 * ring
    if label == "engine_hum":
        n = sr
        t = np.arange(n) / sr
        f0 = rng.uniform(25, 80)
        am = 1 + 0.3 * np.sin(2 * np.pi * f0 / rng.uniform(2, 4) * t)
        return am * _tone(f0 * (1 + 0.02 * np.sin(2 * np.pi * 0.5 * t)), n, (1.0, 0.8, 0.6, 0.4, 0.3, 0.2))
    if label == "speech":
        words = " ".join(rng.choice(UNKNOWN_WORDS + KWS12_CLASSES[:10], size=int(rng.integers(2, 5))))
        voices = available_voices()
        return _speak(words, voices[int(rng.integers(len(voices)))], rng)
    if label == "music":
        return procedural_music(rng, int(rng.uniform(0.6, 1.0) * sr))
    raise ValueError(label)


def _events_clip(
    class_idx: int, index: int, rng: np.random.Generator, ctx: dict
) -> tuple[np.ndarray, str, tuple[int, int] | None]:
    label = EVENT_CLASSES[class_idx]
    group = f"{label}-{index}"
    bg = _noise(str(rng.choice(["white", "pink", "brown", "hum"])), CLIP_SAMPLES, rng)
    if label == "background":
        return _finish(bg * 10 ** rng.uniform(-2, 0), rng), group, None
    x = _place(_event(label, rng), rng)
    if rng.random() < 0.3:
        x = _reverb(x, rng)
    return _finish(_mix_at_snr(x, bg, rng.uniform(0.0, 20.0)), rng), group, active_span(x)


RECIPES: dict[str, SynthRecipe] = {
    "synth-kws": SynthRecipe("synth-kws", KWS12_CLASSES, 300, _kws_clip),
    "synth-events": SynthRecipe("synth-events", EVENT_CLASSES, 150, _events_clip),
}


# --------------------------------------------------------------------------------------
# Generation, caching, loading
# --------------------------------------------------------------------------------------

_WORKER_CTX: dict = {}


def _worker_init(name: str) -> None:
    _WORKER_CTX.clear()
    _WORKER_CTX.update(_kws_context() if name == "synth-kws" else {})


def _gen_one(
    args: tuple[str, int, int, int],
) -> tuple[int, int, np.ndarray, str, tuple[int, int] | None]:
    name, seed, class_idx, index = args
    rng = np.random.default_rng(np.random.SeedSequence([seed, class_idx, index]))
    audio, group, span = RECIPES[name].make_clip(class_idx, index, rng, _WORKER_CTX)
    return class_idx, index, fix_length(audio, CLIP_SAMPLES), group, span


def default_dir(name: str, per_class: int, seed: int, only: tuple[str, ...] | None = None) -> Path:
    recipe = RECIPES[name]
    if per_class == recipe.default_per_class and seed == 0 and only is None:
        return data_dir() / name
    suffix = "" if only is None else "-only" + "".join(f"-{c.strip('_')}" for c in sorted(only))
    return data_dir() / f"{name}-n{per_class}-s{seed}{suffix}"


@contextmanager
def generation_dir(
    out: Path, want: dict, refusal: Callable[[dict], str], asked: str
) -> Iterator[Path | None]:
    """Where a generator writes ``out``, one writer at a time (shared by every generated recipe).

    Yields None when ``out`` already holds the set asked for (``want`` matches its manifest: reuse it);
    refuses a set made with other arguments (never mixed: ``refusal(meta)`` says what it holds, ``asked``
    what was asked); else yields a fresh ``out.partial`` directory, renamed to ``out`` when the block ends
    and removed if it raises, so nothing is left half-written. A second process asking for the same set
    (two trainings of ``more:NAME`` started together) waits on a lock file beside it, then reuses it.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta_path = out / "manifest.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if {k: meta.get(k) for k in want} != want:
                raise DataError(
                    f"{out} holds {refusal(meta)}; asked for {asked}. Choose another --out or delete that "
                    "directory"
                )
            yield None
            return
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)


def make_dataset(
    name: str,
    per_class: int | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = True,
    workers: int | None = None,
    only: tuple[str, ...] | None = None,
) -> Path:
    """Generate ``name`` into ``out_dir`` (WAVs + manifest.csv + manifest.json + waveforms cache).

    ``only``: generate just these classes (the set keeps the recipe's class list, so its labels mean the
    same; clip i of class c is the same audio as in a full set of that seed). An existing complete directory
    with the same recipe is reused; one made with other arguments is refused (never mixed).
    """
    if name not in RECIPES:
        raise DataError(f"unknown synthetic dataset {name!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    per_class = per_class or recipe.default_per_class
    if per_class < 1:
        raise DataError(f"--per-class must be >= 1, got {per_class}")
    if only is not None:
        bad = [c for c in only if c not in recipe.classes]
        if bad or not only:
            raise DataError(
                f"{name} has no class {', '.join(bad) or '(none asked)'}; "
                f"its classes: {', '.join(recipe.classes)}"
            )
    out = Path(out_dir) if out_dir else default_dir(name, per_class, seed, only)
    want = {"name": name, "per_class": per_class, "seed": seed, "generator_version": GENERATOR_VERSION}
    want["only"] = sorted(only) if only else None  # None also matches manifests written before `only`
    asked = f"per_class={per_class}, seed={seed}" + (f", only={','.join(sorted(only))}" if only else "")

    def refusal(meta: dict) -> str:
        return (
            f"{meta.get('name')} with per_class={meta.get('per_class')}, seed={meta.get('seed')}, "
            f"generator v{meta.get('generator_version')}"
            + (f", only={','.join(meta['only'])}" if meta.get("only") else "")
        )

    with generation_dir(out, want, refusal, asked) as tmp:
        if tmp is None:
            return out
        jobs = [
            (name, seed, c, i)
            for c in range(len(recipe.classes))
            if only is None or recipe.classes[c] in only
            for i in range(per_class)
        ]
        workers = workers or min(os.cpu_count() or 1, 4)
        t0 = time.perf_counter()
        results: list[tuple[int, int, np.ndarray, str, tuple[int, int] | None]] = []
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(name,)) as pool:
            it = pool.imap(_gen_one, jobs, chunksize=8)
            results = list(
                track(it, f"generating {name}", total=len(jobs), unit="clip", logger=log, enabled=progress)
            )
        waves = np.stack([r[2] for r in results]).astype(np.float32)
        labels = np.array([r[0] for r in results], np.int64)
        groups = np.array([r[3] for r in results])
        split = np.array([SPLIT_IDS[_split_of(g)] for g in groups], np.uint8)
        rows = []
        for (c, i, audio, group, span), s in zip(results, split):
            rel = f"{SPLITS[s]}/{recipe.classes[c]}/{c:02d}_{i:05d}.wav"
            write_wav(tmp / rel, audio, SAMPLE_RATE_HZ)
            on, off = span if span is not None else ("", "")
            row = {"path": rel, "label": recipe.classes[c], "split": SPLITS[s], "group": group}
            rows.append({**row, "onset_sample": on, "offset_sample": off})
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["path", "label", "split", "group", *SPAN_FIELDS])
            w.writeheader()
            w.writerows(rows)
        # the stored (16-bit) audio is what every loader sees; hash and cache that
        waves16 = np.round(np.clip(waves, -1, 1) * 32767).astype(np.int16)
        np.save(tmp / "waveforms.int16.npy", waves16)
        stored = waves16.astype(np.float32) / 32767
        meta = {
            **want,
            "classes": list(recipe.classes),
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "clip_samples": CLIP_SAMPLES,
            "n_clips": len(rows),
            "split_counts": {s: int((split == SPLIT_IDS[s]).sum()) for s in SPLITS},
            "content_hash": content_hash(stored, labels, split, recipe.classes),
            "generation_time_s": round(time.perf_counter() - t0, 1),
            "workers": workers,
        }
        (tmp / "manifest.json").write_text(json.dumps(meta, indent=2))
    log.info("generated %s: %d clips in %.0f s -> %s", name, len(rows), meta["generation_time_s"], out)
    return out


def load_generated(path: Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> AudioDataset:
    meta = json.loads((path / "manifest.json").read_text())
    rows = list(csv.DictReader(open(path / "manifest.csv", newline="")))
    return dataset_from_manifest(
        path, meta, rows, meta["name"], f"audio-nas data make {meta['name']}", sample_rate_hz
    )


def dataset_from_manifest(
    path: Path, meta: dict, rows: list[dict], name: str, regenerate: str, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> AudioDataset:
    """The AudioDataset of a generated directory (synth-kws, synth-events, kws): the waveform cache (or the
    WAVs), checked against the manifest's content hash; ``regenerate`` is the command the error names."""
    classes = tuple(meta["classes"])
    labels = np.array([classes.index(r["label"]) for r in rows], np.int64)
    split = np.array([SPLIT_IDS[r["split"]] for r in rows], np.uint8)
    cache = path / "waveforms.int16.npy"
    if cache.exists():
        waves = np.load(cache).astype(np.float32) / 32767
    else:
        waves = np.stack(
            [fix_length(read_audio(path / r["path"], SAMPLE_RATE_HZ), CLIP_SAMPLES) for r in rows]
        )
    h = content_hash(waves, labels, split, classes)
    if h != meta["content_hash"]:
        raise DataError(
            f"{path}: content hash {h[:12]} does not match manifest.json ({meta['content_hash'][:12]}): "
            f"files were changed; delete the directory and regenerate with `{regenerate}`"
        )
    spans = None
    if rows and all(f in rows[0] for f in SPAN_FIELDS):  # sets generated before spans were recorded lack them
        spans = np.array(
            [[int(r[f]) if r[f] != "" else -1 for f in SPAN_FIELDS] for r in rows], np.int64
        ).reshape(-1, 2)
    if sample_rate_hz != SAMPLE_RATE_HZ:
        waves = np.stack([soxr.resample(w, SAMPLE_RATE_HZ, sample_rate_hz) for w in waves]).astype(np.float32)
        h = content_hash(waves, labels, split, classes)
        if spans is not None:
            known = spans >= 0
            spans[known] = np.minimum(spans[known] * sample_rate_hz // SAMPLE_RATE_HZ, waves.shape[1] - 1)
    return AudioDataset(
        name=name,
        waveforms=waves,
        labels=labels,
        split=split,
        class_names=classes,
        sample_rate_hz=sample_rate_hz,
        content_hash=h,
        groups=np.array([r["group"] for r in rows]),
        spans=spans,
    )


def _synthetic_loader(name: str):
    def load(root, *, sample_rate_hz: int = SAMPLE_RATE_HZ, clip_ms=None, on_error="raise") -> AudioDataset:
        if clip_ms not in (None, 1000):
            raise DataError(f"{name} has 1000 ms clips; clip_ms={clip_ms} is not available")
        path = Path(root) if root else make_dataset(name)
        if not (path / "manifest.json").exists():
            path = make_dataset(name, out_dir=path)
        return load_generated(path, sample_rate_hz)

    return load


for _name in RECIPES:
    register_dataset(_name)(_synthetic_loader(_name))
