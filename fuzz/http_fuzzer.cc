// libFuzzer target for llmsd's HTTP request path (src/service/http_server.cc) up to the OpenAI
// request object (src/service/openai.h). The input is what a client sends on a connection: it is
// parsed request by request with Boost.Beast's request parser as ServeHttp does (keep-alive
// requests back to back), and each complete request's body goes through openai::ParseRequest
// for both endpoints and, for chat, openai::RenderChat with the plain format and with ChatML.
// The raw input is also parsed as a body. A client's bytes must only ever produce error values:
// any crash, leak or sanitizer report is a bug.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "service/http_server.h"
#include "service/openai.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using llms::StatusOr;
using llms::openai::Endpoint;
using llms::wire::Json;

// Smaller than llmsd's 1 MiB default so that the over-the-limit paths are reachable with the
// short inputs a fuzzer makes; the header limit is Beast's default.
constexpr uint64_t kMaxBodyBytes = 64 << 10;
constexpr uint32_t kMaxHeaderBytes = 8 << 10;
// A chat template that selects ChatML in RenderChat (the start of Qwen's and others').
constexpr const char* kChatMlTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";

// What llmsd answers with when a request fails: the status as an OpenAI error body.
void SerializeError(const llms::Status& status) {
  (void)llms::wire::Serialize(llms::openai::Error(status));
}

// A body as Generate handles it: parsed for the endpoint, then (chat) the messages rendered.
void HandleBody(Endpoint endpoint, const std::string& body) {
  StatusOr<llms::openai::Request> request = llms::openai::ParseRequest(endpoint, body);
  if (!request.ok()) return SerializeError(request.status());
  if (endpoint != Endpoint::kChat) return;
  // ParseRequest accepted it, so it is a JSON object with a non-empty "messages" array.
  const Json parsed = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  for (const char* chat_template : {"", kChatMlTemplate}) {
    std::vector<std::string> stop = request->stop;
    StatusOr<std::string> text = llms::openai::RenderChat(parsed["messages"], chat_template, &stop);
    if (!text.ok()) SerializeError(text.status());
  }
}

// Handles a complete request: its body as a request of both endpoints, whatever the path (so
// that the fuzzer need not keep the path intact to reach the body), and for paths other than
// the generating ones the 404 that Route answers, which names the method and path.
void HandleRequest(const http::request<http::string_body>& request) {
  HandleBody(Endpoint::kChat, request.body());
  HandleBody(Endpoint::kCompletion, request.body());
  const std::string target(request.target());
  const std::string path = target.substr(0, target.find('?'));
  if (path == "/v1/chat/completions" || path == "/v1/completions") return;
  http::response<http::string_body> res{http::status::not_found, request.version()};
  res.keep_alive(request.keep_alive());
  res.body() = llms::wire::Serialize(llms::openai::Error(llms::Status::NotFound(
      std::string(request.method_string()) + " " + path + " is not an endpoint of llmsd")));
  res.prepare_payload();
  std::ostringstream out;
  out << res;
}

// Parses the requests in `input` one after another, as ServeHttp reads a connection: it stops
// at the first malformed or incomplete request, or after one that does not keep the
// connection alive.
void ParseRequests(std::string_view input) {
  while (!input.empty()) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    parser.header_limit(kMaxHeaderBytes);
    parser.eager(true);
    beast::error_code ec;
    size_t used = 0;
    while (!parser.is_done()) {
      size_t n = 0;
      if (used < input.size()) {
        n = parser.put(boost::asio::buffer(input.data() + used, input.size() - used), ec);
        used += n;
        if (ec == http::error::need_more) ec = {};
        if (ec) break;
      }
      if (n == 0) {
        // The parser takes nothing more from what is left: the peer hung up, as http::read
        // sees it (put_eof ends a request cut short with an error).
        if (parser.got_some()) parser.put_eof(ec);
        break;
      }
    }
    if (ec || !parser.is_done()) {
      if (ec)
        SerializeError(llms::Status::InvalidArgument("malformed HTTP request: " + ec.message()));
      return;
    }
    const http::request<http::string_body> request = parser.release();
    HandleRequest(request);
    if (!request.keep_alive() || used == 0) return;
    input.remove_prefix(used);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)llms::LooksLikeHttp(input.substr(0, 4));
  ParseRequests(input);
  const std::string body(input);
  HandleBody(Endpoint::kChat, body);
  HandleBody(Endpoint::kCompletion, body);
  return 0;
}
