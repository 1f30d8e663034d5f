# PlatformIO pre-build script: compiles the TFLM tree named by TFLM_DIR (the pinned revision, made by
# create_tflm_tree.py) into the firmware and turns the TFLM runner on. Without TFLM_DIR: no inference engine.
import os

Import("env")  # noqa: F821  (PlatformIO's SCons environment)

tflm = os.environ.get("TFLM_DIR")
if tflm:
    if not os.path.exists(os.path.join(tflm, "tensorflow/lite/micro/micro_interpreter.h")):
        raise SystemExit(f"TFLM_DIR={tflm} is not a TFLM tree (see firmware/README.md)")
    third = os.path.join(tflm, "third_party")
    env.Append(CPPPATH=[tflm, os.path.join(third, "flatbuffers/include"), os.path.join(third, "gemmlowp"),  # noqa: F821
                        os.path.join(third, "ruy"), os.path.join(third, "kissfft")],
               CPPDEFINES=["AUDIO_NAS_WITH_TFLM", "TF_LITE_STATIC_MEMORY", "TF_LITE_MCU_DEBUG_LOG"])
    src_filter = ("-<*> +<tensorflow/> +<signal/> +<third_party/kissfft/> -<tensorflow/lite/micro/debug_log.cc> "
                  "-<tensorflow/lite/micro/cortex_m_generic/debug_log.cc>")
    if os.path.isdir(os.path.join(third, "cmsis_nn")):  # a tree made with OPTIMIZED_KERNEL_DIR=cmsis_nn
        env.Append(CPPPATH=[os.path.join(third, "cmsis"), os.path.join(third, "cmsis_nn"),  # noqa: F821
                            os.path.join(third, "cmsis/CMSIS/Core/Include"), os.path.join(third, "cmsis_nn/Include")],
                   CPPDEFINES=["CMSIS_NN", ("ARM_NN_ENABLE_F16", 0), ("ARM_NN_ENABLE_F32", 0), "PROJECT_GENERATION"])
        src_filter += (" +<third_party/cmsis_nn/Source/> -<third_party/cmsis_nn/Source/**/*_f16.c> "
                       "-<third_party/cmsis_nn/Source/**/*_f32.c> -<third_party/cmsis_nn/Source/**/arm_nntables_flt.c>")
    env.BuildSources("$BUILD_DIR/tflm", tflm, src_filter=src_filter)  # noqa: F821
    env.BuildSources("$BUILD_DIR/tflm_engine", os.path.join(env.subst("$PROJECT_DIR"), "src/tflm"))  # noqa: F821
