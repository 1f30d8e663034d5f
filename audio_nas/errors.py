"""One exception hierarchy for the whole package.

Every error raised on bad user input is an ``AudioNasError`` subclass whose
message names the problem *and* the fix, so the CLI can print it without a
traceback (see ``audio_nas.cli``).
"""

from __future__ import annotations


class AudioNasError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class ConfigError(AudioNasError, ValueError):
    """An invalid configuration value, key or file."""


class DataError(AudioNasError):
    """A dataset or audio file that cannot be read or is inconsistent."""


class SpecError(AudioNasError, ValueError):
    """An invalid or impossible architecture spec."""


class TrainingError(AudioNasError):
    """Training diverged or could not run."""


class ExportError(AudioNasError):
    """A model that cannot be quantised or exported for TFLM."""


class VerificationError(ExportError):
    """A .tflite model that TFLM rejects or that disagrees with the reference."""


class DeviceError(AudioNasError):
    """A board or emulated board that does not answer as the protocol says."""


class ProtocolError(DeviceError):
    """A malformed frame or reply on the serial link."""


class EnergyModelError(AudioNasError):
    """A board profile or energy model that cannot be used."""


class SearchError(AudioNasError):
    """A search that cannot start or continue (incompatible run directory, ...)."""


class StreamingError(AudioNasError):
    """A streaming source, model or device problem."""
