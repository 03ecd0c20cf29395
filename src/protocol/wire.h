// The native wire protocol of llmsd (docs/protocol.md): length-prefixed JSON messages over a
// stream socket. Both the daemon (src/service) and the client library (src/client) speak it
// through these helpers, so framing and validation live in one place.
//
// Goals: a malformed frame from a peer is an error value, never a crash or an unbounded
// allocation; a peer that disappears is reported, not signalled (no SIGPIPE). Non-goals:
// encryption or authentication (the Unix socket's peer credentials identify the app).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "nlohmann/json.hpp"

namespace llms::wire {

using Json = nlohmann::json;

// Where llmsd listens unless told otherwise, for the daemon and its clients alike:
// $LLMS_SOCKET, else $XDG_RUNTIME_DIR/llmsd.sock, else /run/llms/llmsd.sock (the systemd unit's).
std::string DefaultSocketPath();

// Bumped on any incompatible change; a hello with another version is refused.
inline constexpr int kProtocolVersion = 1;
// Default cap on one frame's payload, in both directions.
inline constexpr uint32_t kDefaultMaxFrameBytes = 1u << 20;

// Writes one frame: the payload's length as 4 bytes little-endian, then the payload. Retries
// on EINTR and short writes. IOError naming errno when the peer is gone.
Status WriteFrame(int fd, std::string_view payload);
// The bytes of one frame (length then payload), for a writer of its own.
std::string EncodeFrame(std::string_view payload);
// Reads one frame. Unavailable("connection closed") on a clean end of stream before a frame;
// InvalidArgument when the announced length exceeds `max_bytes` (the stream is then out of
// sync and should be closed); IOError otherwise (including an end of stream inside a frame).
// Memory grows with the bytes that arrive, not with the length a peer announces.
StatusOr<std::string> ReadFrame(int fd, uint32_t max_bytes = kDefaultMaxFrameBytes);

// Cuts frames out of a byte stream that arrives in pieces, for a server that reads with its own
// deadlines. Holds only the bytes that arrived (a peer announcing 1 MiB and sending one byte
// costs one byte). Thread safety: none.
class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_bytes = kDefaultMaxFrameBytes) : max_bytes_(max_bytes) {}
  // Takes bytes that arrived. InvalidArgument once a header announces more than max_bytes (the
  // stream is then out of sync and should be closed; the decoder stays failed).
  Status Append(std::string_view bytes);
  // Moves the next complete payload into *payload; false when none is complete yet.
  bool Next(std::string* payload);
  // True while part of a frame has arrived (a deadline for the rest applies then).
  bool mid_frame() const { return !buffer_.empty(); }
  size_t buffered_bytes() const { return buffer_.size(); }

 private:
  const uint32_t max_bytes_;
  std::string buffer_;  // bytes of frames not yet taken, from a frame's start
  Status status_;
};

// Limits on a JSON text's shape, checked before it is parsed, so that parsing a hostile message
// cannot take far more memory than its bytes: a parsed value costs ~16-80 bytes (a 1 MiB text of
// nested brackets once took over 100 MB). The defaults admit every real request (a prompt of
// token ids is one array of a few thousand numbers).
struct JsonLimits {
  size_t max_depth = 32;         // nesting of arrays and objects
  size_t max_values = 1u << 16;  // scalars, arrays and objects together
};
// Parses `text` as JSON without exceptions. InvalidArgument naming the problem: over a limit,
// not JSON, invalid UTF-8 in a string.
StatusOr<Json> ParseJson(std::string_view text, const JsonLimits& limits = JsonLimits());

// Parses a frame's payload as a JSON object with a string "type" (ParseJson's limits apply).
// InvalidArgument naming the problem (over a limit, not JSON, invalid UTF-8, not an object, no
// type) otherwise.
StatusOr<Json> ParseMessage(std::string_view payload);
// Serializes a message; invalid UTF-8 in its strings is replaced (U+FFFD), never thrown.
std::string Serialize(const Json& message);

// Typed field access with messages a client can act on: "field 'max_tokens': expected an
// unsigned integer, got string". Missing optional fields give the fallback.
StatusOr<std::string> GetString(const Json& m, const char* field);
StatusOr<std::string> GetString(const Json& m, const char* field, const std::string& fallback);
StatusOr<uint64_t> GetUint(const Json& m, const char* field);
StatusOr<uint64_t> GetUint(const Json& m, const char* field, uint64_t fallback);
StatusOr<double> GetNumber(const Json& m, const char* field, double fallback);
StatusOr<bool> GetBool(const Json& m, const char* field, bool fallback);

// A field of a message from a peer, or `fallback` when it is absent or of another type (or `m`
// is not an object). Never throws: nlohmann's value() throws on a field of the wrong type, and a
// peer's message may hold anything.
std::string StringOr(const Json& m, const char* field, const std::string& fallback);
uint64_t UintOr(const Json& m, const char* field, uint64_t fallback);

// An error message for the peer: {"type":"error","id":id,"code":"not_found","message":...}.
// `code` is the lower-case name of the status code.
Json ErrorMessage(uint64_t id, const Status& status);
// The Status a received error message stands for.
Status StatusFromError(const Json& message);

}  // namespace llms::wire
