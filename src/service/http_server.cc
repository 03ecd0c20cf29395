#include "service/http_server.h"

#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "service/openai.h"

namespace llms {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Stream = asio::posix::stream_descriptor;
using wire::Json;

std::atomic<uint64_t> response_serial{0};  // makes response ids unique within a daemon run

// The replies of one call, handed from the service's worker to the HTTP thread.
class ReplyQueue {
 public:
  Status Push(const Json& m) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(m);
    cv_.notify_one();
    return Status::Ok();
  }
  Json Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty(); });
    Json m = std::move(queue_.front());
    queue_.pop_front();
    return m;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Json> queue_;
};

struct Exchange {
  Stream& stream;
  const http::request<http::string_body>& request;
  bool keep_alive;
};

void Respond(Exchange& x, http::status status, const Json& body,
             const std::string& extra_header = "", const std::string& extra_value = "") {
  http::response<http::string_body> res{status, x.request.version()};
  res.set(http::field::server, "llmsd");
  res.set(http::field::content_type, "application/json");
  if (!extra_header.empty()) res.set(extra_header, extra_value);
  res.keep_alive(x.keep_alive);
  res.body() = wire::Serialize(body);
  res.prepare_payload();
  beast::error_code ec;
  http::write(x.stream, res, ec);
  if (ec) x.keep_alive = false;
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

void Fail(Exchange& x, const Status& s) { Respond(x, HttpStatus(s), openai::Error(s)); }

// The app a request acts for, or empty after answering 401.
std::string Authenticate(Exchange& x, const std::string& peer_app, const HttpOptions& options) {
  if (!peer_app.empty()) return peer_app;
  const std::string auth(x.request[http::field::authorization]);
  const std::string_view prefix = "Bearer ";
  if (std::string_view(auth).starts_with(prefix)) {
    auto it = options.tokens.find(std::string(auth.substr(prefix.size())));
    if (it != options.tokens.end()) return "app:" + it->second;
  }
  Respond(x, http::status::unauthorized,
          openai::Error(Status::InvalidArgument(
              "missing or unknown API key: send 'Authorization: Bearer <token>' with a token "
              "llmsd was started with (--app-token NAME=TOKEN)")));
  return "";
}

// Runs one OpenAI request through the service: as JSON, or streamed as server-sent events.
void Generate(Exchange& x, Service* service, const std::string& app, openai::Endpoint endpoint) {
  StatusOr<openai::Request> parsed = openai::ParseRequest(endpoint, x.request.body());
  if (!parsed.ok()) return Fail(x, parsed.status());
  openai::Request r = std::move(parsed).value();
  if (endpoint == openai::Endpoint::kChat) {
    const Json body = Json::parse(x.request.body(), nullptr, false);
    StatusOr<std::string> text =
        openai::RenderChat(body["messages"], service->model().config().chat_template, &r.stop);
    if (!text.ok()) return Fail(x, text.status());
    r.text = std::move(text).value();
  }
  if (const auto header = x.request["X-Llms-Context"]; !header.empty() && r.context == 0) {
    r.context = std::strtoull(std::string(header).c_str(), nullptr, 10);
  }
  StatusOr<openai::Placement> place =
      openai::Place(service->manager(), service->model().tokenizer(), app, r);
  if (!place.ok()) return Fail(x, place.status());
  auto queue = std::make_shared<ReplyQueue>();
  auto session = std::make_shared<Session>(app, [queue](const Json& m) { return queue->Push(m); });
  if (place->context == 0) {
    service->Handle(session, Json{{"type", "create"}, {"id", 1}});
    const Json created = queue->Pop();
    if (created.value("type", "") == "error") return Fail(x, wire::StatusFromError(created));
    place->context = created.value("context", uint64_t{0});
  }
  Json call{{"type", "call"},
            {"id", 2},
            {"context", place->context},
            {"prompt_tokens", place->prompt},
            {"max_tokens", r.max_tokens},
            {"temperature", r.temperature},
            {"top_p", r.top_p},
            {"seed", r.seed}};
  if (!r.stop.empty()) call["stop"] = r.stop;
  service->Handle(session, call);
  const std::string model = service->model_name();
  const std::string id = (endpoint == openai::Endpoint::kChat ? "chatcmpl-" : "cmpl-") +
                         std::to_string(place->context) + "-" + std::to_string(++response_serial);
  const std::string context = std::to_string(place->context);
  if (!r.stream) {
    for (;;) {
      const Json m = queue->Pop();
      const std::string type = m.value("type", "");
      if (type == "token") continue;
      if (type == "error") return Fail(x, wire::StatusFromError(m));
      Json body = openai::Completion(r, model, id, m.value("text", ""), m.value("stop_reason", ""),
                                     place->prompt.size(),
                                     m["usage"].value("completion_tokens", size_t{0}));
      body["llms"] = Json{{"context", place->context},
                          {"reused_tokens", place->reused_tokens},
                          {"stats", m.value("stats", Json::object())}};
      return Respond(x, http::status::ok, body, "X-Llms-Context", context);
    }
  }
  http::response<http::empty_body> head{http::status::ok, x.request.version()};
  head.set(http::field::server, "llmsd");
  head.set(http::field::content_type, "text/event-stream");
  head.set(http::field::cache_control, "no-cache");
  head.set("X-Llms-Context", context);
  head.keep_alive(x.keep_alive);
  head.chunked(true);
  http::response_serializer<http::empty_body> serializer{head};
  beast::error_code ec;
  http::write_header(x.stream, serializer, ec);
  auto event = [&](const std::string& data) {
    if (ec) return;
    const std::string line = "data: " + data + "\n\n";
    asio::write(x.stream, http::make_chunk(asio::buffer(line)), ec);
    if (ec) session->Cancel(2);  // the client went away: stop generating for it
  };
  for (;;) {
    const Json m = queue->Pop();
    const std::string type = m.value("type", "");
    if (type == "token") {
      event(wire::Serialize(openai::Chunk(r, model, id, m.value("text", ""), nullptr)));
      continue;
    }
    if (type == "error") {
      event(wire::Serialize(openai::Error(wire::StatusFromError(m))));
    } else {
      const std::string reason = m.value("stop_reason", "") == "length" ? "length" : "stop";
      Json last = openai::Chunk(r, model, id, "", reason.c_str());
      if (r.include_usage) {
        last["usage"] =
            openai::Usage(place->prompt.size(), m["usage"].value("completion_tokens", size_t{0}));
      }
      event(wire::Serialize(last));
    }
    event("[DONE]");
    break;
  }
  if (!ec) asio::write(x.stream, http::make_chunk_last(), ec);
  if (ec) x.keep_alive = false;
}

void Route(Exchange& x, Service* service, const std::string& peer_app, const HttpOptions& options) {
  const std::string target(x.request.target());
  const std::string path = target.substr(0, target.find('?'));
  const bool get = x.request.method() == http::verb::get;
  const bool post = x.request.method() == http::verb::post;
  if (path == "/health" && get) return Respond(x, http::status::ok, Json{{"status", "ok"}});
  if (path == "/metrics" && get) {  // aggregates only, so no token is needed to scrape them
    http::response<http::string_body> res{http::status::ok, x.request.version()};
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.keep_alive(x.keep_alive);
    res.body() = service->RenderMetrics();
    res.prepare_payload();
    beast::error_code ec;
    http::write(x.stream, res, ec);
    if (ec) x.keep_alive = false;
    return;
  }
  const std::string app = Authenticate(x, peer_app, options);
  if (app.empty()) return;
  if (path == "/v1/models" && get) {
    return Respond(x, http::status::ok, openai::Models(service->model_name()));
  }
  if (path == "/v1/chat/completions" && post) {
    return Generate(x, service, app, openai::Endpoint::kChat);
  }
  if (path == "/v1/completions" && post) {
    return Generate(x, service, app, openai::Endpoint::kCompletion);
  }
  Respond(x, http::status::not_found,
          openai::Error(Status::NotFound(std::string(x.request.method_string()) + " " + path +
                                         " is not an endpoint of llmsd (try /v1/models, "
                                         "/v1/chat/completions, /v1/completions)")));
}

}  // namespace

bool LooksLikeHttp(std::string_view head) {
  for (std::string_view method : {"GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC"}) {
    if (head.substr(0, method.size()) == method.substr(0, head.size())) return true;
  }
  return false;
}

void ServeHttp(int fd, const std::string& peer_app, Service* service, const HttpOptions& options) {
  asio::io_context io;
  Stream stream(io, fd);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    beast::error_code ec;
    http::read(stream, buffer, parser, ec);
    if (ec == http::error::end_of_stream || ec == asio::error::eof) break;
    if (ec) {
      http::request<http::string_body> none;
      Exchange x{stream, none, false};
      Fail(x, Status::InvalidArgument("malformed HTTP request: " + ec.message()));
      break;
    }
    const http::request<http::string_body> request = parser.release();
    Exchange x{stream, request, request.keep_alive()};
    Route(x, service, peer_app, options);
    if (!x.keep_alive) break;
  }
  stream.release();  // the caller owns the descriptor
}

}  // namespace llms
