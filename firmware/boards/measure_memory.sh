#!/usr/bin/env bash
# The firmware's own RAM and flash, measured from a linked image WITHOUT TFLM and WITHOUT a model (CI cannot build
# TFLM: no TFLM source offline). Usage:
#   firmware/boards/measure_memory.sh BOARD [BUILD_DIR]     BOARD: mps2-an386 | nucleo-l4r5zi | nano33ble | pico
# mps2-an386 and nucleo-l4r5zi are the CMake image (nucleo-l4r5zi: the same code linked at the STM32L4R5ZI's memory
# map, a stand-in: no STM32 port exists); nano33ble and pico are boards/arduino/main.cpp linked against the stub
# Arduino core (firmware/tests/arduino_stub) with the board's memory map (boards/arduino/<board>.ld).
# Prints key=value lines (the names of the board profile keys, audio_nas/energy/boards/<board>.yaml):
#   firmware_code_bytes        flash: .vectors + .text (with .rodata) + .ARM.exidx/.extab + init arrays + .data's
#                              initial values, minus the front-end tables (kFrontend*, which depend on the front-end
#                              config: 2 x window + 2 x n_fft + 4 x n_mels x (n_fft/2 + 1) + 512 bytes)
#   firmware_static_ram_bytes  .data + .bss minus the model upload buffer, the model input buffer, the TFLM arena
#                              and the FFT scratch (g_upload, g_input, g_arena, g_fft_re, g_fft_im: sized from the
#                              model and the front-end by the Python side)
# and, for information, the excluded sizes. Needs arm-none-eabi-gcc/size/nm; the front-end table header is made
# with $AUDIO_NAS_PYTHON -m audio_nas.features.fixed_point (default front-end), as the firmware build does.
set -euo pipefail
BOARD=${1:?usage: measure_memory.sh BOARD [BUILD_DIR]}
FW=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$(mktemp -d)}
PY=${AUDIO_NAS_PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

case "$BOARD" in
  mps2-an386 | nucleo-l4r5zi)
    cmake -S "$FW" -B "$OUT/build" -DCMAKE_TOOLCHAIN_FILE="$FW/cmake/arm-none-eabi.cmake" -DBOARD="$BOARD" \
      -DAUDIO_NAS_PYTHON="$PY" >"$OUT/cmake.log" 2>&1 || { cat "$OUT/cmake.log" >&2; exit 1; }
    cmake --build "$OUT/build" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
    ELF="$OUT/build/firmware.elf"
    ;;
  nano33ble | pico)
    "$PY" -m audio_nas.features.fixed_point "$OUT/frontend_tables.h"
    if [ "$BOARD" = nano33ble ]; then
      CPU=(-mcpu=cortex-m4 -mthumb -mfloat-abi=softfp -mfpu=fpv4-sp-d16)
      DEFS=(-DAUDIO_NAS_BOARD_NAME=\"nano33ble\" -DAUDIO_NAS_CLOCK_HZ=64000000 -DAUDIO_NAS_HAS_DWT=1 -DAUDIO_NAS_BOARD_NANO33BLE=1)
    else
      CPU=(-mcpu=cortex-m0plus -mthumb)
      DEFS=(-DAUDIO_NAS_BOARD_NAME=\"pico\" -DAUDIO_NAS_CLOCK_HZ=133000000 -DAUDIO_NAS_BOARD_PICO=1)
    fi
    ELF="$OUT/$BOARD.elf"
    arm-none-eabi-g++ "${CPU[@]}" -std=c++17 -O2 -Wall -Wextra -Werror -fno-exceptions -fno-rtti \
      -fno-threadsafe-statics -fno-use-cxa-atexit -ffunction-sections -fdata-sections \
      -I"$FW/src" -I"$FW/boards/arduino" -I"$FW/tests/arduino_stub" -I"$OUT" -DAUDIO_NAS_MARKER_PIN=2 "${DEFS[@]}" \
      ${AUDIO_NAS_EXTRA_DEFS:-} \
      "$FW/boards/arduino/main.cpp" "$FW/tests/arduino_stub/arduino_stub.cc" "$FW/src/protocol/protocol.cc" \
      "$FW/src/app/recognizer.cc" "$FW/src/frontend/fixed_frontend.cc" \
      -nostartfiles --specs=nosys.specs -Wl,--gc-sections -L"$FW/boards/arduino" -T"$BOARD.ld" -o "$ELF"
    ;;
  *)
    echo "measure_memory.sh: unknown board $BOARD (mps2-an386, nucleo-l4r5zi, nano33ble, pico)" >&2
    exit 2
    ;;
esac

arm-none-eabi-size -A "$ELF" >"$OUT/size.txt"
arm-none-eabi-nm -S -C --radix=d "$ELF" >"$OUT/nm.txt"
awk -v board="$BOARD" -v elf="$ELF" '
  FNR == 1 { file++ }
  file == 1 && NF >= 3 && $2 ~ /^[0-9]+$/ { sec[$1] = $2 }
  file == 2 && NF >= 4 {
    size = $2 + 0
    if ($0 ~ /[ :]kFrontend(Hann|TwRe|TwIm|Mel|LogLut)$/) tables += size
    if ($0 ~ /[ :]g_(upload|input|arena|fft_re|fft_im)$/) excluded += size
  }
  END {
    code = sec[".vectors"] + sec[".text"] + sec[".ARM.exidx"] + sec[".ARM.extab"] + sec[".preinit_array"] \
         + sec[".init_array"] + sec[".fini_array"] + sec[".data"] - tables
    ram = sec[".data"] + sec[".bss"] - excluded
    printf "board=%s\nelf=%s\n", board, elf
    printf "firmware_code_bytes=%d\nfirmware_static_ram_bytes=%d\n", code, ram
    printf "frontend_tables_bytes=%d\nexcluded_buffer_bytes=%d\n", tables, excluded
    printf "reserved_core_bytes=%d\nreserved_stack_bytes=%d\nreserved_heap_bytes=%d\n", sec[".core_reserve"], sec[".stack"], sec[".heap"]
  }' "$OUT/size.txt" "$OUT/nm.txt"
echo "compiler=$(arm-none-eabi-gcc --version | head -1)"
