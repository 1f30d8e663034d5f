// Host test of the Arduino port (boards/arduino/main.cpp, Pico variant: micros() timing) on the stub core:
// micros() is a 32-bit counter that wraps after 71.6 minutes; the port's clocks must stay monotonic and its
// durations exact across the wrap. Prints "arduino port: N passed, M failed".
#include <Arduino.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static int g_pass = 0, g_fail = 0;
#define CHECK(cond)                                                  \
  do {                                                               \
    if (cond) {                                                      \
      ++g_pass;                                                      \
    } else {                                                         \
      ++g_fail;                                                      \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
      std::printf("  output: %s\n", arduino_stub::Output());          \
    }                                                                \
  } while (0)

static std::string Send(const std::string& bytes) {
  arduino_stub::ClearOutput();
  arduino_stub::SetInput(bytes.c_str());
  loop();
  return arduino_stub::Output();
}

static unsigned long long Value(const std::string& reply, const char* prefix) {
  const size_t at = reply.find(prefix);
  return at == std::string::npos ? 0ull : std::strtoull(reply.c_str() + at + std::strlen(prefix), nullptr, 10);
}

int main() {
  // every micros() call advances the counter by 1 ms; each loop() pass reads it twice (time and cycles), a
  // timestamp% once more: name% reads -5.5 and -4.5 ms before the wrap, the first timestamp% -3.5 to -1.5 ms
  arduino_stub::SetMicros(0xFFFFFFFFu - 5500u, 1000u);
  setup();
  std::string r = Send("name%");
  CHECK(r.find("m-name-dut-[pico]") != std::string::npos);
  const unsigned long long t0 = Value(Send("timestamp%"), "m-lap-us-");
  const unsigned long long t1 = Value(Send("timestamp%"), "m-lap-us-");  // micros() wrapped in between
  CHECK(t0 > 0xFFFFF000ull && t0 < 0x100000000ull);
  CHECK(t1 > 0x100000000ull && t1 - t0 == 3000u);  // 3 reads apart (loop's two + the command's), not 2^32 back
  CHECK(Send("stats%").find("m-timer-micros") != std::string::npos);
  // a front-end frame timed across the wrap: cycles = 1 ms x 133 MHz, not a wrapped difference
  Send("db load 960%");
  const std::string half(960, '0');
  Send("db " + half + "%");
  CHECK(Send("db " + half + "%").find("m-load-done") != std::string::npos);
  arduino_stub::SetMicros(0xFFFFFFFFu - 2500u, 1000u);  // loop reads -2.5, -1.5 ms; the frame's -0.5 and +0.5 ms
  r = Send("frontend%");
  CHECK(r.find("m-frame-[") != std::string::npos && Value(r, "m-cycles-") == 133000ull);
  std::printf("arduino port: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
