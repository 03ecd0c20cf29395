// PeerConnection: one accepted socket of llmsd, and the only place the daemon reads from or writes
// to a peer. Every read waits with a deadline; every write is MSG_NOSIGNAL (a peer that hangs up
// is an error value, never a SIGPIPE); the service's worker never blocks on a peer: it queues
// bytes into a bounded outbox that the connection's own thread sends, and a peer that stops
// reading is dropped once its outbox is full.
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "base/mutex.h"
#include "base/status.h"
#include "base/thread_annotations.h"

namespace llms {

// A moment on Clock::Real()'s monotonic clock, in seconds.
using Deadline = double;
inline constexpr Deadline kNoDeadline = std::numeric_limits<double>::infinity();
// `seconds` from now (a non-positive or huge value means no deadline).
Deadline DeadlineIn(double seconds);

struct PeerLimits {
  // Bytes queued for a peer and not yet sent. A generation streams a few hundred bytes per
  // token, so a client that lets this much pile up has stopped reading.
  size_t max_outbox_bytes = size_t{4} << 20;
  // A write that cannot make progress for this long ends the connection.
  double write_timeout_seconds = 30;
};

// Thread safety: Queue, Shutdown and Close may be called from any thread; Read and Write from the
// connection's own thread only.
class PeerConnection {
 public:
  // Takes ownership of the connected socket `fd` (made non-blocking).
  static StatusOr<std::shared_ptr<PeerConnection>> Adopt(int fd, const PeerLimits& limits);
  ~PeerConnection();  // closes the descriptor

  int fd() const { return fd_; }
  // Waits until bytes arrive, the peer closes its side, or `deadline` passes, sending queued
  // bytes meanwhile. Returns how many bytes were read into `out` (0: end of stream, or Shutdown
  // once the outbox is sent). Unavailable naming the wait at the deadline; IOError otherwise.
  StatusOr<size_t> Read(std::span<char> out, Deadline deadline, const char* waiting_for);
  // Sends `bytes` after whatever is queued, waiting while the peer makes progress (at most the
  // write timeout without any). IOError when the peer is gone or too slow.
  Status Write(std::string_view bytes);
  // Appends to the outbox without blocking; the connection's thread sends it. False when the
  // connection is closed, or the outbox would exceed its limit (the connection is closed then).
  bool Queue(std::string_view bytes);
  // Asks the connection's thread to finish: Read sends what is queued, then reports the end of
  // the stream. Later Queue calls fail.
  void Shutdown();
  // Hangs up at once: pending reads return, queued bytes are dropped.
  void Close();
  bool closed() const;
  // True when the peer has hung up (its side is shut), without reading anything.
  bool PeerHungUp() const;

  PeerConnection(int fd, int wake_fd, const PeerLimits& limits);

 private:
  // Sends as much of the outbox as the socket takes now. IOError when the peer is gone.
  Status FlushSome() EXCLUDES(mu_);
  void Wake() const;
  void DrainWake() const;

  const int fd_;
  const int wake_fd_;  // an eventfd: Queue and Shutdown wake a Read waiting in poll
  const PeerLimits limits_;
  mutable Mutex mu_;
  std::string outbox_ GUARDED_BY(mu_);
  bool shutting_down_ GUARDED_BY(mu_) = false;
  bool closed_ GUARDED_BY(mu_) = false;
};

}  // namespace llms
