// The slice of the Arduino API the port uses. arduino_stub.cc defines it so that CI can link
// boards/arduino/main.cpp for Cortex-M4 (nano33ble) and Cortex-M0+ (pico) with each board's memory map, and run
// it on the host in a test; the real cores (ArduinoCore-mbed) come from PlatformIO and are not used here.
#pragma once
#include <cstddef>
#include <cstdint>
constexpr int HIGH = 1, LOW = 0, OUTPUT = 1;
unsigned long micros();
void digitalWrite(int pin, int value);
void pinMode(int pin, int mode);
void NVIC_SystemReset();
struct SerialPort {
  void begin(unsigned long baud);
  int available();
  int read();
  size_t write(const uint8_t* data, size_t len);
};
extern SerialPort Serial;
void setup();
void loop();

// Stub-only hooks for host tests (not part of the Arduino API).
namespace arduino_stub {
// micros() returns `now`, then advances it by `step` (a 32-bit counter: it wraps like the real one).
void SetMicros(uint32_t now, uint32_t step);
void SetInput(const char* bytes);   // what Serial.read() returns next
const char* Output();               // everything Serial.write() wrote since the last ClearOutput()
void ClearOutput();
}  // namespace arduino_stub
