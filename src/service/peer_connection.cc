#include "service/peer_connection.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/clock.h"

namespace llms {
namespace {

double Now() { return Clock::Real()->MonotonicSeconds(); }

// Milliseconds until `deadline` for poll (-1: none), rounded up so a wait never ends early.
int PollTimeout(Deadline deadline) {
  if (deadline == kNoDeadline) return -1;
  const double left = deadline - Now();
  if (left <= 0) return 0;
  return static_cast<int>(std::min(left * 1e3 + 1, double{1 << 30}));
}

// Sends what the socket takes now from the front of `outbox`. IOError when the peer is gone.
Status SendNow(int fd, std::string* outbox) {
  while (!outbox->empty()) {
    const ssize_t n = send(fd, outbox->data(), outbox->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::Ok();
    if (n < 0) return Status::FromErrno("send to peer", errno);
    outbox->erase(0, static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

Deadline DeadlineIn(double seconds) {
  if (seconds <= 0 || seconds > 1e9) return kNoDeadline;
  return Now() + seconds;
}

StatusOr<std::shared_ptr<PeerConnection>> PeerConnection::Adopt(int fd, const PeerLimits& limits) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno("fcntl(O_NONBLOCK) on a peer socket", err);
  }
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno("eventfd", err);
  }
  return std::make_shared<PeerConnection>(fd, wake, limits);
}

PeerConnection::PeerConnection(int fd, int wake_fd, const PeerLimits& limits)
    : fd_(fd), wake_fd_(wake_fd), limits_(limits) {}

PeerConnection::~PeerConnection() {
  close(fd_);
  close(wake_fd_);
}

void PeerConnection::Wake() const {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void PeerConnection::DrainWake() const {
  uint64_t count = 0;
  (void)!read(wake_fd_, &count, sizeof(count));
}

Status PeerConnection::FlushSome() {
  MutexLock lock(&mu_);
  return SendNow(fd_, &outbox_);
}

bool PeerConnection::closed() const {
  MutexLock lock(&mu_);
  return closed_;
}

bool PeerConnection::Queue(std::string_view bytes) {
  MutexLock lock(&mu_);
  if (closed_ || shutting_down_) return false;
  if (outbox_.size() + bytes.size() > limits_.max_outbox_bytes) {
    // The peer stopped reading: drop it rather than hold its replies without bound.
    closed_ = true;
    shutdown(fd_, SHUT_RDWR);
    Wake();
    return false;
  }
  outbox_.append(bytes);
  // Most replies fit in the socket buffer at once; the rest waits for the connection's thread.
  if (!SendNow(fd_, &outbox_).ok()) {
    closed_ = true;
    shutdown(fd_, SHUT_RDWR);
  }
  if (!outbox_.empty() || closed_) Wake();
  return !closed_;
}

void PeerConnection::Shutdown() {
  MutexLock lock(&mu_);
  shutting_down_ = true;
  Wake();
}

void PeerConnection::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
  shutdown(fd_, SHUT_RDWR);
  Wake();
}

bool PeerConnection::PeerHungUp() const {
  pollfd p{fd_, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

StatusOr<size_t> PeerConnection::Read(std::span<char> out, Deadline deadline,
                                      const char* waiting_for) {
  Deadline stalled = kNoDeadline;  // when queued bytes stop moving
  for (;;) {
    bool pending = false, finishing = false;
    {
      MutexLock lock(&mu_);
      if (closed_) return Status::IOError("connection closed");
      pending = !outbox_.empty();
      finishing = shutting_down_;
    }
    if (finishing && !pending) return size_t{0};
    if (!pending) stalled = kNoDeadline;
    if (pending && stalled == kNoDeadline) stalled = DeadlineIn(limits_.write_timeout_seconds);
    // While finishing, only the outbox matters: the peer's further requests are not read.
    pollfd fds[2] = {
        {fd_, static_cast<short>((finishing ? 0 : POLLIN) | (pending ? POLLOUT : 0)), 0},
        {wake_fd_, POLLIN, 0}};
    const Deadline until = finishing ? stalled : std::min(deadline, stalled);
    const int n = poll(fds, 2, PollTimeout(until));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("poll on a peer socket", errno);
    if (fds[1].revents != 0) DrainWake();
    if ((fds[0].revents & (POLLOUT | POLLERR | POLLHUP)) != 0 && pending) {
      const size_t before = [&] {
        MutexLock lock(&mu_);
        return outbox_.size();
      }();
      LLMS_RETURN_IF_ERROR(FlushSome());
      MutexLock lock(&mu_);
      if (outbox_.size() < before) stalled = kNoDeadline;
    }
    if (!finishing && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
      const ssize_t got = recv(fd_, out.data(), out.size(), MSG_DONTWAIT);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return Status::FromErrno("read from peer", errno);
      }
    }
    if (n == 0 || fds[0].revents == 0) {
      const double now = Now();
      if (stalled != kNoDeadline && now >= stalled) {
        return Status::IOError("the peer stopped reading replies for " +
                               std::to_string(static_cast<int>(limits_.write_timeout_seconds)) +
                               " s");
      }
      if (!finishing && now >= deadline) {
        return Status::Unavailable(std::string("timed out waiting for ") + waiting_for);
      }
    }
  }
}

Status PeerConnection::Write(std::string_view bytes) {
  {
    MutexLock lock(&mu_);
    if (closed_) return Status::IOError("connection closed");
    outbox_.append(bytes);
  }
  Deadline stalled = DeadlineIn(limits_.write_timeout_seconds);
  for (;;) {
    size_t before = 0;
    {
      MutexLock lock(&mu_);
      before = outbox_.size();
      Status s = SendNow(fd_, &outbox_);
      if (!s.ok()) {
        outbox_.clear();
        return s;
      }
      if (outbox_.empty()) return Status::Ok();
      if (outbox_.size() < before) stalled = DeadlineIn(limits_.write_timeout_seconds);
    }
    pollfd p{fd_, POLLOUT, 0};
    const int n = poll(&p, 1, PollTimeout(stalled));
    if (n < 0 && errno != EINTR) return Status::FromErrno("poll on a peer socket", errno);
    if (n == 0 && Now() >= stalled) {
      MutexLock lock(&mu_);
      outbox_.clear();
      return Status::IOError("the peer stopped reading for " +
                             std::to_string(static_cast<int>(limits_.write_timeout_seconds)) +
                             " s");
    }
  }
}

}  // namespace llms
