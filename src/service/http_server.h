// The HTTP front end of llmsd: OpenAI-compatible /v1/models, /v1/chat/completions and
// /v1/completions (JSON or server-sent events), the app's own contexts under /v1/llms/contexts,
// /health and /metrics. Served on the same Unix socket as the native protocol (the first bytes
// tell them apart) and optionally on a loopback TCP port. HTTP parsing and writing are
// Boost.Beast's over a PeerConnection (deadlines, no SIGPIPE); calls go through the Service's
// queues like native ones.
//
// Identity: on the Unix socket, the peer's uid (as for the native protocol); on TCP, the bearer
// token of each request, mapped to an app name by the daemon's token file (no token, no access).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "service/peer_connection.h"
#include "service/service.h"

namespace llms {

struct HttpOptions {
  size_t max_body_bytes = 1 << 20;
  // A request must arrive whole (headers and body) within this long of its first byte.
  double request_timeout_seconds = 30;
  // A keep-alive connection with no request for this long is closed.
  double idle_timeout_seconds = 60;
  // Bearer token -> app name, for TCP clients. Unused on the Unix socket.
  std::map<std::string, std::string> tokens;
  // The bearer token that may read /metrics over TCP (empty: none may).
  std::string metrics_token;
};

// Who is on the other end of an HTTP connection.
struct HttpPeer {
  std::string app;                // "uid:N" on the Unix socket; empty on TCP (the token decides)
  bool may_read_metrics = false;  // on the Unix socket: the daemon's own uid or root
};

// Serves HTTP/1.1 requests on `conn` until the peer closes it, times out or sends something
// unparsable. `head` holds bytes already read from the connection (the ones that told HTTP
// from the native protocol).
void ServeHttp(PeerConnection* conn, std::string_view head, const HttpPeer& peer, Service* service,
               const HttpOptions& options);

// True when `head` (the first bytes a peer sent) starts an HTTP request rather than a native
// frame. A frame's 4-byte length can never spell an HTTP method within the frame size limit.
bool LooksLikeHttp(std::string_view head);

}  // namespace llms
