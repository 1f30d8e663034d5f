// Arduino port (Nano 33 BLE Sense, Raspberry Pi Pico): the same protocol core, front-end and TFLM runner as
// the mps2-an386 image, over the board's USB serial. Timing: the DWT cycle counter where the core has one
// (Cortex-M4F), micros() otherwise (Cortex-M0+). A GPIO marker pin is high during timed inferences, for an
// external power monitor (Nordic PPK2: connect it to a digital input). Buffer sizes: board_memory.h (the board
// profiles' figures); 32-bit micros() and DWT CYCCNT are extended to 64 bits (app/wrap_counter.h).
#include <Arduino.h>

#include "app/app.h"
#include "app/wrap_counter.h"
#include "board_memory.h"
#include "frontend_tables.h"  // build/generated/ (written by `make firmware`)
#include "protocol/protocol.h"
#ifdef AUDIO_NAS_WITH_TFLM
#include "tflm/tflm_engine.h"
#endif

namespace {

#ifdef AUDIO_NAS_HAS_DWT
volatile uint32_t* const kDemcr = reinterpret_cast<volatile uint32_t*>(0xE000EDFCu);
volatile uint32_t* const kDwtCtrl = reinterpret_cast<volatile uint32_t*>(0xE0001000u);
volatile uint32_t* const kDwtCyccnt = reinterpret_cast<volatile uint32_t*>(0xE0001004u);
audio_nas::WrapCounter g_cycles;
// CYCCNT wraps every 67 s at 64 MHz: read every main-loop pass and after every inference, far more often
uint64_t Cycles() { return g_cycles.Extend(*kDwtCyccnt); }
constexpr const char* kTimer = "dwt";
#endif

// micros() is 32 bits and wraps every 71.6 minutes: extended to 64 bits (read every main-loop pass)
audio_nas::WrapCounter g_micros;
uint64_t TimeUs() { return g_micros.Extend(static_cast<uint32_t>(micros())); }
#ifndef AUDIO_NAS_HAS_DWT
uint64_t Cycles() { return TimeUs() * (AUDIO_NAS_CLOCK_HZ / 1000000u); }
constexpr const char* kTimer = "micros";
#endif
void Write(const char* text, size_t len) { Serial.write(reinterpret_cast<const uint8_t*>(text), len); }
void Marker(bool high) { digitalWrite(AUDIO_NAS_MARKER_PIN, high ? HIGH : LOW); }
void Reset() { NVIC_SystemReset(); }

namespace mem = audio_nas::board_memory;
uint8_t g_upload[mem::kUploadBytes];
uint8_t g_input[mem::kInputBufferBytes];
int32_t g_fft_re[kFrontendNfft];
int32_t g_fft_im[kFrontendNfft];
// The arena's section is kept by the link-check script (boards/arduino/sections.ld), so the image built without
// TFLM still reserves it and an oversized plan fails to link; with TFLM the engine uses it.
alignas(16) __attribute__((section(".bss.audio_nas_arena"), used)) uint8_t g_arena[mem::kArenaBytes];
#ifdef AUDIO_NAS_WITH_TFLM
audio_nas::TflmEngine g_engine(g_arena, sizeof g_arena);
#endif

audio_nas::Board g_board;
audio_nas::ModelStore g_store(g_upload, sizeof g_upload);
audio_nas::CommandHandler* g_handler = nullptr;
audio_nas::App* g_app = nullptr;

}  // namespace

void AudioNasLogWrite(const char* text, size_t len) { Write(text, len); }

void setup() {
  Serial.begin(115200);
  pinMode(AUDIO_NAS_MARKER_PIN, OUTPUT);
  Marker(false);
#ifdef AUDIO_NAS_HAS_DWT
  *kDemcr |= 1u << 24;  // TRCENA
  *kDwtCyccnt = 0;
  *kDwtCtrl |= 1u;  // CYCCNTENA
#endif
  g_board.name = AUDIO_NAS_BOARD_NAME;
  g_board.clock_hz = AUDIO_NAS_CLOCK_HZ;
  g_board.time_us = TimeUs;
  g_board.write = Write;
  g_board.cycles = Cycles;
  g_board.timer_name = kTimer;
  g_board.marker = Marker;
  g_board.reset = Reset;
  audio_nas::Services services;
  services.frontend = &kFrontendTables;
  services.frontend_scratch = {g_fft_re, g_fft_im};
#ifdef AUDIO_NAS_WITH_TFLM
  services.engine = &g_engine;
#endif
  static audio_nas::CommandHandler handler(g_board, g_store, g_input, sizeof g_input, services);
  static audio_nas::App app(handler);
  g_handler = &handler;
  g_app = &app;
}

void loop() {
  TimeUs();  // keep the 64-bit extensions exact while idle (a read per wrap period is enough)
  Cycles();
  while (Serial.available() > 0) g_app->Feed(static_cast<uint8_t>(Serial.read()));
}
