"""espeak-ng text-to-speech through the library and voices shipped in the ``espeakng-loader`` wheel.

ctypes on the wheel's ``libespeak-ng.so`` (no system package needed). The library
keeps global state, so there is one synthesiser per process; it is initialised
lazily and reused. Output is int16 at espeak's native rate (22,050 Hz).
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

from audio_nas.errors import DataError

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1

# Languages whose phonology gives English words different accents, and voice variants.
LANGUAGES: tuple[str, ...] = (
    "en-us",
    "en",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "de",
    "nl",
    "sv",
    "da",
    "fr",
    "es",
    "it",
    "pt",
    "pl",
    "id",
    "af",
)
VARIANTS: tuple[str, ...] = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "croak",
    "klatt",
    "klatt2",
    "klatt3",
    "Andy",
    "Annie",
    "adam",
    "anika",
    "ed",
    "john",
    "linda",
    "max",
    "steph",
    "michel",
    "iven",
)

_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    _instance: Espeak | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise DataError("espeakng-loader is not installed; run `pip install espeakng-loader`") from exc
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, ctypes.c_char_p(data), 0)
        if rate <= 0:
            raise DataError(f"espeak-ng failed to initialise (code {rate}) with data at {data.decode()}")
        self.sample_rate_hz = int(rate)
        self._chunks: list[np.ndarray] = []
        self._cb = _SYNTH_CB(self._collect)  # keep a reference: ctypes callbacks must outlive the call
        self.lib.espeak_SetSynthCallback(self._cb)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    @classmethod
    def get(cls) -> Espeak:
        with cls._lock:
            if cls._instance is None:
                cls._instance = Espeak()
            return cls._instance

    def _collect(self, wav, n, _events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synth(
        self, text: str, voice: str, *, rate_wpm: int = 160, pitch: int = 50, pitch_range: int = 50
    ) -> np.ndarray:
        """int16 speech for ``text`` spoken by ``voice`` ('lang+variant')."""
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise DataError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(ESPEAK_RATE, int(rate_wpm), 0)
            self.lib.espeak_SetParameter(ESPEAK_PITCH, int(pitch), 0)
            self.lib.espeak_SetParameter(ESPEAK_RANGE, int(pitch_range), 0)
            self._chunks = []
            buf = ctypes.create_string_buffer(text.encode())
            err = self.lib.espeak_Synth(buf, len(buf), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
            if err != 0:
                raise DataError(f"espeak-ng could not synthesise {text!r} with voice {voice!r} (code {err})")
            self.lib.espeak_Synchronize()
            out = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self._chunks = []
            return out

    def synth_isolated(self, text: str, voice: str, **kwargs) -> np.ndarray:
        """``synth`` in a forked child, so the output depends only on the arguments.

        espeak-ng's wave generator keeps global state between utterances (seeding its PRNG
        and libc's does not make repeated calls equal; measured: two identical calls differ
        from sample 64 on). A fork starts every utterance from the same state; it costs ~13 ms.
        """
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesise, send the samples, exit without cleanup
            os.close(r)
            try:
                data = self.synth(text, voice, **kwargs).tobytes()
                with os.fdopen(w, "wb") as fh:
                    fh.write(data)
                os._exit(0)
            except BaseException:
                os._exit(1)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            data = fh.read()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise DataError(f"espeak-ng failed to synthesise {text!r} with voice {voice!r}")
        return np.frombuffer(data, np.int16).copy()


def available_voices() -> list[str]:
    """All (language, variant) voices espeak-ng accepts here, in a fixed order.

    Probed with espeak_SetVoiceByName only: synthesising in this process would change
    the wave generator's state that every later (forked) synthesis starts from.
    """
    eng = Espeak.get()
    voices = []
    with eng._lock:
        for lang in dict.fromkeys(LANGUAGES):
            for var in VARIANTS:
                v = f"{lang}+{var}"
                if eng.lib.espeak_SetVoiceByName(v.encode()) == 0:
                    voices.append(v)
    return voices
