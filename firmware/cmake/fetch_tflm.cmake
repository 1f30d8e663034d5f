# -DFETCH_TFLM=ON: clone the pinned tflite-micro revision and make a TFLM tree with its own
# create_tflm_tree.py (which downloads flatbuffers, gemmlowp, ruy and kissfft). Needs internet, git, python3
# with numpy and Pillow. The tree lands in the build directory; nothing is committed.
set(_src ${CMAKE_BINARY_DIR}/_deps/tflite-micro)
set(TFLM_DIR ${CMAKE_BINARY_DIR}/_deps/tflm-tree)
if(NOT EXISTS ${TFLM_DIR}/tensorflow/lite/micro/micro_interpreter.h)
  if(NOT EXISTS ${_src}/.git)
    execute_process(COMMAND git clone --filter=blob:none ${TFLM_GIT_URL} ${_src} RESULT_VARIABLE rc)
    if(rc)
      message(FATAL_ERROR "git clone ${TFLM_GIT_URL} failed: FETCH_TFLM needs internet (or pass -DTFLM_DIR=...)")
    endif()
  endif()
  execute_process(COMMAND git -C ${_src} checkout --quiet ${AUDIO_NAS_TFLM_REVISION} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "tflite-micro revision ${AUDIO_NAS_TFLM_REVISION} not found")
  endif()
  execute_process(
    COMMAND ${AUDIO_NAS_PYTHON} tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py ${TFLM_DIR}
    WORKING_DIRECTORY ${_src} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "create_tflm_tree.py failed (it downloads TFLM's third-party code: needs internet)")
  endif()
endif()
