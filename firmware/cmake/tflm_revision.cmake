# The TFLM revision this firmware is written and checked against (tensorflow/tflite-micro main).
set(AUDIO_NAS_TFLM_REVISION "main" CACHE STRING "tflite-micro git revision fetched by FETCH_TFLM")
