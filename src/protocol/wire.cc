#include "protocol/wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace llms::wire {
namespace {

Status WriteAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    // MSG_NOSIGNAL: a peer that went away is an error value here, not a SIGPIPE.
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOTSOCK) {
      const ssize_t w = write(fd, data, size);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status::FromErrno("write to peer", errno);
      data += w;
      size -= static_cast<size_t>(w);
      continue;
    }
    if (n < 0) return Status::FromErrno("send to peer", errno);
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads exactly `size` bytes; *got tells how many arrived before an end of stream.
Status ReadAll(int fd, uint8_t* data, size_t size, size_t* got) {
  *got = 0;
  while (*got < size) {
    const ssize_t n = read(fd, data + *got, size - *got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read from peer", errno);
    if (n == 0) return Status::Ok();
    *got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string TypeName(const Json& v) { return v.type_name(); }

Status WrongType(const char* field, const char* expected, const Json& v) {
  return Status::InvalidArgument(std::string("field '") + field + "': expected " + expected +
                                 ", got " + TypeName(v));
}

}  // namespace

std::string DefaultSocketPath() {
  if (const char* env = std::getenv("LLMS_SOCKET"); env != nullptr && *env != '\0') return env;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/llmsd.sock";
  }
  return "/run/llms/llmsd.sock";
}

std::string EncodeFrame(std::string_view payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string frame = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 24)};
  frame.append(payload);
  return frame;
}

Status WriteFrame(int fd, std::string_view payload) {
  if (payload.size() > UINT32_MAX) return Status::InvalidArgument("message over 4 GiB");
  const std::string frame = EncodeFrame(payload);
  return WriteAll(fd, reinterpret_cast<const uint8_t*>(frame.data()), frame.size());
}

namespace {

uint32_t DecodeLength(const char* header) {
  const auto* b = reinterpret_cast<const uint8_t*>(header);
  return b[0] | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
}

Status OversizedFrame(uint32_t n, uint32_t max_bytes) {
  return Status::InvalidArgument("frame of " + std::to_string(n) + " bytes exceeds the limit of " +
                                 std::to_string(max_bytes) +
                                 " (is the peer speaking the llms protocol? see docs/protocol.md)");
}

}  // namespace

StatusOr<std::string> ReadFrame(int fd, uint32_t max_bytes) {
  char header[4];
  size_t got = 0;
  LLMS_RETURN_IF_ERROR(ReadAll(fd, reinterpret_cast<uint8_t*>(header), sizeof(header), &got));
  if (got == 0) return Status::Unavailable("connection closed");
  if (got < sizeof(header)) return Status::IOError("connection closed inside a frame header");
  const uint32_t n = DecodeLength(header);
  if (n > max_bytes) return OversizedFrame(n, max_bytes);
  // Grown as the bytes arrive: a peer that announces a large frame and stalls costs little.
  constexpr size_t kStep = size_t{64} << 10;
  std::string payload;
  while (payload.size() < n) {
    const size_t before = payload.size();
    payload.resize(before + std::min<size_t>(kStep, n - before));
    LLMS_RETURN_IF_ERROR(ReadAll(fd, reinterpret_cast<uint8_t*>(payload.data() + before),
                                 payload.size() - before, &got));
    if (before + got < payload.size()) {
      return Status::IOError("connection closed inside a frame (" + std::to_string(before + got) +
                             " of " + std::to_string(n) + " bytes)");
    }
  }
  return payload;
}

Status FrameDecoder::Append(std::string_view bytes) {
  if (!status_.ok()) return status_;
  buffer_.append(bytes);
  // Check every complete header in the buffer now, so an oversized frame fails at once.
  size_t at = 0;
  while (at + 4 <= buffer_.size()) {
    const uint32_t n = DecodeLength(buffer_.data() + at);
    if (n > max_bytes_) {
      status_ = OversizedFrame(n, max_bytes_);
      buffer_.clear();
      return status_;
    }
    at += 4 + size_t{n};
  }
  return Status::Ok();
}

bool FrameDecoder::Next(std::string* payload) {
  if (!status_.ok() || buffer_.size() < 4) return false;
  const uint32_t n = DecodeLength(buffer_.data());
  if (buffer_.size() - 4 < n) return false;
  payload->assign(buffer_, 4, n);
  buffer_.erase(0, 4 + size_t{n});
  return true;
}

// One pass over the text, skipping strings, counting nesting and values. It need not be exact
// for malformed text (the parser rejects that); it must never under-count valid JSON.
static Status CheckJsonShape(std::string_view text, const JsonLimits& limits) {
  size_t depth = 0, values = 0;
  bool in_string = false, escaped = false, in_scalar = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    const bool scalar_char = c != '[' && c != '{' && c != ']' && c != '}' && c != ',' && c != ':' &&
                             c != '"' && c != ' ' && c != '\n' && c != '\t' && c != '\r';
    if (scalar_char && !in_scalar) ++values;
    in_scalar = scalar_char;
    if (c == '"') {
      in_string = true;
      ++values;
    } else if (c == '[' || c == '{') {
      ++values;
      if (++depth > limits.max_depth) {
        return Status::InvalidArgument("JSON nests deeper than " +
                                       std::to_string(limits.max_depth) + " levels");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
    if (values > limits.max_values) {
      return Status::InvalidArgument("JSON has more than " + std::to_string(limits.max_values) +
                                     " values");
    }
  }
  return Status::Ok();
}

StatusOr<Json> ParseJson(std::string_view text, const JsonLimits& limits) {
  LLMS_RETURN_IF_ERROR(CheckJsonShape(text, limits));
  // Parsing without exceptions: a discarded value marks any syntax error, including invalid
  // UTF-8 inside strings, which nlohmann rejects.
  Json m = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded()) {
    return Status::InvalidArgument("not valid JSON (or its strings are not valid UTF-8)");
  }
  return m;
}

StatusOr<Json> ParseMessage(std::string_view payload) {
  StatusOr<Json> parsed = ParseJson(payload);
  if (!parsed.ok()) return parsed.status().WithContext("message");
  Json m = std::move(parsed).value();
  if (!m.is_object()) return Status::InvalidArgument("message is not a JSON object");
  auto type = m.find("type");
  if (type == m.end() || !type->is_string()) {
    return Status::InvalidArgument("message has no string field 'type'");
  }
  return m;
}

std::string Serialize(const Json& message) {
  return message.dump(-1, ' ', false, Json::error_handler_t::replace);
}

StatusOr<std::string> GetString(const Json& m, const char* field) {
  auto it = m.find(field);
  if (it == m.end()) return Status::InvalidArgument(std::string("missing field '") + field + "'");
  if (!it->is_string()) return WrongType(field, "a string", *it);
  return it->get<std::string>();
}

StatusOr<std::string> GetString(const Json& m, const char* field, const std::string& fallback) {
  if (!m.contains(field) || m.at(field).is_null()) return fallback;
  return GetString(m, field);
}

StatusOr<uint64_t> GetUint(const Json& m, const char* field) {
  auto it = m.find(field);
  if (it == m.end()) return Status::InvalidArgument(std::string("missing field '") + field + "'");
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
    return WrongType(field, "an unsigned integer", *it);
  }
  return it->get<uint64_t>();
}

StatusOr<uint64_t> GetUint(const Json& m, const char* field, uint64_t fallback) {
  if (!m.contains(field) || m.at(field).is_null()) return fallback;
  return GetUint(m, field);
}

StatusOr<double> GetNumber(const Json& m, const char* field, double fallback) {
  auto it = m.find(field);
  if (it == m.end() || it->is_null()) return fallback;
  if (!it->is_number()) return WrongType(field, "a number", *it);
  return it->get<double>();
}

StatusOr<bool> GetBool(const Json& m, const char* field, bool fallback) {
  auto it = m.find(field);
  if (it == m.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return WrongType(field, "true or false", *it);
  return it->get<bool>();
}

Json ErrorMessage(uint64_t id, const Status& status) {
  return Json{{"type", "error"},
              {"id", id},
              {"code", StatusCodeWireName(status.code())},
              {"message", status.message()}};
}

std::string StringOr(const Json& m, const char* field, const std::string& fallback) {
  if (!m.is_object()) return fallback;
  auto it = m.find(field);
  return it != m.end() && it->is_string() ? it->get<std::string>() : fallback;
}

uint64_t UintOr(const Json& m, const char* field, uint64_t fallback) {
  if (!m.is_object()) return fallback;
  auto it = m.find(field);
  return it != m.end() && it->is_number_unsigned() ? it->get<uint64_t>() : fallback;
}

Status StatusFromError(const Json& message) {
  const std::string code = StringOr(message, "code", "unknown");
  const std::string text = StringOr(message, "message", "the daemon gave no message");
  const std::optional<StatusCode> known = StatusCodeFromWireName(code);
  if (known && *known != StatusCode::kOk) return Status::FromCode(*known, text);
  return Status::IOError(code + ": " + text);
}

}  // namespace llms::wire
