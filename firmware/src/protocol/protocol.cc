#include "protocol/protocol.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace audio_nas {

uint32_t Crc32(const uint8_t* data, size_t len, uint32_t crc) {
  // Bitwise CRC-32 (IEEE 802.3, reflected): slow but table-free, so it costs no flash on a small board.
  crc = ~crc;
  for (size_t i = 0; i < len; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int HexDecode(const char* hex, size_t len, uint8_t* out, size_t cap) {
  if (len % 2 != 0 || len / 2 > cap) return -1;
  for (size_t i = 0; i < len / 2; ++i) {
    const int hi = HexDigit(hex[2 * i]), lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return static_cast<int>(len / 2);
}

LineAssembler::Result LineAssembler::Feed(uint8_t b) {
  if (done_) {
    len_ = 0;
    done_ = false;
  }
  if (b == '%') {
    Result r = overflow_ ? Result::kTooLong : invalid_ ? Result::kInvalidByte : Result::kCommand;
    buf_[len_] = '\0';
    if (r != Result::kCommand) len_ = 0;
    done_ = r == Result::kCommand;
    overflow_ = invalid_ = false;
    return r;
  }
  if ((b == '\r' || b == '\n') && len_ == 0) return Result::kNone;
  if (overflow_) return Result::kNone;
  if (len_ + 1 >= kMaxCommandBytes) {
    overflow_ = true;
    len_ = 0;
    return Result::kNone;
  }
  if (b >= 0x20 && b <= 0x7E) {
    buf_[len_++] = static_cast<char>(b);
  } else {
    invalid_ = true;
  }
  return Result::kNone;
}

ModelStore::Status ModelStore::Begin(size_t size, uint32_t crc) {
  if (size > cap_) return Status::kTooLarge;
  size_ = size;
  crc_ = crc;
  received_ = 0;
  uploading_ = true;
  ready_ = false;
  return Status::kOk;
}

ModelStore::Status ModelStore::Write(size_t offset, const uint8_t* data, size_t len) {
  if (!uploading_) return Status::kNoUpload;
  if (offset != received_) return Status::kBadOffset;
  if (len > size_ - received_) {
    uploading_ = false;
    return Status::kOverflow;
  }
  std::memcpy(buf_ + received_, data, len);
  received_ += len;
  if (received_ < size_) return Status::kOk;
  uploading_ = false;
  computed_ = Crc32(buf_, size_);
  if (computed_ != crc_) return Status::kCrcMismatch;
  ready_ = true;
  return Status::kComplete;
}

void CommandHandler::Line(const char* a, const char* b, const char* c) {
  board_.write(a, std::strlen(a));
  board_.write(b, std::strlen(b));
  board_.write(c, std::strlen(c));
  board_.write("\r\n", 2);
}

void CommandHandler::Ready() { Line("m-ready"); }

void CommandHandler::Error(const char* message) {
  Line("e-[", message, "]");
  Ready();
}

static bool ParseSize(const char* s, size_t* out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (*end != '\0' || s[0] == '-' || v > 0xFFFFFFFFull) return false;
  *out = static_cast<size_t>(v);
  return true;
}

bool CommandHandler::DbCommand(char** tok, int n) {
  char num[48];
  if (n >= 3 && std::strcmp(tok[1], "load") == 0) {
    size_t want = 0;
    if (!ParseSize(tok[2], &want)) return false;
    if (want > input_cap_) {
      std::snprintf(num, sizeof num, "%zu > %zu", want, input_cap_);
      Line("e-[db load too large: ", num, "]");
      return true;
    }
    input_expected_ = want;
    input_len_ = 0;
    std::snprintf(num, sizeof num, "%zu", want);
    Line("m-[Expecting ", num, " bytes]");
    return true;
  }
  if (n >= 2 && std::strcmp(tok[1], "print") == 0) {
    Line("m-buffer-[", input_len_ ? "..." : "", "]");
    return true;
  }
  if (n == 2) {
    const size_t len = std::strlen(tok[1]);
    if (len / 2 > input_expected_ - input_len_) {
      Line("e-[db overflow]");
      return true;
    }
    const int got = HexDecode(tok[1], len, input_ + input_len_, input_cap_ - input_len_);
    if (got < 0) return false;
    input_len_ += static_cast<size_t>(got);
    if (input_len_ == input_expected_) Line("m-load-done");
    return true;
  }
  return false;
}

bool CommandHandler::ModelCommand(char** tok, int n) {
  char buf[64];
  if (n >= 4 && std::strcmp(tok[1], "load") == 0) {
    size_t size = 0;
    char* end = nullptr;
    const unsigned long crc = std::strtoul(tok[3], &end, 16);
    if (!ParseSize(tok[2], &size) || *end != '\0' || std::strlen(tok[3]) != 8) return false;
    if (store_.Begin(size, static_cast<uint32_t>(crc)) == ModelStore::Status::kTooLarge) {
      std::snprintf(buf, sizeof buf, "%zu > %zu", size, store_.capacity());
      Line("e-[model too large: ", buf, "]");
      return true;
    }
    std::snprintf(buf, sizeof buf, "%zu", size);
    Line("m-expecting-", buf);
    return true;
  }
  if (n >= 2 && std::strcmp(tok[1], "info") == 0) {
    std::snprintf(buf, sizeof buf, "%zu", store_.model_size());
    Line("m-model-bytes-", buf);
    std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(store_.model_crc()));
    Line("m-model-crc-", buf);
    Line("m-model-source-", store_.model() ? "uploaded" : "none");
    return true;
  }
  if (n >= 2 && std::strcmp(tok[1], "activate") == 0) {
    Line(store_.model() ? "e-[no inference engine: built without TFLM]" : "e-[no model]");
    return true;
  }
  if (n == 3) {
    size_t offset = 0;
    static uint8_t chunk[kMaxCommandBytes / 2];
    if (!ParseSize(tok[1], &offset)) return false;
    const int len = HexDecode(tok[2], std::strlen(tok[2]), chunk, sizeof chunk);
    if (len < 0) return false;
    switch (store_.Write(offset, chunk, static_cast<size_t>(len))) {
      case ModelStore::Status::kNoUpload:
        Line("e-[no upload in progress: send model load SIZE CRC first]");
        return true;
      case ModelStore::Status::kBadOffset:
        std::snprintf(buf, sizeof buf, "got %zu, expected %zu", offset, store_.received());
        Line("e-[bad offset: ", buf, "]");
        return true;
      case ModelStore::Status::kOverflow:
        Line("e-[model overflow]");
        return true;
      case ModelStore::Status::kCrcMismatch:
        std::snprintf(buf, sizeof buf, "expected %08lx got %08lx", static_cast<unsigned long>(store_.expected_crc()),
                      static_cast<unsigned long>(store_.computed_crc()));
        Line("e-[crc mismatch: ", buf, "]");
        return true;
      case ModelStore::Status::kComplete:
        std::snprintf(buf, sizeof buf, "%zu", store_.received());
        Line("m-ack-", buf);
        std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(store_.model_crc()));
        Line("m-model-ok-", buf);
        return true;
      default:
        std::snprintf(buf, sizeof buf, "%zu", store_.received());
        Line("m-ack-", buf);
        return true;
    }
  }
  return false;
}

void CommandHandler::Handle(const char* command, size_t len) {
  ++handled_;
  static char copy[kMaxCommandBytes];
  if (len >= sizeof copy) len = sizeof copy - 1;
  std::memcpy(copy, command, len);
  copy[len] = '\0';
  char* tok[8];
  int n = 0;
  for (char* p = std::strtok(copy, " "); p && n < 8; p = std::strtok(nullptr, " ")) tok[n++] = p;
  if (n == 0) return Error("unknown command: ");
  char buf[48];
  bool ok = true;
  if (std::strcmp(tok[0], "name") == 0) {
    Line("m-name-dut-[", board_.name, "]");
  } else if (std::strcmp(tok[0], "profile") == 0) {
    Line("m-profile-[ulp-mlperf]");
    Line("m-model-[kws01]");
  } else if (std::strcmp(tok[0], "ping") == 0) {
    Line("m-pong");
  } else if (std::strcmp(tok[0], "timestamp") == 0) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(board_.time_us()));
    Line("m-lap-us-", buf);
  } else if (std::strcmp(tok[0], "version") == 0) {
    Line("m-version-1-fw-0.1");
    Line("m-board-", board_.name);
    Line("m-tflm-0");
  } else if (std::strcmp(tok[0], "db") == 0) {
    ok = DbCommand(tok, n);
  } else if (std::strcmp(tok[0], "model") == 0) {
    ok = ModelCommand(tok, n);
  } else if (std::strcmp(tok[0], "infer") == 0 || std::strcmp(tok[0], "stream") == 0) {
    Line("e-[no inference engine: built without TFLM]");
  } else if (std::strcmp(tok[0], "results") == 0) {
    Line("m-results-[]");
  } else if (std::strcmp(tok[0], "stats") == 0) {
    std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(board_.clock_hz));
    Line("m-clock-hz-", buf);
    std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(handled_));
    Line("m-commands-", buf);
  } else {
    Line("e-[unknown command: ", tok[0], "]");
  }
  if (!ok) Line("e-[bad argument: ", tok[0], "]");
  Ready();
}

}  // namespace audio_nas
