#include "service/http_server.h"

#include <atomic>
// GCC 12 at -O2 with sanitizers reports a maybe-uninitialized boost::optional inside Beast's
// parser (a known false positive of that pairing); it is Beast's code, not ours.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>

#include "base/mutex.h"
#include "service/openai.h"

namespace llms {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using wire::Json;
// A dynamic body grows with the bytes that arrive; a string body would reserve whatever
// Content-Length a peer announces.
using Request = http::request<http::dynamic_body>;

std::atomic<uint64_t> response_serial{0};  // makes response ids unique within a daemon run

// The replies of one call, handed from the service's worker to the HTTP thread.
class ReplyQueue {
 public:
  Status Push(const Json& m) {
    MutexLock lock(&mu_);
    queue_.push_back(m);
    cv_.NotifyOne();
    return Status::Ok();
  }
  // The next reply, or nullopt when none came within about `seconds` (callers loop).
  std::optional<Json> Pop(double seconds) {
    MutexLock lock(&mu_);
    if (queue_.empty()) cv_.WaitFor(&lock, seconds);
    if (queue_.empty()) return std::nullopt;
    Json m = std::move(queue_.front());
    queue_.pop_front();
    return m;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<Json> queue_ GUARDED_BY(mu_);
};

struct Exchange {
  PeerConnection* conn;
  const Request& request;
  const std::string& body;
  bool keep_alive;
};

// Serializes a response (status line, headers, body) the way Beast writes it.
template <class Message>
std::string Serialized(const Message& m) {
  std::ostringstream out;
  out << m;
  return out.str();
}

void Send(Exchange& x, std::string_view bytes) {
  if (!x.conn->Write(bytes).ok()) x.keep_alive = false;
}

void Respond(Exchange& x, http::status status, const std::string& content_type, std::string body,
             const std::string& extra_header = "", const std::string& extra_value = "") {
  http::response<http::string_body> res{status, x.request.version()};
  res.set(http::field::server, "llmsd");
  res.set(http::field::content_type, content_type);
  if (!extra_header.empty()) res.set(extra_header, extra_value);
  res.keep_alive(x.keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  if (x.request.method() == http::verb::head) res.body().clear();  // headers only, same length
  Send(x, Serialized(res));
}

void RespondJson(Exchange& x, http::status status, const Json& body,
                 const std::string& extra_header = "", const std::string& extra_value = "") {
  Respond(x, status, "application/json", wire::Serialize(body), extra_header, extra_value);
}

http::status HttpStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return http::status::bad_request;
    case StatusCode::kNotFound:
      return http::status::not_found;
    case StatusCode::kResourceExhausted:
      return http::status::too_many_requests;
    case StatusCode::kUnavailable:
      return http::status::service_unavailable;
    default:
      return http::status::internal_server_error;
  }
}

void Fail(Exchange& x, const Status& s) { RespondJson(x, HttpStatus(s), openai::Error(s)); }

std::string BearerToken(const Request& request) {
  const std::string auth(request[http::field::authorization]);
  const std::string_view prefix = "Bearer ";
  return std::string_view(auth).starts_with(prefix) ? auth.substr(prefix.size()) : "";
}

// The app a request acts for, or empty after answering 401.
std::string Authenticate(Exchange& x, const HttpPeer& peer, const HttpOptions& options) {
  if (!peer.app.empty()) return peer.app;
  auto it = options.tokens.find(BearerToken(x.request));
  if (it != options.tokens.end() && !it->first.empty()) return "app:" + it->second;
  RespondJson(x, http::status::unauthorized,
              openai::Error(Status::InvalidArgument(
                  "missing or unknown API key: send 'Authorization: Bearer <token>' with a token "
                  "from llmsd's token file (--app-tokens-file)")));
  return "";
}

std::string ChunkedData(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

// A placed call's replies, as the HTTP thread reads them.
struct CallReplies {
  static constexpr uint64_t kId = 1;
  std::shared_ptr<ReplyQueue> queue;
  std::shared_ptr<Session> session;
  // Waits for the next reply; cancels the call when the client hangs up meanwhile.
  Json Next(PeerConnection* conn) {
    for (;;) {
      if (std::optional<Json> m = queue->Pop(0.25)) return std::move(*m);
      if (conn->PeerHungUp()) session->Cancel(kId);  // the worker then ends the call
    }
  }
};

// The request of a generating endpoint: its body parsed, a chat rendered as text.
StatusOr<openai::Request> ParseGeneration(const Exchange& x, const Service& service,
                                          openai::Endpoint endpoint) {
  LLMS_ASSIGN_OR_RETURN(openai::Request r, openai::ParseRequest(endpoint, x.body));
  if (endpoint == openai::Endpoint::kChat) {
    LLMS_ASSIGN_OR_RETURN(Json body, wire::ParseJson(x.body));  // ParseRequest accepted it
    LLMS_ASSIGN_OR_RETURN(
        r.text,
        openai::RenderChat(body["messages"], service.model().config().chat_template, &r.stop));
  }
  if (const auto header = x.request["X-Llms-Context"]; !header.empty() && r.context == 0) {
    r.context = std::strtoull(std::string(header).c_str(), nullptr, 10);
  }
  return r;
}

// The whole reply as one JSON body, once the call is done (`m`: its first reply after placing).
void RespondWhole(Exchange& x, const openai::Request& r, const std::string& model,
                  const std::string& id_prefix, CallReplies& replies, Json m) {
  while (m.value("type", "") == "token") m = replies.Next(x.conn);
  if (m.value("type", "") == "error") return Fail(x, wire::StatusFromError(m));
  const uint64_t context = m.value("context", uint64_t{0});
  const Json usage = m.value("usage", Json::object());
  Json body = openai::Completion(
      r, model, id_prefix + std::to_string(context) + "-" + std::to_string(++response_serial),
      m.value("text", ""), m.value("stop_reason", ""), usage);
  body["llms"] = Json{{"context", context},
                      {"reused_tokens", usage.value("cached_tokens", size_t{0})},
                      {"stats", m.value("stats", Json::object())}};
  RespondJson(x, http::status::ok, body, "X-Llms-Context", std::to_string(context));
}

// The reply as server-sent events, ending with [DONE]. A client that goes away cancels the call.
void StreamEvents(Exchange& x, const openai::Request& r, const std::string& model,
                  const std::string& id_prefix, uint64_t context, CallReplies& replies, Json m) {
  http::response<http::empty_body> head{http::status::ok, x.request.version()};
  head.set(http::field::server, "llmsd");
  head.set(http::field::content_type, "text/event-stream");
  head.set(http::field::cache_control, "no-cache");
  head.set("X-Llms-Context", std::to_string(context));
  head.keep_alive(x.keep_alive);
  head.chunked(true);
  Send(x, Serialized(head.base()));
  const std::string id = id_prefix + std::to_string(++response_serial);
  bool streaming = true;
  auto event = [&](const std::string& data) {
    if (streaming && !x.conn->Write(ChunkedData("data: " + data + "\n\n")).ok()) {
      streaming = false;
      x.keep_alive = false;
      replies.session->Cancel(CallReplies::kId);  // stop generating for a client that left
    }
  };
  for (; m.value("type", "") == "token"; m = replies.Next(x.conn)) {
    event(wire::Serialize(openai::Chunk(r, model, id, m.value("text", ""), nullptr)));
  }
  if (m.value("type", "") == "error") {
    event(wire::Serialize(openai::Error(wire::StatusFromError(m))));
  } else {
    const std::string reason = m.value("stop_reason", "") == "length" ? "length" : "stop";
    Json last = openai::Chunk(r, model, id, "", reason.c_str());
    if (r.include_usage) last["usage"] = openai::Usage(m.value("usage", Json::object()));
    event(wire::Serialize(last));
  }
  event("[DONE]");
  if (streaming) Send(x, "0\r\n\r\n");
}

// Runs one OpenAI request through the service: as JSON, or streamed as server-sent events.
void Generate(Exchange& x, Service* service, const std::string& app, openai::Endpoint endpoint) {
  StatusOr<openai::Request> parsed = ParseGeneration(x, *service, endpoint);
  if (!parsed.ok()) return Fail(x, parsed.status());
  const openai::Request r = std::move(parsed).value();
  CallReplies replies;
  replies.queue = std::make_shared<ReplyQueue>();
  replies.session = std::make_shared<Session>(
      app, [queue = replies.queue](const Json& m) { return queue->Push(m); });
  PlacedCall placed{r.text, r.context,
                    Json{{"max_tokens", r.max_tokens},
                         {"temperature", r.temperature},
                         {"top_p", r.top_p},
                         {"seed", r.seed}}};
  if (!r.stop.empty()) placed.call["stop"] = r.stop;
  service->HandlePlaced(replies.session, CallReplies::kId, std::move(placed));
  const std::string id_prefix = endpoint == openai::Endpoint::kChat ? "chatcmpl-" : "cmpl-";
  Json m = replies.Next(x.conn);
  const uint64_t context = m.value("context", uint64_t{0});
  if (m.value("type", "") == "placed") m = replies.Next(x.conn);
  if (!r.stream) return RespondWhole(x, r, service->model_name(), id_prefix, replies, m);
  // The stream's status and headers go out once the call is placed, so a request that fails
  // before (a bad context, a limit) still gets a plain HTTP error.
  if (m.value("type", "") == "error") return Fail(x, wire::StatusFromError(m));
  StreamEvents(x, r, service->model_name(), id_prefix, context, replies, m);
}

// Runs one native request (list, delete) for an HTTP route and waits for its reply.
Json NativeRequest(Service* service, const std::string& app, Json request) {
  auto queue = std::make_shared<ReplyQueue>();
  auto session = std::make_shared<Session>(app, [queue](const Json& m) { return queue->Push(m); });
  request["id"] = 1;
  service->Handle(session, request);
  for (;;) {
    if (std::optional<Json> m = queue->Pop(3600)) return std::move(*m);
  }
}

// GET /v1/llms/contexts, DELETE /v1/llms/contexts/ID: the app's own contexts.
void Contexts(Exchange& x, Service* service, const std::string& app, std::string_view rest) {
  const bool get = x.request.method() == http::verb::get;
  const bool del = x.request.method() == http::verb::delete_;
  Json reply;
  if (rest.empty() && get) {
    reply = NativeRequest(service, app, Json{{"type", "list"}});
  } else if (!rest.empty() && rest.find_first_not_of("0123456789") == std::string_view::npos &&
             rest.size() < 20 && (get || del)) {
    reply = NativeRequest(
        service, app,
        Json{{"type", get ? "stats" : "delete"}, {"context", std::stoull(std::string(rest))}});
  } else {
    return Fail(x, Status::NotFound(std::string(x.request.method_string()) + " /v1/llms/contexts/" +
                                    std::string(rest) +
                                    " is not an endpoint (GET /v1/llms/contexts, GET or DELETE "
                                    "/v1/llms/contexts/ID)"));
  }
  if (reply.value("type", "") == "error") return Fail(x, wire::StatusFromError(reply));
  reply.erase("id");
  RespondJson(x, http::status::ok, reply);
}

void Metrics(Exchange& x, Service* service, const HttpPeer& peer, const HttpOptions& options) {
  const bool tcp = peer.app.empty();
  const bool allowed =
      tcp ? !options.metrics_token.empty() && BearerToken(x.request) == options.metrics_token
          : peer.may_read_metrics;
  if (!allowed) {
    // Every app's activity is in there: only the daemon's own user, root, or the holder of the
    // metrics token may read it.
    return RespondJson(x, http::status::forbidden,
                       openai::Error(Status::InvalidArgument(
                           tcp ? "/metrics needs 'Authorization: Bearer <metrics token>' "
                                 "(--metrics-token-file)"
                               : "/metrics is served to llmsd's own user and root only")));
  }
  Respond(x, http::status::ok, "text/plain; version=0.0.4", service->RenderMetrics());
}

void Route(Exchange& x, Service* service, const HttpPeer& peer, const HttpOptions& options) {
  const std::string target(x.request.target());
  const std::string path = target.substr(0, target.find('?'));
  const bool get = x.request.method() == http::verb::get;
  const bool head = x.request.method() == http::verb::head;
  const bool post = x.request.method() == http::verb::post;
  if (path == "/health" && (get || head)) {
    return RespondJson(x, http::status::ok, Json{{"status", "ok"}});
  }
  if (path == "/metrics" && (get || head)) return Metrics(x, service, peer, options);
  const std::string app = Authenticate(x, peer, options);
  if (app.empty()) return;
  constexpr std::string_view kContexts = "/v1/llms/contexts";
  if (path == "/v1/models" && get) {
    return RespondJson(x, http::status::ok, openai::Models(service->model_name()));
  }
  if (path == "/v1/chat/completions" && post) {
    return Generate(x, service, app, openai::Endpoint::kChat);
  }
  if (path == "/v1/completions" && post) {
    return Generate(x, service, app, openai::Endpoint::kCompletion);
  }
  if (path == kContexts) return Contexts(x, service, app, "");
  if (std::string_view(path).starts_with(std::string(kContexts) + "/")) {
    return Contexts(x, service, app, std::string_view(path).substr(kContexts.size() + 1));
  }
  Fail(x, Status::NotFound(std::string(x.request.method_string()) + " " + path +
                           " is not an endpoint of llmsd (try /v1/models, /v1/chat/completions, "
                           "/v1/completions, /v1/llms/contexts)"));
}

// Answers a request that could not be read whole, then the connection closes.
void FailBeforeRequest(PeerConnection* conn, http::status status, const Status& why) {
  const Request none;
  const std::string empty;
  Exchange x{conn, none, empty, false};
  RespondJson(x, status, openai::Error(why));
}

// Reads one request into `parser`. False at a clean end of the connection or after answering a
// malformed or late request (the connection must close then).
bool ReadRequest(PeerConnection* conn, beast::flat_buffer& buffer,
                 http::request_parser<http::dynamic_body>& parser, const HttpOptions& options) {
  Deadline deadline = DeadlineIn(options.idle_timeout_seconds);
  bool started = false;
  char chunk[16384];
  for (;;) {
    beast::error_code ec;
    while (buffer.size() > 0 && !parser.is_done()) {
      if (!started) deadline = DeadlineIn(options.request_timeout_seconds);
      started = true;
      const size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec || used == 0) break;
    }
    if (!ec && parser.is_done()) return true;
    if (ec) {
      FailBeforeRequest(conn, http::status::bad_request,
                        Status::InvalidArgument("malformed HTTP request: " + ec.message()));
      return false;
    }
    StatusOr<size_t> got =
        conn->Read(chunk, deadline, started ? "the rest of an HTTP request" : "an HTTP request");
    if (!got.ok() || *got == 0) {
      if (started && got.ok()) {
        FailBeforeRequest(conn, http::status::bad_request,
                          Status::InvalidArgument("the connection ended inside an HTTP request"));
      } else if (started && got.status().code() == StatusCode::kUnavailable) {
        FailBeforeRequest(conn, http::status::request_timeout, got.status());
      }
      return false;
    }
    const size_t n = *got;
    auto room = buffer.prepare(n);
    std::memcpy(room.data(), chunk, n);
    buffer.commit(n);
  }
}

}  // namespace

bool LooksLikeHttp(std::string_view head) {
  for (std::string_view method : {"GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC"}) {
    if (head.substr(0, method.size()) == method.substr(0, head.size())) return true;
  }
  return false;
}

void ServeHttp(PeerConnection* conn, std::string_view head, const HttpPeer& peer, Service* service,
               const HttpOptions& options) {
  beast::flat_buffer buffer;
  if (!head.empty()) {  // none on TCP (an empty view's data may be null: no memcpy of it)
    auto room = buffer.prepare(head.size());
    std::memcpy(room.data(), head.data(), head.size());
    buffer.commit(head.size());
  }
  for (;;) {
    http::request_parser<http::dynamic_body> parser;
    parser.body_limit(options.max_body_bytes);
    parser.header_limit(16 * 1024);
    if (!ReadRequest(conn, buffer, parser, options)) break;
    const Request request = parser.release();
    const std::string body = beast::buffers_to_string(request.body().data());
    Exchange x{conn, request, body, request.keep_alive()};
    Route(x, service, peer, options);
    if (!x.keep_alive) break;
  }
}

}  // namespace llms
