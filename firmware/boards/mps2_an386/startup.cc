// Cortex-M4 start-up for QEMU mps2-an386: vector table, .data/.bss set-up, FPU enable, C++ constructors.
#include <cstdint>

extern "C" {
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
void __libc_init_array();
int main();
void* __dso_handle = nullptr;  // no crtbegin with -nostartfiles: static destructors register against this
void _init() {}
void _fini() {}

[[noreturn]] void Reset_Handler() {
  for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t* dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  *reinterpret_cast<volatile uint32_t*>(0xE000ED88u) |= 0xFu << 20;  // CPACR: full access to CP10/CP11 (FPU)
  asm volatile("dsb\n isb");
  __libc_init_array();
  main();
  for (;;) {
  }
}

[[noreturn]] void Default_Handler() {
  for (;;) {
  }
}
}

using Handler = void (*)();
__attribute__((section(".vectors"), used)) const Handler kVectors[16] = {
    reinterpret_cast<Handler>(&_estack), Reset_Handler,
    Default_Handler,  // NMI
    Default_Handler,  // HardFault
    Default_Handler,  // MemManage
    Default_Handler,  // BusFault
    Default_Handler,  // UsageFault
    nullptr,          nullptr, nullptr, nullptr,
    Default_Handler,  // SVC
    Default_Handler,  // DebugMon
    nullptr,
    Default_Handler,  // PendSV
    Default_Handler,  // SysTick
};
