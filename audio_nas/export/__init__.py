"""int8 quantisation, TFLite flatbuffer writing, C sources and verification on the TFLM interpreter."""

from audio_nas.export.api import (
    ExportResult,
    export_model,
    export_random,
    export_random_with_input,
    parse_tflite_ops,
)
from audio_nas.export.verify import run_tflm, tflm_arena_bytes

__all__ = [
    "export_random",
    "export_random_with_input",
    "export_model",
    "ExportResult",
    "parse_tflite_ops",
    "run_tflm",
    "tflm_arena_bytes",
]
