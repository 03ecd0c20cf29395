#include "client/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace llms {

using wire::Json;

Client::Client(Key, int fd) : fd_(fd) {}

Client::~Client() { close(fd_); }

StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& socket_path) {
  sockaddr_un addr{};
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("socket path '" + socket_path + "' is empty or too long");
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket(AF_UNIX)", errno);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    return Status::Unavailable("cannot connect to llmsd at " + socket_path + ": " +
                               std::strerror(err) +
                               " (is the daemon running? start it with "
                               "`llmsd --socket " +
                               socket_path + "`)");
  }
  auto client = std::make_unique<Client>(Key(), fd);
  LLMS_ASSIGN_OR_RETURN(
      Json hello, client->Request(Json{{"type", "hello"}, {"version", wire::kProtocolVersion}}));
  client->app_ = wire::StringOr(hello, "app", "");
  client->model_ = wire::StringOr(hello, "model", "");
  return client;
}

StatusOr<Json> Client::Request(Json request, const std::function<void(const Json&)>& on_token) {
  const uint64_t id = request.contains("id") ? request["id"].get<uint64_t>() : next_id_++;
  request["id"] = id;
  LLMS_RETURN_IF_ERROR(Write(request));
  for (;;) {
    LLMS_ASSIGN_OR_RETURN(std::string frame, wire::ReadFrame(fd_));
    LLMS_ASSIGN_OR_RETURN(Json reply, wire::ParseMessage(frame));
    const std::string type = wire::StringOr(reply, "type", "");
    if (type == "cancelled") continue;  // the acknowledgement of a Cancel
    if (wire::UintOr(reply, "id", 0) != id) {
      // An error without an id is about the connection; one with another id answers a Cancel
      // that came too late (the call had ended), and concerns nobody now.
      if (type == "error" && wire::UintOr(reply, "id", 0) == 0) {
        return wire::StatusFromError(reply);
      }
      continue;
    }
    if (type == "token") {
      if (on_token) on_token(reply);
      continue;
    }
    if (type == "error") return wire::StatusFromError(reply);
    return reply;
  }
}

StatusOr<uint64_t> Client::NewContext(const std::string& system_prompt) {
  Json request{{"type", "create"}};
  if (!system_prompt.empty()) request["system_prompt"] = system_prompt;
  LLMS_ASSIGN_OR_RETURN(Json reply, Request(std::move(request)));
  return wire::UintOr(reply, "context", 0);
}

StatusOr<CallReply> Client::Call(uint64_t context, const std::string& prompt,
                                 const CallOptions& options,
                                 const std::function<bool(std::string_view)>& on_text) {
  Json request{{"type", "call"},
               {"context", context},
               {"prompt", prompt},
               {"max_tokens", options.max_tokens},
               {"temperature", options.temperature},
               {"top_k", options.top_k},
               {"top_p", options.top_p},
               {"seed", options.seed}};
  if (!options.stop.empty()) request["stop"] = options.stop;
  const uint64_t id = next_id_++;
  request["id"] = id;
  running_call_ = id;
  cancel_sent_ = false;
  StatusOr<Json> reply = Request(std::move(request), [&](const Json& token) {
    if (on_text && !on_text(wire::StringOr(token, "text", ""))) Cancel();
  });
  running_call_ = 0;
  LLMS_RETURN_IF_ERROR(reply.status());
  CallReply out;
  // Read without trusting the reply's shape: whatever sits at the socket path must not crash
  // the app.
  out.text = wire::StringOr(*reply, "text", "");
  out.stop_reason = wire::StringOr(*reply, "stop_reason", "");
  const Json usage = reply->value("usage", Json::object());
  out.prompt_tokens = wire::UintOr(usage, "prompt_tokens", 0);
  out.completion_tokens = wire::UintOr(usage, "completion_tokens", 0);
  out.cached_tokens = wire::UintOr(usage, "cached_tokens", 0);
  out.stats = reply->value("stats", Json::object());
  return out;
}

void Client::Cancel() {
  const uint64_t target = running_call_;
  if (target == 0 || cancel_sent_.exchange(true)) return;
  (void)Write(Json{{"type", "cancel"}, {"id", next_id_++}, {"target", target}});
}

Status Client::Write(const Json& message) {
  std::lock_guard<std::mutex> lock(write_mu_);
  return wire::WriteFrame(fd_, wire::Serialize(message));
}

Status Client::DeleteContext(uint64_t context) {
  return Request(Json{{"type", "delete"}, {"context", context}}).status();
}

StatusOr<std::vector<ContextSummary>> Client::ListContexts() {
  LLMS_ASSIGN_OR_RETURN(Json reply, Request(Json{{"type", "list"}}));
  std::vector<ContextSummary> out;
  const Json contexts = reply.value("contexts", Json::array());
  if (!contexts.is_array()) return Status::Corruption("the daemon's list reply has no array");
  for (const Json& c : contexts) {
    out.push_back({wire::UintOr(c, "context", 0), wire::UintOr(c, "tokens", 0),
                   wire::UintOr(c, "chunks", 0), wire::UintOr(c, "resident_chunks", 0),
                   wire::UintOr(c, "flash_chunks", 0), wire::StringOr(c, "damaged", "")});
  }
  return out;
}

StatusOr<Json> Client::Stats(uint64_t context) {
  return Request(Json{{"type", "stats"}, {"context", context}});
}

}  // namespace llms
