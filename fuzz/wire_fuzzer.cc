// libFuzzer target for the native protocol (src/protocol/wire.h, docs/protocol.md). The input is
// read three ways: as the byte stream a peer sends (frame by frame with wire::ReadFrame from a
// pipe, as llmsd reads a connection), as the payload of one well-formed frame (so that mutations
// of a bare message need not keep a length prefix in step), and as a bare payload. Every
// payload is parsed and read with the typed getters the daemon and the client use. A peer's
// bytes must only ever produce error values: any crash, leak or sanitizer report is a bug.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/wire.h"

namespace {

using llms::StatusOr;
using llms::wire::Json;

// Small, so that short inputs reach the over-the-limit path too (llmsd's default is 1 MiB).
constexpr uint32_t kMaxFrameBytes = 4096;
// A Linux pipe buffers 64 KiB by default: the input is written whole before it is read, on one
// thread, so only that much of it is used (scripts/fuzz keeps -max_len below it anyway).
constexpr size_t kMaxStreamBytes = 64 << 10;

// Reads every field of every message type of docs/protocol.md the way the daemon (and the
// client, for replies) does: required, with a fallback, or both.
void ReadFields(const Json& m) {
  for (const char* field : {"id", "context", "max_tokens", "top_k", "seed", "target", "version",
                            "tokens", "max_contexts"}) {
    (void)llms::wire::GetUint(m, field);
    (void)llms::wire::GetUint(m, field, 1);
  }
  for (const char* field :
       {"type", "prompt", "system_prompt", "text", "stop_reason", "code", "message", "app"}) {
    (void)llms::wire::GetString(m, field);
    (void)llms::wire::GetString(m, field, "fallback");
  }
  for (const char* field : {"temperature", "top_p", "repeat_penalty"}) {
    (void)llms::wire::GetNumber(m, field, 0.8);
  }
  for (const char* field : {"stream", "include_usage"}) {
    (void)llms::wire::GetBool(m, field, false);
  }
}

// Parses one payload as llmsd does, then answers it as llmsd would: the error message for a
// bad payload, or the message itself serialized (which must parse again).
void HandlePayload(std::string_view payload) {
  StatusOr<Json> message = llms::wire::ParseMessage(payload);
  if (!message.ok()) {
    (void)llms::wire::Serialize(llms::wire::ErrorMessage(0, message.status()));
    return;
  }
  ReadFields(*message);
  // How the client reads an error reply (client.cc): never throws, whatever the fields hold.
  if ((*message)["type"] == "error") (void)llms::wire::StatusFromError(*message);
  // What llmsd echoes back (ids, context ids, texts) goes through Serialize; a message that
  // parsed must serialize to one that parses.
  if (!llms::wire::ParseMessage(llms::wire::Serialize(*message)).ok()) std::abort();
}

// Feeds `stream` through a pipe and reads frames until the stream ends or is out of sync.
void ReadFrames(std::string_view stream) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
  const size_t n = std::min(stream.size(), kMaxStreamBytes);
  for (size_t done = 0; done < n;) {
    const ssize_t w = write(fds[1], stream.data() + done, n - done);
    if (w <= 0) std::abort();  // cannot block: n fits the pipe's buffer
    done += static_cast<size_t>(w);
  }
  close(fds[1]);  // the peer hangs up after its bytes
  for (;;) {
    StatusOr<std::string> frame = llms::wire::ReadFrame(fds[0], kMaxFrameBytes);
    if (!frame.ok()) {
      if (frame.status().code() == llms::StatusCode::kInvalidArgument) {
        (void)llms::wire::Serialize(llms::wire::ErrorMessage(0, frame.status()));
      }
      break;
    }
    HandlePayload(*frame);
  }
  close(fds[0]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  ReadFrames(input);
  const auto n = static_cast<uint32_t>(size);
  std::string framed = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                        static_cast<char>(n >> 24)};
  framed.append(input);
  ReadFrames(framed);
  HandlePayload(input);
  return 0;
}
