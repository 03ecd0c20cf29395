// The HTTP front end of llmsd: OpenAI-compatible /v1/models, /v1/chat/completions and
// /v1/completions (JSON or server-sent events), served on the same Unix socket as the native
// protocol (the first bytes tell them apart) and optionally on a loopback TCP port. HTTP parsing
// and writing are Boost.Beast's; calls go through the Service's queues like native ones.
//
// Identity: on the Unix socket, the peer's uid (as for the native protocol); on TCP, the
// bearer token of each request, mapped to an app name by the daemon's --app-token settings
// (no token, no access).
#pragma once

#include <map>
#include <string>

#include "service/service.h"

namespace llms {

struct HttpOptions {
  size_t max_body_bytes = 1 << 20;
  // Bearer token -> app name, for TCP clients. Empty on the Unix socket.
  std::map<std::string, std::string> tokens;
};

// Serves HTTP/1.1 requests on the connected socket `fd` until the peer closes it or sends
// something unparsable. `peer_app` is the app of a Unix-socket peer, empty on TCP (then the
// bearer token decides). Does not close `fd`.
void ServeHttp(int fd, const std::string& peer_app, Service* service, const HttpOptions& options);

// True when `head` (the first bytes a peer sent) starts an HTTP request rather than a native
// frame. A frame's 4-byte length can never spell an HTTP method within the frame size limit.
bool LooksLikeHttp(std::string_view head);

}  // namespace llms
