// Definitions for the stub Arduino API (Arduino.h): enough to link boards/arduino/main.cpp into a whole image
// with the board's memory map (CI's link check) and to run the port on the host (tests). On Cortex-M it also
// supplies what the real core would: a vector table, start-up and main(), and .core_reserve, a block of RAM that
// stands in for the core's own RAM use (board_memory.h: kCoreRamReserveBytes, a stated assumption), plus the stack
// reserve (kStackReserveBytes). Never flashed to a board.
#include <Arduino.h>

#include <cstring>

#include "board_memory.h"

// On Cortex-M the stub's own variables go to .core_reserve with the core's stand-in RAM, so that the measured
// .data/.bss (boards/measure_memory.sh) holds the firmware's statics only.
#if defined(__arm__)
#define STUB_RAM __attribute__((section(".core_reserve.stub")))
#else
#define STUB_RAM
#endif

namespace {
STUB_RAM uint32_t g_micros;
STUB_RAM uint32_t g_step;
STUB_RAM const char* g_in;
#if defined(__arm__)
STUB_RAM char g_out[256];  // the link check never runs: keep the stub's own RAM small
#else
char g_out[1 << 16];
#endif
STUB_RAM size_t g_out_len;
}  // namespace

STUB_RAM SerialPort Serial;

unsigned long micros() {
  const uint32_t now = g_micros;
  g_micros += g_step;
  return now;
}
void digitalWrite(int, int) {}
void pinMode(int, int) {}
void SerialPort::begin(unsigned long) {}
int SerialPort::available() { return g_in && *g_in ? 1 : 0; }
int SerialPort::read() { return g_in && *g_in ? static_cast<unsigned char>(*g_in++) : -1; }
size_t SerialPort::write(const uint8_t* data, size_t len) {
  const size_t n = len < sizeof g_out - 1 - g_out_len ? len : sizeof g_out - 1 - g_out_len;
  std::memcpy(g_out + g_out_len, data, n);
  g_out_len += n;
  g_out[g_out_len] = '\0';
  return len;
}

namespace arduino_stub {
void SetMicros(uint32_t now, uint32_t step) {
  g_micros = now;
  g_step = step;
}
void SetInput(const char* bytes) { g_in = bytes; }
const char* Output() { return g_out; }
void ClearOutput() {
  g_out_len = 0;
  g_out[0] = '\0';
}
}  // namespace arduino_stub

#if defined(__arm__)
__attribute__((section(".core_reserve"), used)) uint8_t g_arduino_core_reserve[audio_nas::board_memory::kCoreRamReserveBytes];
__attribute__((section(".stack"), used)) uint8_t g_stack_reserve[audio_nas::board_memory::kStackReserveBytes];

void NVIC_SystemReset() {
  *reinterpret_cast<volatile uint32_t*>(0xE000ED0Cu) = 0x05FA0004u;
  for (;;) {
  }
}

extern "C" {
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
void __libc_init_array();
void* __dso_handle = nullptr;
void _init() {}
void _fini() {}

[[noreturn]] void Reset_Handler() {
  for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t* dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  __libc_init_array();
  setup();
  for (;;) loop();
}

[[noreturn]] void Default_Handler() {
  for (;;) {
  }
}
}

using Handler = void (*)();
__attribute__((section(".vectors"), used)) const Handler kVectors[16] = {
    reinterpret_cast<Handler>(&_estack), Reset_Handler, Default_Handler, Default_Handler, nullptr, nullptr, nullptr,
    nullptr, nullptr, nullptr, nullptr, Default_Handler, nullptr, nullptr, Default_Handler, Default_Handler};
#else
void NVIC_SystemReset() {}
#endif
