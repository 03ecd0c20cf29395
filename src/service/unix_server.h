// UnixServer: llmsd's listener on a Unix domain socket. Each connection gets a thread that
// reads frames (src/protocol/wire.h), identifies the app by the socket's peer credentials
// (SO_PEERCRED: "uid:<uid>", which the peer cannot forge) and hands each message to the
// Service. A peer that sends garbage gets an error message and is disconnected; the daemon
// keeps serving everyone else.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/status.h"
#include "service/http_server.h"
#include "service/service.h"

namespace llms {

class UnixServer {
 public:
  // Binds `path` (replacing a stale socket file, refusing any other file) with mode 0666: any
  // local app may connect, and each one only sees its own contexts.
  static StatusOr<std::unique_ptr<UnixServer>> Listen(const std::string& path, Service* service,
                                                      uint32_t max_frame_bytes);
  // Serves an already listening socket (systemd socket activation).
  static StatusOr<std::unique_ptr<UnixServer>> Adopt(int fd, Service* service,
                                                     uint32_t max_frame_bytes);
  // Listens on TCP `host`:`port` for HTTP only, each request identified by its bearer token
  // (`http.tokens`). Meant for loopback: the traffic is not encrypted.
  static StatusOr<std::unique_ptr<UnixServer>> ListenTcp(const std::string& host, uint16_t port,
                                                         Service* service, const HttpOptions& http);
  // HTTP settings of Unix-socket connections that speak HTTP (the first bytes tell).
  void set_http_options(const HttpOptions& http) { http_ = http; }
  uint16_t port() const;  // the bound TCP port (0 for a Unix socket)
  ~UnixServer();          // Stop()s

  // Accepts connections until Stop; returns then.
  void Serve();
  // Stops accepting new connections; open ones go on (so a draining service can still stream
  // the calls it accepted). Safe from any thread, idempotent.
  void Stop();
  // Hangs up every open connection (after the service drained).
  void Disconnect();
  size_t connections() const { return live_connections_; }

 private:
  struct Key {
    explicit Key() = default;
  };

 public:
  UnixServer(Key, int fd, std::string path, Service* service, uint32_t max_frame_bytes);

 private:
  void ServeConnection(int fd);
  void ServeNative(int fd, const std::shared_ptr<Session>& session);

  const int listen_fd_;
  const std::string path_;  // empty when adopted (systemd owns the file)
  Service* const service_;
  const uint32_t max_frame_bytes_;
  bool tcp_ = false;
  HttpOptions http_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> live_connections_{0};
  std::mutex mu_;
  std::condition_variable done_cv_;  // signalled when a connection ends
  std::set<int> open_fds_;           // guarded by mu_
};

}  // namespace llms
