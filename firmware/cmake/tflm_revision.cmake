# The tflite-micro revision this firmware was compiled and tested against (TFLM main, 2026-08-20; the same
# schema as the tflite-micro Python package pinned in pyproject.toml). FETCH_TFLM checks out exactly this.
set(AUDIO_NAS_TFLM_REVISION "90b983c2b3f1480642e040bbd2ddb37b998f3424" CACHE STRING "pinned tflite-micro revision")
