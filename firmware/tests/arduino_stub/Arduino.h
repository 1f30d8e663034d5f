// The slice of the Arduino API the port uses, declared only: lets CI compile boards/arduino/main.cpp for
// Cortex-M4 without the Arduino core (which PlatformIO downloads). Not linked, never run.
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
