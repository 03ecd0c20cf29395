#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace llms {

namespace {

// The one table of status code names: as printed, and as sent on the wire (docs/protocol.md).
struct CodeNames {
  StatusCode code;
  const char* name;
  const char* wire;
};
constexpr CodeNames kCodeNames[] = {
    {StatusCode::kOk, "OK", "ok"},
    {StatusCode::kNotFound, "NotFound", "not_found"},
    {StatusCode::kCorruption, "Corruption", "corruption"},
    {StatusCode::kInvalidArgument, "InvalidArgument", "invalid_argument"},
    {StatusCode::kIOError, "IOError", "io_error"},
    {StatusCode::kResourceExhausted, "ResourceExhausted", "resource_exhausted"},
    {StatusCode::kUnavailable, "Unavailable", "unavailable"},
};

}  // namespace

const char* StatusCodeName(StatusCode code) {
  for (const CodeNames& c : kCodeNames) {
    if (c.code == code) return c.name;
  }
  return "Unknown";
}

const char* StatusCodeWireName(StatusCode code) {
  for (const CodeNames& c : kCodeNames) {
    if (c.code == code) return c.wire;
  }
  return "unknown";
}

std::optional<StatusCode> StatusCodeFromWireName(std::string_view name) {
  for (const CodeNames& c : kCodeNames) {
    if (name == c.wire) return c.code;
  }
  return std::nullopt;
}

Status Status::FromErrno(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  if (err == ENOSPC || err == EDQUOT || err == ENOMEM) return ResourceExhausted(msg);
  if (err == ENOENT) return NotFound(msg);
  return IOError(msg);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  return Status(code_, std::string(prefix) + ": " + message_);
}

}  // namespace llms
