// UringReader: a batch of positioned reads of one file descriptor through io_uring with a
// bounded queue depth, so a restore that needs many small layer slices keeps the device busy.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "base/status.h"

struct io_uring;

namespace llms {

// Thread safety: none; one batch at a time (ChunkStore guards it with its own mutex).
class UringReader {
 public:
  struct Request {
    uint64_t offset = 0;
    std::span<uint8_t> buf;  // must stay valid until Read returns
    // Out: bytes read (fewer than buf.size() only at end of file), or the error.
    uint64_t done = 0;
    Status status;
  };

  // A ring with `depth` slots. Unavailable when the kernel refuses io_uring (old kernel,
  // seccomp, io_uring_disabled), in which case callers use pread.
  static StatusOr<std::unique_ptr<UringReader>> Create(unsigned depth);
  struct RingDeleter {
    void operator()(io_uring* ring) const;  // io_uring_queue_exit, then delete
  };
  // Takes an initialized ring; use Create.
  UringReader(std::unique_ptr<io_uring, RingDeleter> ring, unsigned depth);
  ~UringReader();

  // Hooks of one Read, both run on the calling thread, once per request (by index).
  struct Callbacks {
    // Runs just before the request is first queued, so its buffer can be assigned late (a
    // caller can then cycle a few buffers through many requests). A failure becomes the
    // request's status and it is not read.
    std::function<Status(size_t)> before_submit;
    // Runs as soon as the request has its final result, while later ones may be in flight.
    std::function<void(size_t)> on_done;
  };

  // Reads every request from `fd`, at most depth() in flight. Each request gets its own
  // result; the returned Status is IOError only when the ring itself fails (then requests not
  // yet completed carry that error too). `path` names the file in messages.
  Status Read(int fd, const char* path, std::span<Request> requests,
              const Callbacks& callbacks = {});
  unsigned depth() const { return depth_; }

 private:
  bool Submit(int fd, Request* r);

  std::unique_ptr<io_uring, RingDeleter> ring_;
  unsigned depth_;
};

}  // namespace llms
