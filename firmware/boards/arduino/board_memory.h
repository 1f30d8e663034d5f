// RAM and flash plan of the Arduino ports, one block per board. The sizes restate the board profiles
// (audio_nas/energy/boards/<board>.yaml: sram_bytes, flash_bytes, stack_reserve_bytes, upload_buffer_bytes,
// arena_buffer_bytes, input_buffer_bytes, core_ram_reserve_bytes); tests/firmware/test_firmware_host.py checks
// that they are equal, and links each port with the board's real memory map (boards/arduino/<board>.ld) so a plan
// that does not fit fails the build. Select a board with -DAUDIO_NAS_BOARD_NANO33BLE or -DAUDIO_NAS_BOARD_PICO.
//
// RAM = core reserve (the Arduino core: its statics, its heap, its main-thread stack; an assumption until measured
//       with the real core, see the YAML) + our stack reserve + the firmware's own statics (measured:
//       firmware_static_ram_bytes) + the three model buffers below + the FFT scratch (8 x n_fft bytes).
#pragma once
#include <cstddef>

namespace audio_nas {
namespace board_memory {

#if defined(AUDIO_NAS_BOARD_NANO33BLE)
// nRF52840: 1 MB flash at 0x0 (the Arduino bootloader keeps 0x0-0xFFFF; the sketch starts at 0x10000),
// 256 KB RAM at 0x20000000.
constexpr size_t kRamBytes = 262144;
constexpr size_t kFlashBytes = 1048576;
constexpr size_t kAppFlashOffset = 0x10000;
constexpr size_t kCoreRamReserveBytes = 65536;
constexpr size_t kStackReserveBytes = 8192;
constexpr size_t kUploadBufferBytes = 92160;  // 90 KB: a DS-CNN S flatbuffer (~60 KB) fits
constexpr size_t kArenaBufferBytes = 57344;   // 56 KB
constexpr size_t kInputBufferBytes = 8192;
#elif defined(AUDIO_NAS_BOARD_PICO)
// RP2040 on the Pico: 2 MB QSPI flash at 0x10000000 (the first 256 bytes are the boot2 stage),
// 264 KB SRAM at 0x20000000 (four striped 64 KB banks + two 4 KB banks).
constexpr size_t kRamBytes = 270336;
constexpr size_t kFlashBytes = 2097152;
constexpr size_t kAppFlashOffset = 0x100;
constexpr size_t kCoreRamReserveBytes = 65536;
constexpr size_t kStackReserveBytes = 8192;
constexpr size_t kUploadBufferBytes = 92160;  // 90 KB
constexpr size_t kArenaBufferBytes = 65536;   // 64 KB (the RP2040's extra 8 KB go to the arena)
constexpr size_t kInputBufferBytes = 8192;
#else
#error "board_memory.h: define AUDIO_NAS_BOARD_NANO33BLE or AUDIO_NAS_BOARD_PICO (platformio.ini does)"
#endif

// Experiments (and the negative link test) may override a buffer: -DAUDIO_NAS_UPLOAD_BUFFER_BYTES=N etc.
#ifdef AUDIO_NAS_UPLOAD_BUFFER_BYTES
constexpr size_t kUploadBytes = AUDIO_NAS_UPLOAD_BUFFER_BYTES;
#else
constexpr size_t kUploadBytes = kUploadBufferBytes;
#endif
#ifdef AUDIO_NAS_ARENA_BUFFER_BYTES
constexpr size_t kArenaBytes = AUDIO_NAS_ARENA_BUFFER_BYTES;
#else
constexpr size_t kArenaBytes = kArenaBufferBytes;
#endif

// The buffers alone must leave room for the reserves; the linker checks the rest (statics included).
static_assert(kCoreRamReserveBytes + kStackReserveBytes + kUploadBytes + kArenaBytes + kInputBufferBytes < kRamBytes,
              "board_memory.h: the buffers and reserves exceed the board's RAM");

}  // namespace board_memory
}  // namespace audio_nas
