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

// Bumped on any incompatible change; a hello with another version is refused.
inline constexpr int kProtocolVersion = 1;
// Default cap on one frame's payload, in both directions.
inline constexpr uint32_t kDefaultMaxFrameBytes = 1u << 20;

// Writes one frame: the payload's length as 4 bytes little-endian, then the payload. Retries
// on EINTR and short writes. IOError naming errno when the peer is gone.
Status WriteFrame(int fd, std::string_view payload);
// Reads one frame. Unavailable("connection closed") on a clean end of stream before a frame;
// InvalidArgument when the announced length exceeds `max_bytes` (the stream is then out of
// sync and should be closed); IOError otherwise (including an end of stream inside a frame).
StatusOr<std::string> ReadFrame(int fd, uint32_t max_bytes = kDefaultMaxFrameBytes);

// Parses a frame's payload as a JSON object with a string "type". InvalidArgument naming the
// problem (not JSON, invalid UTF-8, not an object, no type) otherwise.
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

// An error message for the peer: {"type":"error","id":id,"code":"not_found","message":...}.
// `code` is the lower-case name of the status code.
Json ErrorMessage(uint64_t id, const Status& status);
// The Status a received error message stands for.
Status StatusFromError(const Json& message);

}  // namespace llms::wire
