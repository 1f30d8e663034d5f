"""Text-to-speech engines behind one Protocol, in a registry (used by the ``kws`` generator).

espeak-ng   ctypes on the ``espeakng-loader`` wheel (audio_nas.data.tts), ~500 voices
            (language phonology x variant); per utterance: rate and pitch jitter.
flite       the Debian/Ubuntu ``flite`` binary (CMU Flite 2.2), voices kal, kal16, awb, rms, slt.
festival    the Debian/Ubuntu ``festival`` (Festival 2.5) ``text2wave`` script with its English voices from
            Debian: two residual-LPC diphone voices (kal, ked: packages festvox-kallpc16k,
            festvox-kdlpc16k) and one HTS statistical-parametric voice (slt: festvox-us-slt-hts).
            Another synthesis method than espeak's formants and flite's clustergen/diphones, and one
            speaker (ked) that no other engine has; virtual speakers as for flite (f0 level x warp).
            Flite has four distinct speakers (kal16 is kal at 16 kHz), so a flite *voice* here is a
            base voice x an f0 level x a vocal-tract-length factor (frequency warping) -- 75
            "virtual speakers", split by name like espeak's voices. They share base speakers across
            splits, as espeak's voices share variants and languages: a weaker hold-out than real people.
pico        SVOX Pico (``ttspico`` from PyPI, Apache-2.0): its en-US and en-GB voices (two female
            speakers), an HMM-based statistical-parametric synthesiser of its own; virtual speakers as
            for flite.
mbrola      MBROLA diphone voices (us1 female, us2 and us3 male, en1 British male; Debian contrib/non-free
            packages ``mbrola`` and ``mbrola-us1`` ...), driven by the Debian ``espeak-ng`` binary
            (``-v mb-us1``): espeak-ng's text analysis and prosody, recorded diphones instead of its
            formant synthesiser. The voices' licence allows non-commercial use only: an opt-in engine.
            Virtual speakers as for flite.
rhvoice     RHVoice 1.8 (Debian non-free packages ``rhvoice`` and ``rhvoice-english``; its
            ``RHVoice-test`` binary): HTS statistical-parametric voices with RHVoice's own text analysis,
            lexicon and prosody models and its own vocoder. Six English voices: alan, bdl, clb, slt
            (LGPL-2.1+; trained on CMU ARCTIC recordings, so bdl, clb and slt are speakers that flite and
            festival also have) and evgeniy-eng, lyubov (CC-BY-NC-ND-4.0: non-commercial use only, as
            MBROLA's). Opt-in, like mbrola; virtual speakers as for flite.

A voice id is ``ENGINE:NAME`` (``espeak:en-us+m3``, ``flite:slt+f1.00+w0.94``), so a manifest row
says which engine made a clip. ``speak`` returns float32 speech at 16 kHz, silence trimmed.
The synth-kws recipe does not use this module (its audio, and hash, stay as they were).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr

from audio_nas.data.augment import vtlp
from audio_nas.data.tts import Espeak, available_voices
from audio_nas.errors import DataError

SAMPLE_RATE_HZ = 16_000


class TTSEngine(Protocol):
    name: str
    install_hint: str  # how to get the engine when it is missing

    def available(self) -> bool: ...

    def voices(self) -> list[str]:
        """Voice ids ``ENGINE:NAME`` in a fixed order."""
        ...

    def speak(self, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
        """float32 speech at 16 kHz for ``text`` (rate/pitch jitter drawn from ``rng``), silence trimmed."""
        ...


ENGINES: dict[str, Callable[[], TTSEngine]] = {}


def register_engine(name: str) -> Callable[[Callable[[], TTSEngine]], Callable[[], TTSEngine]]:
    def deco(factory: Callable[[], TTSEngine]) -> Callable[[], TTSEngine]:
        ENGINES[name] = factory
        return factory

    return deco


def get_engine(name: str) -> TTSEngine:
    """The engine ``name``; a DataError naming what to install when it is not usable here."""
    if name not in ENGINES:
        raise DataError(f"unknown TTS engine {name!r}; engines: {', '.join(ENGINES)}")
    eng = ENGINES[name]()
    if not eng.available():
        raise DataError(
            f"TTS engine {name!r} is not available on this machine: {eng.install_hint} "
            f"(or leave it out of --engines)"
        )
    return eng


def _trim(x: np.ndarray) -> np.ndarray:
    active = np.flatnonzero(np.abs(x) > 0.02 * (np.max(np.abs(x)) + 1e-9)) if len(x) else []
    return x[active[0] : active[-1] + 1] if len(active) else x


def _virtual_voice(engine: str, voice: str, bases, binary: str | None, hint: str) -> tuple[str, float, float]:
    """``ENGINE:BASE+fF0+wWARP`` -> (base voice, f0 factor, warp); errors name what is missing."""
    if binary is None:
        raise DataError(f"{engine} is not installed: {hint}")
    base, f0_s, warp_s = voice.split(":", 1)[1].split("+")
    if base not in bases:
        raise DataError(f"{engine} has no voice {base!r}; voices: {', '.join(bases)}")
    return base, float(f0_s[1:]), float(warp_s[1:])


def _run_tts_binary(engine: str, cmd: list[str], wav: str, text: str, voice: str, warp: float) -> np.ndarray:
    """Run a TTS command that writes ``wav``; mono float32 at 16 kHz, vocal-tract warped, silence trimmed."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not os.path.exists(wav):
        raise DataError(f"{engine} failed on {text!r} with voice {voice}: {proc.stderr.strip()[:200]}")
    x, sr = sf.read(wav, dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr != SAMPLE_RATE_HZ:
        x = soxr.resample(x, sr, SAMPLE_RATE_HZ)
    return _trim(np.asarray(vtlp(x, warp, SAMPLE_RATE_HZ), np.float32))


def engine_of(voice: str) -> str:
    return voice.split(":", 1)[0]


# --------------------------------------------------------------------------------------
# espeak-ng
# --------------------------------------------------------------------------------------


@register_engine("espeak")
class EspeakEngine:
    name = "espeak"
    install_hint = "pip install espeakng-loader (a dependency of audio-nas)"

    def available(self) -> bool:
        try:
            Espeak.get()
        except (DataError, OSError):
            return False
        return True

    def voices(self) -> list[str]:
        return [f"espeak:{v}" for v in available_voices()]

    def speak(self, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
        eng = Espeak.get()
        params = dict(
            rate_wpm=int(rng.integers(110, 220)),
            pitch=int(rng.integers(20, 80)),
            pitch_range=int(rng.integers(20, 90)),
        )
        name = voice.split(":", 1)[1]
        lang = name.split("+")[0]
        # a few (voice, text) pairs make espeak-ng fail: fall back to the language's plain voice, then en-us
        for v in (name, f"{lang}+m3", "en-us+m3"):
            try:
                pcm = eng.synth_isolated(text, v, **params)
                break
            except DataError:
                continue
        else:
            raise DataError(f"espeak-ng could not speak {text!r} with {voice} or its fallbacks")
        x = soxr.resample(pcm.astype(np.float32) / 32768.0, eng.sample_rate_hz, SAMPLE_RATE_HZ)
        return _trim(x).astype(np.float32)


def phonemes(words: list[str], language: str = "en-us") -> dict[str, tuple[str, ...]]:
    """espeak-ng's phonemes (ASCII names, stress and variant digits removed) for each word.

    Computed in a forked child: espeak keeps state, and this process's later (forked) syntheses
    must start from the state they always started from.
    """
    eng = Espeak.get()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            lib = eng.lib
            lib.espeak_SetVoiceByName(language.encode())
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
            lines = []
            for word in words:
                buf = ctypes.c_char_p(word.encode())
                parts = []
                while buf.value:
                    out = lib.espeak_TextToPhonemes(ctypes.byref(buf), 1, ord("_") << 8)
                    parts.append((out or b"").decode())
                lines.append(" ".join(parts))
            with os.fdopen(w, "w") as fh:
                fh.write("\n".join(lines))
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(w)
    with os.fdopen(r) as fh:
        text = fh.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise DataError("espeak-ng could not give phonemes for the word list")
    out = {}
    for word, line in zip(words, text.split("\n")):
        toks = [t.strip("',%=") for t in line.replace(" ", "_").split("_")]
        # variant digits ("t2", "O2") go; phonemes named by a digit ("3", "0") stay
        out[word] = tuple(t[0] + t[1:].rstrip("0123456789") for t in toks if t)
    return out


# --------------------------------------------------------------------------------------
# flite
# --------------------------------------------------------------------------------------

FLITE_BASE_VOICES: dict[str, float] = {"kal": 102.0, "kal16": 102.0, "awb": 117.0, "rms": 83.0, "slt": 147.0}
FLITE_F0_LEVELS: tuple[float, ...] = (0.85, 1.0, 1.2)
FLITE_WARPS: tuple[float, ...] = (0.88, 0.94, 1.0, 1.06, 1.12)


def virtual_voices(engine: str, bases, f0_levels: tuple[float, ...] = FLITE_F0_LEVELS) -> list[str]:
    """``ENGINE:BASE+fF0+wWARP`` for every base voice x f0 level x vocal-tract warp, in a fixed order."""
    return [f"{engine}:{b}+f{f0:.2f}+w{warp:.2f}" for b in bases for f0 in f0_levels for warp in FLITE_WARPS]


@register_engine("flite")
class FliteEngine:
    name = "flite"
    install_hint = "install the Debian/Ubuntu package `flite` (apt-get install -y flite)"

    def __init__(self) -> None:
        self.binary = shutil.which("flite")

    def available(self) -> bool:
        return self.binary is not None

    def voices(self) -> list[str]:
        return virtual_voices("flite", FLITE_BASE_VOICES)

    def speak(self, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
        base, f0, warp = _virtual_voice("flite", voice, FLITE_BASE_VOICES, self.binary, self.install_hint)
        f0_hz = FLITE_BASE_VOICES[base] * f0 * rng.uniform(0.9, 1.1)
        stretch = rng.uniform(0.8, 1.3)
        with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
            wav = os.path.join(tmp, "out.wav")
            cmd = [
                self.binary,
                "-voice",
                base,
                "--setf",
                f"duration_stretch={stretch:.3f}",
                "--setf",
                f"int_f0_target_mean={f0_hz:.1f}",
                "--setf",
                f"int_f0_target_stddev={rng.uniform(5, 30):.1f}",
                "-t",
                text,
                "-o",
                wav,
            ]
            return _run_tts_binary("flite", cmd, wav, text, base, warp)


# --------------------------------------------------------------------------------------
# festival
# --------------------------------------------------------------------------------------

# base voice -> (Festival voice function, Debian package, natural f0 in Hz or None where the voice's
# intonation ignores ``int_lr_params``: the HTS voice predicts its own f0, so its variety is the warp only)
FESTIVAL_BASE_VOICES: dict[str, tuple[str, str, float | None]] = {
    "kal": ("voice_kal_diphone", "festvox-kallpc16k", 105.0),
    "ked": ("voice_ked_diphone", "festvox-kdlpc16k", 105.0),
    "slt": ("voice_cmu_us_slt_arctic_hts", "festvox-us-slt-hts", None),
}
FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices", "/usr/lib/festival/voices")


@register_engine("festival")
class FestivalEngine:
    name = "festival"
    install_hint = (
        "install the Debian/Ubuntu packages `festival` and its voices (apt-get install -y "
        + " ".join(["festival"] + [pkg for _, pkg, _ in FESTIVAL_BASE_VOICES.values()])
        + ")"
    )

    def __init__(self) -> None:
        self.binary = shutil.which("text2wave")

    def _installed(self) -> list[str]:
        found = set()
        for root in FESTIVAL_VOICE_DIRS:
            if os.path.isdir(root):
                for lang in os.listdir(root):
                    found.update(os.listdir(os.path.join(root, lang)))
        return [b for b, (fn, _, _) in FESTIVAL_BASE_VOICES.items() if fn.removeprefix("voice_") in found]

    def available(self) -> bool:
        return self.binary is not None and bool(self._installed())

    def voices(self) -> list[str]:
        out = []
        for base in self._installed():
            f0_levels = FLITE_F0_LEVELS if FESTIVAL_BASE_VOICES[base][2] is not None else (1.0,)
            out += virtual_voices("festival", [base], f0_levels)
        return out

    def speak(self, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
        base, f0, warp = _virtual_voice(
            "festival", voice, FESTIVAL_BASE_VOICES, self.binary, self.install_hint
        )
        fn, _, f0_base = FESTIVAL_BASE_VOICES[base]
        stretch = rng.uniform(0.8, 1.3)
        f0_hz, f0_sd = (f0_base or 0.0) * f0 * rng.uniform(0.9, 1.1), rng.uniform(5, 30)
        evals = [f"({fn})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})"]
        if f0_base is not None:  # the diphone voices' linear-regression intonation, retargeted
            evals.append(
                f"(set! int_lr_params (list (list 'target_f0_mean {f0_hz:.1f})"
                f" (list 'target_f0_std {f0_sd:.1f}) (list 'model_f0_mean 170) (list 'model_f0_std 34)))"
            )
        with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
            txt, wav = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.wav")
            with open(txt, "w") as fh:
                fh.write(text)
            cmd = [self.binary] + [a for e in evals for a in ("-eval", e)] + [txt, "-o", wav]
            return _run_tts_binary("festival", cmd, wav, text, base, warp)


# --------------------------------------------------------------------------------------
# SVOX Pico
# --------------------------------------------------------------------------------------

# Pico's two English voices (both female speakers), by language; the ``ttspico`` sdist on PyPI
# compiles SVOX's C library (Apache-2.0) and ships these language files.
PICO_BASE_VOICES: tuple[str, ...] = ("en-US", "en-GB")


@register_engine("pico")
class PicoEngine:
    name = "pico"
    install_hint = "pip install ttspico (SVOX Pico; compiles a small C library, needs gcc)"

    def available(self) -> bool:
        try:
            import ttspico  # noqa: F401
        except ImportError:
            return False
        return True

    def voices(self) -> list[str]:
        return virtual_voices("pico", PICO_BASE_VOICES)

    def speak(self, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
        found = "ttspico" if self.available() else None
        base, f0, warp = _virtual_voice("pico", voice, PICO_BASE_VOICES, found, self.install_hint)
        import ttspico

        try:  # a fresh engine per utterance (~10 ms): Pico's excitation noise carries state between calls
            eng = ttspico.TtsEngine(base)
        except RuntimeError as e:
            raise DataError(f"SVOX Pico has no language files for {base}: {e}") from e
        eng.volume = 50  # percent; at Pico's default (100) its loud vowels clip at int16 full scale
        eng.pitch = int(np.clip(round(100 * f0 * rng.uniform(0.9, 1.1)), 50, 200))  # percent of the voice's
        eng.rate = int(np.clip(round(100 / rng.uniform(0.8, 1.3)), 20, 500))  # percent; duration stretch
        pcm = eng.speak(text) or b""
        if not pcm:
            raise DataError(f"SVOX Pico gave no audio for {text!r} with voice {voice}")
        x = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0  # Pico speaks at 16 kHz
        return _trim(np.asarray(vtlp(x, warp, SAMPLE_RATE_HZ), np.float32))


class _InstalledVoices(ABC):
    """An engine run as a binary, with base voices installed as packages (mbrola, rhvoice): usable when
    the binary and at least one voice are there; virtual speakers over the installed voices."""

    name: str
    binary: str | None

    @abstractmethod
    def _installed(self) -> list[str]:
        """The base voices whose data is installed, in a fixed order."""

    def available(self) -> bool:
        return self.binary is not None and bool(self._installed())

    def voices(self) -> list[str]:
        return virtual_voices(self.name, self._installed())


# --------------------------------------------------------------------------------------
# MBROLA (through the espeak-ng binary)
# --------------------------------------------------------------------------------------

# base voice -> Debian package; the voice data lies in MBROLA_DIR/<voice>/<voice>
MBROLA_BASE_VOICES: dict[str, str] = {
    "us1": "mbrola-us1",
    "us2": "mbrola-us2",
    "us3": "mbrola-us3",
    "en1": "mbrola-en1",
}
MBROLA_DIR = "/usr/share/mbrola"


@register_engine("mbrola")
class MbrolaEngine(_InstalledVoices):
    name = "mbrola"
    install_hint = (
        "install the Debian packages `espeak-ng`, `mbrola` and its English voices (in Debian's contrib and "
        "non-free components; the voices are for non-commercial use only): apt-get install -y espeak-ng "
        "mbrola " + " ".join(MBROLA_BASE_VOICES.values())
    )

    def __init__(self) -> None:
        self.binary = shutil.which("espeak-ng") if shutil.which("mbrola") else None

    def _installed(self) -> list[str]:
        return [b for b in MBROLA_BASE_VOICES if os.path.isfile(os.path.join(MBROLA_DIR, b, b))]

    def speak(self, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
        base, f0, warp = _virtual_voice("mbrola", voice, MBROLA_BASE_VOICES, self.binary, self.install_hint)
        if base not in self._installed():
            raise DataError(
                f"MBROLA voice {base} is not installed: apt-get install -y {MBROLA_BASE_VOICES[base]}"
            )
        # espeak-ng's pitch (0-99, 50 = the voice's own) and rate (words per minute, 175 = its default)
        pitch = int(np.clip(round(50 * f0 * rng.uniform(0.9, 1.1)), 0, 99))
        rate = int(round(175 / rng.uniform(0.8, 1.3)))
        with tempfile.TemporaryDirectory(prefix="mbrola-") as tmp:
            wav = os.path.join(tmp, "out.wav")
            cmd = [self.binary, "-v", f"mb-{base}", "-p", str(pitch), "-s", str(rate), "-w", wav, text]
            return _run_tts_binary("mbrola", cmd, wav, text, base, warp)


# --------------------------------------------------------------------------------------
# RHVoice (its RHVoice-test binary)
# --------------------------------------------------------------------------------------

# base voice -> licence of its data (Debian's copyright file of rhvoice-english)
RHVOICE_BASE_VOICES: dict[str, str] = {
    "alan": "LGPL-2.1+",
    "bdl": "LGPL-2.1+",
    "clb": "LGPL-2.1+",
    "slt": "LGPL-2.1+",
    "evgeniy-eng": "CC-BY-NC-ND-4.0",
    "lyubov": "CC-BY-NC-ND-4.0",
}
RHVOICE_DIR = "/usr/share/RHVoice/voices"


@register_engine("rhvoice")
class RhvoiceEngine(_InstalledVoices):
    name = "rhvoice"
    install_hint = (
        "install the Debian packages `rhvoice` and `rhvoice-english` (in Debian's non-free component; "
        "two of the six English voices are for non-commercial use only): "
        "apt-get install -y rhvoice rhvoice-english"
    )

    def __init__(self) -> None:
        self.binary = shutil.which("RHVoice-test")

    def _installed(self) -> list[str]:
        return [b for b in RHVOICE_BASE_VOICES if os.path.isdir(os.path.join(RHVOICE_DIR, b))]

    def speak(self, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
        base, f0, warp = _virtual_voice("rhvoice", voice, RHVOICE_BASE_VOICES, self.binary, self.install_hint)
        if base not in self._installed():
            raise DataError(f"RHVoice voice {base} is not installed: apt-get install -y rhvoice-english")
        # RHVoice's pitch percent scales f0 by about its square root (measured: 50 / 150 / 300 % gave
        # 0.69 / 1.22 / 1.72 x the voice's median f0); its rate percent scales duration inversely
        pitch = int(np.clip(round(100 * (f0 * rng.uniform(0.9, 1.1)) ** 2), 30, 300))
        rate = int(round(100 * rng.uniform(0.8, 1.3)))
        with tempfile.TemporaryDirectory(prefix="rhvoice-") as tmp:
            wav, txt = os.path.join(tmp, "out.wav"), os.path.join(tmp, "in.txt")
            with open(txt, "w", encoding="utf-8") as f:
                f.write(text)
            cmd = [self.binary, "-p", base, "-t", str(pitch), "-r", str(rate), "-i", txt, "-o", wav]
            return _run_tts_binary("rhvoice", cmd, wav, text, base, warp)
