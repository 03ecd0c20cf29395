#include "service/unix_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/clock.h"
#include "spdlog/spdlog.h"

namespace llms {
namespace {

using wire::Json;

// The first bytes of a connection (enough to tell HTTP from a native frame) must arrive within
// this long; a native client sends its hello at once.
constexpr double kFirstBytesTimeoutSeconds = 60;

StatusOr<uid_t> PeerUid(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::FromErrno("getsockopt(SO_PEERCRED)", errno);
  }
  return cred.uid;
}

// Tells a peer it was refused, without waiting for it, and closes the socket.
void Refuse(int fd, const Status& why) {
  const std::string frame = wire::EncodeFrame(wire::Serialize(wire::ErrorMessage(0, why)));
  (void)!send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  close(fd);
}

int64_t NowSeconds() { return static_cast<int64_t>(Clock::Real()->MonotonicSeconds()); }

}  // namespace

UnixServer::UnixServer(Key, int fd, std::string path, bool tcp, Service* service,
                       const ServerOptions& options)
    : listen_fd_(fd), path_(std::move(path)), tcp_(tcp), service_(service), options_(options) {}

StatusOr<std::unique_ptr<UnixServer>> UnixServer::Listen(const std::string& path, Service* service,
                                                         const ServerOptions& options) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("socket path '" + path + "' must be 1 to " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes long");
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::InvalidArgument(path + " exists and is not a socket; refusing to replace it");
    }
    unlink(path.c_str());  // a stale socket of an earlier run
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket(AF_UNIX)", errno);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno("bind " + path, err);
  }
  chmod(path.c_str(), 0666);
  if (listen(fd, 64) != 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno("listen " + path, err);
  }
  return std::make_unique<UnixServer>(Key(), fd, path, false, service, options);
}

StatusOr<std::unique_ptr<UnixServer>> UnixServer::ListenTcp(const std::string& host, uint16_t port,
                                                            Service* service,
                                                            const ServerOptions& options) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return Status::InvalidArgument("'" + host + "' is not an IPv4 address (try 127.0.0.1)");
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket(AF_INET)", errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno("listen on " + host + ":" + std::to_string(port), err);
  }
  return std::make_unique<UnixServer>(Key(), fd, "", true, service, options);
}

uint16_t UnixServer::port() const {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (!tcp_ || getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

StatusOr<std::unique_ptr<UnixServer>> UnixServer::Adopt(int fd, Service* service,
                                                        const ServerOptions& options) {
  return std::make_unique<UnixServer>(Key(), fd, "", false, service, options);
}

UnixServer::~UnixServer() {
  Stop();
  Disconnect();
  MutexLock lock(&mu_);
  while (live_connections_ > 0) done_cv_.Wait(&lock);
  close(listen_fd_);
  if (!path_.empty()) unlink(path_.c_str());
}

bool UnixServer::Admit(const std::string& owner) {
  MutexLock lock(&mu_);
  const size_t limit = tcp_ ? options_.max_tcp_connections : options_.max_connections_per_uid;
  size_t& open = per_owner_[owner];
  if (open < limit) {
    ++open;
    return true;
  }
  if (NowSeconds() != last_refusal_log_) {  // at most one line a second, whatever the flood
    last_refusal_log_ = NowSeconds();
    spdlog::warn("event=connection_refused owner={} open={} limit={}", owner, open, limit);
  }
  return false;
}

void UnixServer::Serve() {
  while (!stopping_) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping_) break;
      if (errno == EMFILE || errno == ENFILE) {  // out of descriptors: back off, keep serving
        usleep(100 * 1000);
        continue;
      }
      break;  // the listening socket is gone
    }
    StatusOr<uid_t> uid = tcp_ ? StatusOr<uid_t>(uid_t{0}) : PeerUid(fd);
    if (!uid.ok()) {
      Refuse(fd, uid.status());
      continue;
    }
    const std::string owner = tcp_ ? "tcp" : "uid:" + std::to_string(*uid);
    if (!Admit(owner)) {
      Refuse(fd, Status::Unavailable(owner + " already has the most connections llmsd allows (" +
                                     std::to_string(tcp_ ? options_.max_tcp_connections
                                                         : options_.max_connections_per_uid) +
                                     "); close one and retry"));
      continue;
    }
    StatusOr<std::shared_ptr<PeerConnection>> conn = PeerConnection::Adopt(fd, options_.peer);
    MutexLock lock(&mu_);
    if (!conn.ok() || stopping_) {
      if (conn.ok()) (*conn)->Close();
      --per_owner_[owner];
      if (stopping_) break;
      continue;
    }
    open_.insert(*conn);
    ++live_connections_;
    // Detached: a finished connection leaves nothing behind; the destructor waits for the
    // live ones through live_connections_.
    std::thread([this, c = *conn, owner, u = *uid] { ServeConnection(c, owner, u); }).detach();
  }
}

void UnixServer::Stop() {
  if (stopping_.exchange(true)) return;
  shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
}

void UnixServer::Disconnect() {
  MutexLock lock(&mu_);
  for (const auto& conn : open_) conn->Shutdown();
}

void UnixServer::ServeConnection(std::shared_ptr<PeerConnection> conn, std::string owner,
                                 uid_t uid) {
  // The session holds the connection: queued calls may still hold the session (and reply into
  // a closed connection, which drops the bytes) after this thread is gone.
  auto session = std::make_shared<Session>(tcp_ ? "" : owner, [conn](const Json& m) {
    return conn->Queue(wire::EncodeFrame(wire::Serialize(m)))
               ? Status::Ok()
               : Status::IOError("the peer is gone or stopped reading");
  });
  const HttpPeer http_peer{tcp_ ? "" : owner, !tcp_ && (uid == 0 || uid == geteuid())};
  char head[4096];
  size_t got = 0;
  // Enough bytes to tell the protocols apart (a frame header is 4).
  const Deadline first = DeadlineIn(kFirstBytesTimeoutSeconds);
  while (!tcp_ && got < 4) {
    StatusOr<size_t> n =
        conn->Read(std::span<char>(head + got, sizeof(head) - got), first, "a first request");
    if (!n.ok() || *n == 0) break;
    got += *n;
  }
  const std::string_view bytes(head, got);
  // Our code returns errors as values; this is the last line should a library throw on a
  // peer's bytes anyway: that peer's connection ends, the daemon goes on.
  try {
    if (tcp_ || (got > 0 && LooksLikeHttp(bytes))) {
      ServeHttp(conn.get(), bytes, http_peer, service_, options_.http);
    } else if (got >= 4) {
      ServeNative(conn.get(), bytes, session);
    }
  } catch (const std::exception& e) {
    spdlog::error("event=internal_error owner={} error=\"{}\" action=hang_up", owner, e.what());
  }
  // Queued and running calls of this peer see the session closed and stop.
  session->Close();
  conn->Shutdown();
  for (char sink[256];;) {  // sends what is still queued (an error message), then ends
    StatusOr<size_t> n = conn->Read(sink, kNoDeadline, "the end");
    if (!n.ok() || *n == 0) break;
  }
  conn->Close();
  MutexLock lock(&mu_);
  open_.erase(conn);
  --per_owner_[owner];
  --live_connections_;
  done_cv_.NotifyAll();
}

void UnixServer::ServeNative(PeerConnection* conn, std::string_view head,
                             const std::shared_ptr<Session>& session) {
  wire::FrameDecoder decoder(options_.max_frame_bytes);
  Status s = decoder.Append(head);
  Deadline frame_deadline = kNoDeadline;
  char chunk[65536];
  for (;;) {
    std::string payload;
    bool took = false;
    while (s.ok() && decoder.Next(&payload)) {
      took = true;
      StatusOr<Json> message = wire::ParseMessage(payload);
      if (!message.ok()) {
        session->Send(wire::ErrorMessage(0, message.status()));
        continue;  // framing is intact: the next message may be fine
      }
      service_->Handle(session, *message);
    }
    if (!s.ok()) {
      // An oversized frame leaves the stream out of sync: say why, then hang up.
      session->Send(wire::ErrorMessage(0, s));
      return;
    }
    // A frame once started must finish in time; between frames a client may idle.
    if (took || !decoder.mid_frame()) frame_deadline = kNoDeadline;
    if (decoder.mid_frame() && frame_deadline == kNoDeadline) {
      frame_deadline = DeadlineIn(options_.frame_timeout_seconds);
    }
    StatusOr<size_t> n = conn->Read(chunk, frame_deadline, "the rest of a frame");
    if (!n.ok()) {
      if (n.status().code() == StatusCode::kUnavailable) {
        session->Send(wire::ErrorMessage(
            0, Status::InvalidArgument(
                   "a frame was not complete " +
                   std::to_string(static_cast<int>(options_.frame_timeout_seconds)) +
                   " s after it began (" + std::to_string(decoder.buffered_bytes()) +
                   " bytes arrived); hanging up")));
      }
      return;
    }
    if (*n == 0) return;  // the peer closed its side
    s = decoder.Append(std::string_view(chunk, *n));
  }
}

}  // namespace llms
