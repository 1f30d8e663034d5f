# TFLM as a static library from a TFLM tree (the layout tflite-micro's create_tflm_tree.py writes:
# tensorflow/, signal/, third_party/{flatbuffers,gemmlowp,ruy,kissfft}). Reference kernels; the board's
# DebugLog replaces TFLM's. Nothing of TFLM is committed to this repository.
if(NOT EXISTS ${TFLM_DIR}/tensorflow/lite/micro/micro_interpreter.h)
  message(FATAL_ERROR "TFLM_DIR=${TFLM_DIR} is not a TFLM tree (no tensorflow/lite/micro/micro_interpreter.h). Make one:\n"
    "  git clone https://github.com/tensorflow/tflite-micro && cd tflite-micro && git checkout ${AUDIO_NAS_TFLM_REVISION}\n"
    "  python3 tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py /path/to/tflm-tree\n"
    "or configure with -DFETCH_TFLM=ON (needs internet).")
endif()
file(GLOB_RECURSE TFLM_SOURCES ${TFLM_DIR}/tensorflow/*.cc ${TFLM_DIR}/signal/*.cc
     ${TFLM_DIR}/third_party/kissfft/*.c)
list(FILTER TFLM_SOURCES EXCLUDE REGEX ".*/debug_log\\.cc$")  # the board's DebugLog replaces TFLM's
# A tree generated with OPTIMIZED_KERNEL_DIR=cmsis_nn (see firmware/README.md) carries CMSIS-NN and TFLM's
# cmsis_nn kernels in place of the reference ones; its int8 sources need the CMSIS core headers.
set(TFLM_CMSIS_NN OFF)
if(EXISTS ${TFLM_DIR}/third_party/cmsis_nn/Include/arm_nnfunctions.h)
  set(TFLM_CMSIS_NN ON)
  file(GLOB_RECURSE CMSIS_NN_SOURCES ${TFLM_DIR}/third_party/cmsis_nn/Source/*.c)
  list(FILTER CMSIS_NN_SOURCES EXCLUDE REGEX ".*(_f16|_f32|arm_nntables_flt)\\.c$")
  list(APPEND TFLM_SOURCES ${CMSIS_NN_SOURCES})
endif()
if(TFLM_CMSIS_NN)
  message(STATUS "TFLM kernels: CMSIS-NN (${TFLM_DIR}/third_party/cmsis_nn)")
else()
  message(STATUS "TFLM kernels: reference")
endif()
add_library(tflm STATIC ${TFLM_SOURCES})
target_include_directories(tflm SYSTEM PUBLIC ${TFLM_DIR} ${TFLM_DIR}/third_party/flatbuffers/include
  ${TFLM_DIR}/third_party/gemmlowp ${TFLM_DIR}/third_party/ruy ${TFLM_DIR}/third_party/kissfft)
target_compile_definitions(tflm PUBLIC TF_LITE_STATIC_MEMORY TF_LITE_MCU_DEBUG_LOG)
if(TFLM_CMSIS_NN)
  target_include_directories(tflm SYSTEM PUBLIC ${TFLM_DIR}/third_party/cmsis ${TFLM_DIR}/third_party/cmsis_nn
    ${TFLM_DIR}/third_party/cmsis/CMSIS/Core/Include ${TFLM_DIR}/third_party/cmsis_nn/Include)
  # PROJECT_GENERATION: the cortex_m_generic timer stubs (the board keeps its own clock)
  target_compile_definitions(tflm PUBLIC CMSIS_NN ARM_NN_ENABLE_F16=0 ARM_NN_ENABLE_F32=0 PROJECT_GENERATION)
endif()
target_compile_options(tflm PRIVATE ${CPU_FLAGS} -O2 -w -ffunction-sections -fdata-sections
  $<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit>)

if(NOT TFLM_APP_TARGET)
  set(TFLM_APP_TARGET firmware.elf)
endif()
# The op resolver of the application target (TFLM_APP_TARGET: firmware.elf, or firmware/tools/op_profiler's):
# exactly the compiled-in model's ops (MODEL_DIR from `audio-nas export`), else every op the exporter can emit,
# so any uploaded model runs.
if(MODEL_DIR)
  target_include_directories(${TFLM_APP_TARGET} PRIVATE ${MODEL_DIR})
  target_sources(${TFLM_APP_TARGET} PRIVATE ${MODEL_DIR}/model_data.cc)
  target_compile_definitions(${TFLM_APP_TARGET} PRIVATE AUDIO_NAS_BUILTIN_MODEL=1)
else()
  add_custom_command(
    OUTPUT ${GEN_DIR}/ops.h
    COMMAND ${AUDIO_NAS_PYTHON} -W ignore::RuntimeWarning -m audio_nas.export.c_array --all-ops ${GEN_DIR}/ops.h
    DEPENDS ${CMAKE_CURRENT_LIST_DIR}/../../audio_nas/export/c_array.py
    COMMENT "op resolver for every op audio-nas exports (audio_nas.export.c_array)")
  target_sources(${TFLM_APP_TARGET} PRIVATE ${GEN_DIR}/ops.h)
endif()
