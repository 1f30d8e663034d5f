"""audio-nas: hardware-aware NAS for always-on audio classifiers on microcontrollers."""

__version__ = "0.1.0"
