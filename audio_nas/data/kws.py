"""``kws``: a keyword-spotting set for any words, generated from text (no recording).

``make_kws(["hey nova", "lights on", "stop"])`` writes, like synth-kws, WAVs + manifest.csv +
manifest.json (content hash) into ``data/kws-<words>-n<N>-s<S>`` (``.partial`` then an atomic
rename; a directory made with other arguments is refused). Load it as ``kws:PATH``.

Classes: one per keyword (spaces become ``_``), then ``_unknown_`` and ``_silence_``.
Per clip (its own seed, as synth-kws, so the recipe does not depend on the worker count):
  engine      drawn from ``engines`` (espeak-ng, flite, pico, festival; audio_nas.data.engines), then
              a voice of it
  speaker     speed (p .5), pitch (p .3) and vocal-tract-length (p .5) perturbation
  vocoder     only with ``vocoder`` > 0, train/validation voices only: LPC re-synthesis (p = vocoder)
  room        a simulated shoebox room impulse response (p .5, pyroomacoustics)
  channel     microphone/channel colouring (p .5): band limit, random EQ, mild clipping
  background  noise (white/pink/brown/hum) or babble of negative words, 0-20 dB SNR
_unknown_ kinds (hard negatives, the ``kind`` column): ``word`` (another word), ``near_miss``
(a word starting like a keyword, audio_nas.data.words), ``partial_start``/``partial_end`` (a
keyword's audio cut to its first/last 35-60 %), ``shifted`` (a keyword of which only 20-50 % lies
inside the 1 s clip). _silence_ kinds: ``noise``, ``babble``, ``quiet`` (background only).
Splits are by voice, per engine (15 % of each engine's voices test, 15 % validation, by a hash of
the name): test voices are never heard in training. The ``engine`` column records which engine
spoke a clip (for cross-synthesiser tests: audio_nas.bench.data).

synth-kws is a separate recipe (audio_nas.data.synthetic) and does not change with this one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audio_nas.data.audio_io import write_wav
from audio_nas.data.augment import augment_speech, channel_colour, lpc_vocode, room_reverb, speed_perturb
from audio_nas.data.dataset import (
    SPLIT_IDS,
    SPLITS,
    AudioDataset,
    active_span,
    content_hash,
    fix_length,
    register_dataset,
)
from audio_nas.data.engines import ENGINES, engine_of, get_engine
from audio_nas.data.synthetic import (
    SPAN_FIELDS,
    _finish,
    _mix_at_snr,
    _noise,
    _place,
    _rms,
    _split_of,
    dataset_from_manifest,
    generation_dir,
)
from audio_nas.data.words import RESERVED_CLASSES, NegativePlan, class_name, parse_keywords, parse_word_list
from audio_nas.data.words import plan_negatives as _plan_negatives
from audio_nas.errors import DataError
from audio_nas.paths import data_dir
from audio_nas.progress import track

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SAMPLE_RATE_HZ = 16_000
CLIP_SAMPLES = 16_000
# three synthesis families by default: at equal clips, adding pico's voices raised every held-out engine
# (+0.7 to +6.4 points), adding festival's lowered held-out espeak by 7.3 (docs/benchmarks.md,
# "cross-synthesiser ..., equal clips", the controlled table); festival also needs Debian packages
DEFAULT_ENGINES: tuple[str, ...] = ("espeak", "flite", "pico")
DEFAULT_PER_CLASS = 200
UNKNOWN_KINDS: tuple[str, ...] = ("word", "near_miss", "partial", "shifted")
UNKNOWN_KIND_P: tuple[float, ...] = (0.35, 0.25, 0.2, 0.2)
SILENCE_KINDS: tuple[str, ...] = ("noise", "babble", "quiet")
MANIFEST_FIELDS = ["path", "label", "split", "group", "engine", "kind", "word", *SPAN_FIELDS]


@dataclass(frozen=True)
class KwsArgs:
    keywords: tuple[str, ...]
    negatives: tuple[str, ...] = ()
    engines: tuple[str, ...] = DEFAULT_ENGINES
    per_class: int = DEFAULT_PER_CLASS
    seed: int = 0
    vocoder: float = 0.0  # share of train/validation speech re-synthesised by an LPC vocoder (test: never)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(class_name(k) for k in self.keywords) + RESERVED_CLASSES

    def command(self) -> str:
        cmd = f'audio-nas data make kws --words "{",".join(self.keywords)}"'
        if self.negatives:
            cmd += f' --negatives "{",".join(self.negatives)}"'
        cmd += f" --engines {','.join(self.engines)} --per-class {self.per_class} --seed {self.seed}"
        return cmd + (f" --vocoder {self.vocoder:g}" if self.vocoder else "")


def parse_engines(text: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    items = DEFAULT_ENGINES if text is None else (text.split(",") if isinstance(text, str) else text)
    names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    if not names:
        raise DataError(f"--engines is empty; engines: {', '.join(ENGINES)}")
    for n in names:
        if n not in ENGINES:
            raise DataError(f"--engines: unknown engine {n!r}; engines: {', '.join(ENGINES)}")
    return names


def split_voices(voices: list[str]) -> dict[str, str]:
    """Voice -> split: by a hash of the name, 15 % test and 15 % validation (at least one each)."""
    ranked = sorted(voices, key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    n = len(ranked)
    n_test = max(1, round(0.15 * n)) if n >= 3 else 0
    n_val = max(1, round(0.15 * n)) if n >= 3 else 0
    return {
        v: ("test" if i < n_test else "validation" if i < n_test + n_val else "train")
        for i, v in enumerate(ranked)
    }


def default_dir(args: KwsArgs) -> Path:
    names = [class_name(k) for k in args.keywords]
    slug = "-".join(names)
    if len(slug) > 40:
        digest = hashlib.sha256(",".join(args.keywords).encode()).hexdigest()[:6]
        slug = "-".join(names[:3]) + f"-and{len(names) - 3}-{digest}"
    suffix = "" if args.engines == DEFAULT_ENGINES else "-" + "+".join(args.engines)
    if args.negatives:
        suffix += "-neg" + hashlib.sha256(",".join(args.negatives).encode()).hexdigest()[:6]
    if args.vocoder:
        suffix += f"-voc{args.vocoder:g}"
    return data_dir() / f"kws-{slug}-n{args.per_class}-s{args.seed}{suffix}"


# --------------------------------------------------------------------------------------
# One clip
# --------------------------------------------------------------------------------------

_CTX: dict = {}


def _worker_init(engines: tuple[str, ...], plan: NegativePlan, vocoder: float = 0.0) -> None:
    _CTX.clear()
    eng = {n: get_engine(n) for n in engines}
    voices = {n: e.voices() for n, e in eng.items()}
    split_of = {v: s for n in engines for v, s in split_voices(voices[n]).items()}
    _CTX.update(
        engines=eng,
        names=engines,
        voices=voices,
        split_of=split_of,
        by_split={s: [v for v in split_of if split_of[v] == s] for s in SPLITS},
        plan=plan,
        vocoder=vocoder,
    )


def _say(text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
    return _CTX["engines"][engine_of(voice)].speak(text, voice, rng)


def _background(rng: np.random.Generator, split: str) -> tuple[np.ndarray, str]:
    kind = str(rng.choice(["white", "pink", "brown", "hum", "babble"]))
    if kind != "babble":
        return _noise(kind, CLIP_SAMPLES, rng), kind
    voices = _CTX["by_split"][split]
    words = _CTX["plan"].other_words
    x = np.zeros(CLIP_SAMPLES)
    for _ in range(int(rng.integers(3, 7))):
        w = _say(str(rng.choice(words)), voices[int(rng.integers(len(voices)))], rng)
        x += _place(w / (_rms(w) + 1e-9), rng) * rng.uniform(0.3, 1.0)
    return x / _rms(x) + 0.1 * _noise("pink", CLIP_SAMPLES, rng), kind


def _fit(speech: np.ndarray) -> np.ndarray:
    """Speed up an utterance longer than 0.95 s so it fits the clip (long keywords, slow voices)."""
    limit = int(0.95 * CLIP_SAMPLES)
    return (
        speed_perturb(speech, len(speech) / limit, SAMPLE_RATE_HZ)[:limit] if len(speech) > limit else speech
    )


def _fade(x: np.ndarray, n: int = 160) -> np.ndarray:
    x = np.array(x, np.float64)
    n = min(n, len(x) // 4)
    if n > 0:
        ramp = np.linspace(0, 1, n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _shifted(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Only 20-50 % of the utterance inside the clip, at its start (tail) or end (head)."""
    keep = max(1, int(len(speech) * rng.uniform(0.2, 0.5)))
    out = np.zeros(CLIP_SAMPLES)
    if rng.random() < 0.5:
        out[:keep] = speech[len(speech) - keep :]
    else:
        out[CLIP_SAMPLES - keep :] = speech[:keep]
    return out


def _speech_clip(
    text: str, kind: str, voice: str, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int]]:
    """(the clip, the first and last sample of its speech before the background is mixed in)"""
    speech = augment_speech(_say(text, voice, rng), rng)
    # only when asked (no extra draw otherwise: sets made without it keep their audio), never on test voices
    if _CTX.get("vocoder") and _CTX["split_of"][voice] != "test" and rng.random() < _CTX["vocoder"]:
        speech = lpc_vocode(speech, rng, SAMPLE_RATE_HZ)
    speech = _fit(speech)
    if kind in ("partial_start", "partial_end"):
        cut = max(1, int(len(speech) * rng.uniform(0.35, 0.6)))
        speech = _fade(speech[:cut] if kind == "partial_start" else speech[len(speech) - cut :])
    x = _shifted(speech, rng) if kind == "shifted" else _place(speech, rng)
    if rng.random() < 0.5:
        x = room_reverb(x, rng, SAMPLE_RATE_HZ)
    if rng.random() < 0.5:
        x = channel_colour(x, rng, SAMPLE_RATE_HZ)
    span = active_span(np.asarray(x))
    bg, _ = _background(rng, _CTX["split_of"][voice])
    return _finish(_mix_at_snr(np.asarray(x, np.float64), bg, rng.uniform(0.0, 20.0)), rng), span


def _clip(class_idx: int, index: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    plan: NegativePlan = _CTX["plan"]
    n_kw = len(plan.keywords)
    if class_idx == n_kw + 1:  # _silence_
        group = f"silence-{index}"
        split = _split_of(group)
        kind = str(rng.choice(SILENCE_KINDS))
        if kind == "babble":
            voices = _CTX["by_split"][split]
            x = np.zeros(CLIP_SAMPLES)
            for _i in range(int(rng.integers(4, 9))):
                w = _say(str(rng.choice(plan.other_words)), voices[int(rng.integers(len(voices)))], rng)
                x += _place(w / (_rms(w) + 1e-9), rng) * rng.uniform(0.3, 1.0)
            bg = x / _rms(x) + 0.1 * _noise("pink", CLIP_SAMPLES, rng)
        else:
            bg = _noise(str(rng.choice(["white", "pink", "brown", "hum"])), CLIP_SAMPLES, rng)
        if rng.random() < 0.5:
            bg = channel_colour(bg, rng, SAMPLE_RATE_HZ)
        level = 10 ** (rng.uniform(-4, -2.5) if kind == "quiet" else rng.uniform(-3, -0.5))
        x = (bg / (np.max(np.abs(bg)) + 1e-9) * level).astype(np.float32)
        return x, {
            "group": group,
            "engine": "",
            "kind": kind,
            "word": "",
            "onset_sample": "",
            "offset_sample": "",
        }
    engine = _CTX["names"][int(rng.integers(len(_CTX["names"])))]
    voices = _CTX["voices"][engine]
    voice = voices[int(rng.integers(len(voices)))]
    if class_idx < n_kw:
        kind, text = "keyword", plan.keywords[class_idx]
    else:
        kind = str(rng.choice(UNKNOWN_KINDS, p=UNKNOWN_KIND_P))
        k = int(rng.integers(n_kw))
        if kind == "word":
            text = str(rng.choice(plan.other_words))
        elif kind == "near_miss":
            text = str(rng.choice(plan.near_misses[k]))
        else:
            text = plan.keywords[k]
        if kind == "partial":
            kind = "partial_start" if rng.random() < 0.5 else "partial_end"
    x, (on, off) = _speech_clip(text, kind, voice, rng)
    info = {"group": voice, "engine": engine, "kind": kind, "word": text}
    return x, {**info, "onset_sample": on, "offset_sample": off}


def _gen_one(job: tuple[int, int, int]) -> tuple[int, int, np.ndarray, dict]:
    seed, class_idx, index = job
    rng = np.random.default_rng(np.random.SeedSequence([seed, class_idx, index]))
    audio, info = _clip(class_idx, index, rng)
    return class_idx, index, fix_length(np.asarray(audio, np.float32), CLIP_SAMPLES), info


# --------------------------------------------------------------------------------------
# Generation, caching, loading
# --------------------------------------------------------------------------------------


def make_kws(
    words: str | list[str] | tuple[str, ...],
    *,
    per_class: int | None = None,
    seed: int = 0,
    engines: str | list[str] | tuple[str, ...] | None = None,
    negatives: str | list[str] | tuple[str, ...] | None = None,
    out_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    vocoder: float = 0.0,
) -> Path:
    """Generate a keyword set for ``words`` (see the module doc); returns its directory.

    ``vocoder`` (0-1): that share of the train and validation speech is re-synthesised by an LPC vocoder
    (``augment.lpc_vocode``), a synthesiser of another kind made from every engine's voices; test voices
    are left alone so a held-out engine's test clips stay that engine's.

    An existing complete directory made with the same arguments is reused; one made with other
    arguments is refused (never mixed).
    """
    per_class = DEFAULT_PER_CLASS if per_class is None else per_class
    if per_class < 1:
        raise DataError(f"--per-class must be >= 1, got {per_class}")
    if not 0.0 <= vocoder <= 1.0:
        raise DataError(f"--vocoder is a share of clips, 0 to 1; got {vocoder}")
    args = KwsArgs(
        keywords=parse_keywords(words),
        negatives=parse_word_list(negatives, "--negatives") if negatives else (),
        engines=parse_engines(engines),
        per_class=per_class,
        seed=seed,
        vocoder=vocoder,
    )
    out = Path(out_dir) if out_dir else default_dir(args)
    want = {"name": "kws", **asdict(args), "generator_version": GENERATOR_VERSION}
    want = {k: list(v) if isinstance(v, tuple) else v for k, v in want.items()}
    if not args.vocoder:  # sets made before the option existed are the same recipe
        del want["vocoder"]

    def refusal(meta: dict) -> str:
        return f"a dataset made with other arguments ({meta.get('command', meta.get('name'))})"

    with generation_dir(out, want, refusal, args.command()) as tmp:
        if tmp is None:
            return out
        for name in args.engines:
            get_engine(name)  # a missing engine fails here, naming its package, before any work
        plan = _plan_negatives(args.keywords, args.negatives)
        classes = args.classes
        jobs = [(seed, c, i) for c in range(len(classes)) for i in range(per_class)]
        workers = workers or min(os.cpu_count() or 1, 4)
        t0 = time.perf_counter()
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(args.engines, plan, args.vocoder)) as pool:
            it = pool.imap(_gen_one, jobs, chunksize=4)
            results = list(
                track(it, "generating kws", total=len(jobs), unit="clip", logger=log, enabled=progress)
            )
        waves = np.stack([r[2] for r in results]).astype(np.float32)
        labels = np.array([r[0] for r in results], np.int64)
        engine_voices = {n: ENGINES[n]().voices() for n in args.engines}
        split_of = {v: s for n in args.engines for v, s in split_voices(engine_voices[n]).items()}
        split_names = [split_of.get(r[3]["group"]) or _split_of(r[3]["group"]) for r in results]
        split = np.array([SPLIT_IDS[s] for s in split_names], np.uint8)
        rows = []
        for (c, i, audio, info), s in zip(results, split_names):
            rel = f"{s}/{classes[c]}/{c:02d}_{i:05d}.wav"
            write_wav(tmp / rel, audio, SAMPLE_RATE_HZ)
            rows.append({"path": rel, "label": classes[c], "split": s, **info})
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
            w.writeheader()
            w.writerows(rows)
        waves16 = np.round(np.clip(waves, -1, 1) * 32767).astype(np.int16)
        np.save(tmp / "waveforms.int16.npy", waves16)
        stored = waves16.astype(np.float32) / 32767
        kinds: dict[str, int] = {}
        for r in rows:
            if r["label"] in RESERVED_CLASSES:
                kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        meta = {
            **want,
            "command": args.command(),
            "classes": list(classes),
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "clip_samples": CLIP_SAMPLES,
            "n_clips": len(rows),
            "split_counts": {s: int((split == SPLIT_IDS[s]).sum()) for s in SPLITS},
            "negative_kinds": dict(sorted(kinds.items())),
            "voices": {
                n: {s: sum(1 for v in engine_voices[n] if split_of[v] == s) for s in SPLITS}
                for n in args.engines
            },
            "near_misses": {k: list(v) for k, v in zip(args.keywords, plan.near_misses)},
            "excluded_negatives": list(plan.excluded),
            "content_hash": content_hash(stored, labels, split, classes),
            "generation_time_s": round(time.perf_counter() - t0, 1),
            "workers": workers,
        }
        (tmp / "manifest.json").write_text(json.dumps(meta, indent=2))
    log.info("generated kws: %d clips in %.0f s -> %s", len(rows), meta["generation_time_s"], out)
    return out


def read_manifest(path: str | Path) -> tuple[dict, list[dict]]:
    """manifest.json and the manifest.csv rows (in dataset order) of a generated kws directory."""
    path = Path(path)
    if not (path / "manifest.json").exists():
        raise DataError(
            f"{path} is not a generated keyword set (no manifest.json); make one with "
            f'`audio-nas data make kws --words "WORD,WORD" --out {path}`'
        )
    meta = json.loads((path / "manifest.json").read_text())
    if meta.get("name") != "kws":
        raise DataError(f"{path} holds {meta.get('name')!r}, not a kws set; load it as {meta.get('name')}")
    with open(path / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return meta, rows


def load_kws(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> AudioDataset:
    path = Path(path)
    meta, rows = read_manifest(path)
    return dataset_from_manifest(
        path, meta, rows, f"kws:{path.name}", f"{meta['command']} --out {path}", sample_rate_hz
    )


@register_dataset("kws")
def _load(root, *, sample_rate_hz: int = SAMPLE_RATE_HZ, clip_ms=None, on_error="raise") -> AudioDataset:
    if root is None:
        raise DataError(
            'kws needs a directory: make one with `audio-nas data make kws --words "WORD,WORD"` and load '
            "it as kws:PATH (e.g. dataset: kws:data/kws-hey_nova-lights_on-stop-n200-s0)"
        )
    if clip_ms not in (None, 1000):
        raise DataError(f"kws sets have 1000 ms clips; clip_ms={clip_ms} is not available")
    return load_kws(Path(root), sample_rate_hz)
