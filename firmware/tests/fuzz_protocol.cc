// Fuzz harness: >= 100,000 random and mutated frames into the line assembler + command handler,
// built with ASan/UBSan. Every reply must end with m-ready; nothing may crash or read out of bounds.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "fake_engine.h"
#include "protocol/protocol.h"

using namespace audio_nas;
static std::string g_out;
static void Write(const char* t, size_t n) {
  g_out.append(t, n);
  if (g_out.size() > 1 << 20) g_out.erase(0, g_out.size() - 4096);
}
static uint64_t Now() { return 0; }

int main(int argc, char** argv) {
  const long frames = argc > 1 ? std::atol(argv[1]) : 100000;
  static uint8_t model[2048], input[128];
  ModelStore store(model, sizeof model);
  const Board board{"fuzz", 1u, Now, Write};
  static FakeEngine engine;
  Services services;
  services.engine = &engine;  // so infer/results/stream paths are fuzzed too
  CommandHandler h(board, store, input, sizeof input, services);
  LineAssembler a;
  std::mt19937 rng(12345);
  char upload[64];
  std::snprintf(upload, sizeof upload, "model load 4 %08lx%%",
                static_cast<unsigned long>(Crc32(reinterpret_cast<const uint8_t*>("FAKE"), 4)));
  const char* seeds[] = {"name%", "profile%", "db load 16%", "db 00112233%", "model load 4 deadbeef%",
                         "model 0 00112233%", "model info%", "infer 10 1%", "stats%", "timestamp%", "db print%",
                         upload, "model 0 46414b45%", "model activate 0%", "db load 12%", "db 0a14e20a14e20a14e20a14e2%",
                         "infer 2 1%", "results%", "stream start features 1 500 ignore=0%", "stream 000102030405 20%",
                         "stream stop%", "frontend%", "stream start audio%", "version%", "model load 4 +1234567%",
                         "model load 4 0x123456%", "stream start features 1 0%", "stream 0a14e2%", "reset%"};
  long replies = 0, bad = 0;
  for (long i = 0; i < frames; ++i) {
    std::string f;
    if (i % 3 == 0) {
      const int n = 1 + static_cast<int>(rng() % 64);
      for (int k = 0; k < n; ++k) f.push_back(static_cast<char>(rng() % 256));
    } else {
      f = seeds[rng() % (sizeof seeds / sizeof *seeds)];
      const int edits = static_cast<int>(rng() % 4);  // a quarter go in unmutated, so deep states are reached
      for (int e = 0; e < edits; ++e) {
        const size_t pos = f.empty() ? 0 : rng() % f.size();
        switch (rng() % 4) {
          case 0: if (!f.empty()) f[pos] = static_cast<char>(rng() % 256); break;
          case 1: f.insert(pos, std::string(1 + rng() % 8, static_cast<char>('0' + rng() % 75))); break;
          case 2: if (!f.empty()) f.erase(pos, 1 + rng() % 8); break;
          default: f.insert(pos, std::to_string(rng()) + std::to_string(rng())); break;
        }
      }
    }
    for (unsigned char c : f) {
      g_out.clear();
      LineAssembler::Result r = a.Feed(c);
      if (r == LineAssembler::Result::kCommand) h.Handle(a.command(), a.length());
      else if (r == LineAssembler::Result::kTooLong) h.Error("line too long");
      else if (r == LineAssembler::Result::kInvalidByte) h.Error("invalid byte");
      else continue;
      ++replies;
      if (g_out.size() < 9 || g_out.compare(g_out.size() - 9, 9, "m-ready\r\n") != 0) ++bad;
    }
  }
  std::printf("fuzz: %ld frames, %ld replies, %ld without m-ready\n", frames, replies, bad);
  std::printf("fuzz: %d engine invocations\n", engine.invocations);
  std::printf("fuzz: %ld passed, %ld failed\n", replies - bad, bad);
  return bad == 0 ? 0 : 1;
}
