#include "service/unix_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace llms {
namespace {

using wire::Json;

StatusOr<std::string> PeerApp(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::FromErrno("getsockopt(SO_PEERCRED)", errno);
  }
  return "uid:" + std::to_string(cred.uid);
}

}  // namespace

UnixServer::UnixServer(Key, int fd, std::string path, Service* service, uint32_t max_frame_bytes)
    : listen_fd_(fd),
      path_(std::move(path)),
      service_(service),
      max_frame_bytes_(max_frame_bytes) {}

StatusOr<std::unique_ptr<UnixServer>> UnixServer::Listen(const std::string& path, Service* service,
                                                         uint32_t max_frame_bytes) {
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
  return std::make_unique<UnixServer>(Key(), fd, path, service, max_frame_bytes);
}

StatusOr<std::unique_ptr<UnixServer>> UnixServer::ListenTcp(const std::string& host, uint16_t port,
                                                            Service* service,
                                                            const HttpOptions& http) {
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
  auto server = std::make_unique<UnixServer>(Key(), fd, "", service, 0);
  server->tcp_ = true;
  server->http_ = http;
  return server;
}

uint16_t UnixServer::port() const {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (!tcp_ || getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

StatusOr<std::unique_ptr<UnixServer>> UnixServer::Adopt(int fd, Service* service,
                                                        uint32_t max_frame_bytes) {
  return std::make_unique<UnixServer>(Key(), fd, "", service, max_frame_bytes);
}

UnixServer::~UnixServer() {
  Stop();
  Disconnect();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return live_connections_ == 0; });
  close(listen_fd_);
  if (!path_.empty()) unlink(path_.c_str());
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
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      close(fd);
      break;
    }
    open_fds_.insert(fd);
    ++live_connections_;
    // Detached: a finished connection leaves nothing behind; the destructor waits for the
    // live ones through live_connections_.
    std::thread([this, fd] { ServeConnection(fd); }).detach();
  }
}

void UnixServer::Stop() {
  if (stopping_.exchange(true)) return;
  shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
}

void UnixServer::Disconnect() {
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);  // ends each connection's read loop
}

void UnixServer::ServeConnection(int fd) {
  // The session owns the descriptor: queued calls may still hold the session (and reply to a
  // closed one with nothing) after this thread is gone, and the fd must not be reused by then.
  struct OwnedFd {
    explicit OwnedFd(int f) : fd(f) {}
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    ~OwnedFd() { close(fd); }
    const int fd;
  };
  auto owned = std::make_shared<OwnedFd>(fd);
  StatusOr<std::string> app = tcp_ ? StatusOr<std::string>(std::string()) : PeerApp(fd);
  auto session = std::make_shared<Session>(app.ok() ? *app : "", [owned](const Json& m) {
    return wire::WriteFrame(owned->fd, wire::Serialize(m));
  });
  char head[4] = {};
  if (!app.ok()) {
    session->Send(wire::ErrorMessage(0, app.status()));
  } else if (tcp_) {
    ServeHttp(fd, "", service_, http_);
  } else if (const ssize_t n = recv(fd, head, sizeof(head), MSG_PEEK | MSG_WAITALL);
             n > 0 && LooksLikeHttp(std::string_view(head, static_cast<size_t>(n)))) {
    ServeHttp(fd, *app, service_, http_);
  } else {
    ServeNative(fd, session);
  }
  // Queued and running calls of this peer see the session closed and stop.
  session->Close();
  shutdown(fd, SHUT_RDWR);
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(fd);
  --live_connections_;
  done_cv_.notify_all();
}

void UnixServer::ServeNative(int fd, const std::shared_ptr<Session>& session) {
  for (;;) {
    StatusOr<std::string> frame = wire::ReadFrame(fd, max_frame_bytes_);
    if (!frame.ok()) {
      // Oversized or torn frames leave the stream out of sync: say why, then hang up.
      if (frame.status().code() == StatusCode::kInvalidArgument) {
        session->Send(wire::ErrorMessage(0, frame.status()));
      }
      return;
    }
    StatusOr<Json> message = wire::ParseMessage(*frame);
    if (!message.ok()) {
      session->Send(wire::ErrorMessage(0, message.status()));
      continue;  // framing is intact: the next message may be fine
    }
    service_->Handle(session, *message);
  }
}

}  // namespace llms
