// Status and StatusOr: errors as values at every module boundary (STYLE rule 10). A Status is
// OK or a code plus a message a user can act on (it names the file, offset or field).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace llms {

enum class StatusCode {
  kOk = 0,
  kNotFound,
  kCorruption,
  kInvalidArgument,
  kIOError,
  kResourceExhausted,
  kUnavailable,
};

// Thread safety: immutable after construction; safe to share.
class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status NotFound(std::string_view msg) { return Status(StatusCode::kNotFound, msg); }
  static Status Corruption(std::string_view msg) { return Status(StatusCode::kCorruption, msg); }
  static Status InvalidArgument(std::string_view msg) {
    return Status(StatusCode::kInvalidArgument, msg);
  }
  static Status IOError(std::string_view msg) { return Status(StatusCode::kIOError, msg); }
  static Status ResourceExhausted(std::string_view msg) {
    return Status(StatusCode::kResourceExhausted, msg);
  }
  static Status Unavailable(std::string_view msg) { return Status(StatusCode::kUnavailable, msg); }
  // Turns an errno value into IOError (or ResourceExhausted for ENOSPC/EDQUOT/ENOMEM), with
  // `context` (usually "open /path") in front of strerror's text.
  static Status FromErrno(std::string_view context, int err);
  // A status of a given code (decoding a code that crossed a wire, say).
  static Status FromCode(StatusCode code, std::string_view msg) { return Status(code, msg); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Corruption: <message>", or "OK".
  std::string ToString() const;
  // A copy with `prefix + ": "` in front of the message (for adding the file name, say).
  Status WithContext(std::string_view prefix) const;

 private:
  Status(StatusCode code, std::string_view msg) : code_(code), message_(msg) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// "NotFound", as ToString prints it.
const char* StatusCodeName(StatusCode code);
// "not_found", as the wire protocol sends it, and back (nullopt for an unknown name).
const char* StatusCodeWireName(StatusCode code);
std::optional<StatusCode> StatusCodeFromWireName(std::string_view name);

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  StatusOr(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace llms

#define LLMS_CONCAT_INNER(a, b) a##b
#define LLMS_CONCAT(a, b) LLMS_CONCAT_INNER(a, b)

// Returns early from the enclosing function when `expr` is not OK.
#define LLMS_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::llms::Status llms_status_ = (expr);        \
    if (!llms_status_.ok()) return llms_status_; \
  } while (0)

// `LLMS_ASSIGN_OR_RETURN(auto x, F())` declares x from F()'s value or returns its Status.
#define LLMS_ASSIGN_OR_RETURN(lhs, expr) \
  LLMS_ASSIGN_OR_RETURN_IMPL(LLMS_CONCAT(llms_statusor_, __LINE__), lhs, expr)
#define LLMS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
