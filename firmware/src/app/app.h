// The firmware's main loop body, shared by every board port: bytes from the UART in, replies out.
#pragma once
#include <cstdint>

#include "protocol/protocol.h"

namespace audio_nas {

class App {
 public:
  explicit App(CommandHandler& handler) : handler_(handler) {}
  // Feeds one received byte; runs a command when it completes one.
  void Feed(uint8_t byte) {
    switch (assembler_.Feed(byte)) {
      case LineAssembler::Result::kCommand: handler_.Handle(assembler_.command(), assembler_.length()); break;
      case LineAssembler::Result::kTooLong: handler_.Error("line too long"); break;
      case LineAssembler::Result::kInvalidByte: handler_.Error("invalid byte"); break;
      default: break;
    }
  }

 private:
  CommandHandler& handler_;
  LineAssembler assembler_;
};

}  // namespace audio_nas
