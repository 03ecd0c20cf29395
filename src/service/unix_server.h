// UnixServer: llmsd's listener on a Unix domain socket (or a loopback TCP port, HTTP only). Each
// connection gets a thread and a PeerConnection; the app is identified by the socket's peer
// credentials (SO_PEERCRED: "uid:<uid>", which the peer cannot forge). The first bytes tell the
// native protocol from HTTP. What one local user can hold is bounded: connections per uid (TCP:
// in all), the bytes of a frame or request (allocated as they arrive), the time a started frame
// or request may take, and the replies queued for a peer that does not read them. A peer that
// sends garbage gets an error and is disconnected; the daemon keeps serving everyone else.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/mutex.h"
#include "base/status.h"
#include "base/thread_annotations.h"
#include "service/http_server.h"
#include "service/peer_connection.h"
#include "service/service.h"

namespace llms {

struct ServerOptions {
  uint32_t max_frame_bytes = wire::kDefaultMaxFrameBytes;
  // Open connections one uid may hold (its apps' processes together). Beyond it a connection is
  // told why and closed. Each costs a thread and at most a frame's bytes.
  size_t max_connections_per_uid = 16;
  size_t max_tcp_connections = 64;  // all TCP clients together (their uid is not known)
  // Once a native frame's first byte arrived, the rest must follow within this long.
  double frame_timeout_seconds = 10;
  PeerLimits peer;
  HttpOptions http;
};

class UnixServer {
 public:
  // Binds `path` (replacing a stale socket file, refusing any other file) with mode 0666: any
  // local app may connect, and each one only sees its own contexts.
  static StatusOr<std::unique_ptr<UnixServer>> Listen(const std::string& path, Service* service,
                                                      const ServerOptions& options);
  // Serves an already listening socket (systemd socket activation).
  static StatusOr<std::unique_ptr<UnixServer>> Adopt(int fd, Service* service,
                                                     const ServerOptions& options);
  // Listens on TCP `host`:`port` for HTTP only, each request identified by its bearer token
  // (`options.http.tokens`). Meant for loopback: the traffic is not encrypted.
  static StatusOr<std::unique_ptr<UnixServer>> ListenTcp(const std::string& host, uint16_t port,
                                                         Service* service,
                                                         const ServerOptions& options);
  uint16_t port() const;  // the bound TCP port (0 for a Unix socket)
  ~UnixServer();          // Stop()s and waits for every connection to end

  // Accepts connections until Stop; returns then.
  void Serve();
  // Stops accepting new connections; open ones go on (so a draining service can still stream
  // the calls it accepted). Safe from any thread, idempotent.
  void Stop();
  // Ends every open connection once what is queued for it has been sent (after the service
  // drained).
  void Disconnect();
  size_t connections() const { return live_connections_; }

 private:
  struct Key {
    explicit Key() = default;
  };

 public:
  UnixServer(Key, int fd, std::string path, bool tcp, Service* service,
             const ServerOptions& options);

 private:
  // The uid's (or TCP's) slot for a new connection; false when it has none left.
  bool Admit(const std::string& owner);
  void ServeConnection(std::shared_ptr<PeerConnection> conn, std::string owner, uid_t uid);
  void ServeNative(PeerConnection* conn, std::string_view head,
                   const std::shared_ptr<Session>& session);

  const int listen_fd_;
  const std::string path_;  // empty when adopted (systemd owns the file) or TCP
  const bool tcp_;
  Service* const service_;
  const ServerOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> live_connections_{0};
  Mutex mu_;
  CondVar done_cv_;  // signalled when a connection ends
  std::set<std::shared_ptr<PeerConnection>> open_ GUARDED_BY(mu_);
  std::map<std::string, size_t> per_owner_ GUARDED_BY(mu_);  // "uid:N" or "tcp" -> open
  int64_t last_refusal_log_ GUARDED_BY(mu_) = 0;
};

}  // namespace llms
