#include "store/uring_reader.h"

#include <liburing.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "env/env.h"

namespace llms {

void UringReader::RingDeleter::operator()(io_uring* ring) const {
  io_uring_queue_exit(ring);
  std::default_delete<io_uring>()(ring);
}

UringReader::UringReader(std::unique_ptr<io_uring, RingDeleter> ring, unsigned depth)
    : ring_(std::move(ring)), depth_(depth) {}

UringReader::~UringReader() = default;

StatusOr<std::unique_ptr<UringReader>> UringReader::Create(unsigned depth) {
  auto ring = std::make_unique<io_uring>();
  const int rc = io_uring_queue_init(depth, ring.get(), 0);
  if (rc < 0) {
    return Status::Unavailable(std::string("io_uring_queue_init: ") + std::strerror(-rc));
  }
  std::unique_ptr<io_uring, RingDeleter> owned(ring.release());
  return std::make_unique<UringReader>(std::move(owned), depth);
}

// Queues the unread remainder of `r`; false when the submission queue is full.
bool UringReader::Submit(int fd, Request* r) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) return false;
  io_uring_prep_read(sqe, fd, r->buf.data() + r->done,
                     static_cast<unsigned>(r->buf.size() - r->done), r->offset + r->done);
  io_uring_sqe_set_data(sqe, r);
  return true;
}

Status UringReader::Read(int fd, const char* path, std::span<Request> requests,
                         const Callbacks& callbacks) {
  const auto& on_done = callbacks.on_done;
  std::vector<bool> finished(requests.size(), false);
  auto finish = [&](Request* r) {
    const size_t index = static_cast<size_t>(r - requests.data());
    finished[index] = true;
    if (on_done) on_done(index);
  };
  std::vector<Request*> again;  // requests whose remainder must be queued again
  size_t next = 0;
  size_t prepared = 0;     // requests [0, prepared) went through before_submit
  unsigned queued = 0;     // prepared, not yet accepted by the kernel
  unsigned in_flight = 0;  // accepted; the kernel may still write their buffers
  Status ring_status;
  auto queue = [&](Request* r) { return Submit(fd, r) ? (++queued, true) : false; };
  for (;;) {
    if (ring_status.ok()) {
      while (!again.empty() && queued + in_flight < depth_ && queue(again.back())) again.pop_back();
      while (next < requests.size() && queued + in_flight < depth_) {
        Request* r = &requests[next];
        if (prepared == next) {
          ++prepared;
          Status ready = callbacks.before_submit ? callbacks.before_submit(next) : Status::Ok();
          if (!ready.ok()) {
            r->status = ready;
            ++next;
            finish(r);
            continue;
          }
        }
        if (!queue(r)) break;
        ++next;
      }
      if (queued > 0) {
        const int k = io_uring_submit(ring_.get());
        if (k >= 0) {
          in_flight += static_cast<unsigned>(k);
          queued -= static_cast<unsigned>(k);
        } else if (k != -EINTR && k != -EAGAIN && k != -EBUSY) {
          ring_status =
              Status::IOError(std::string("io_uring_submit on ") + path + ": " + std::strerror(-k));
        }
      }
    }
    // Never return while the kernel may still write a caller's buffer.
    if (in_flight == 0) {
      const bool all_queued = next == requests.size() && again.empty() && queued == 0;
      if (!ring_status.ok() || all_queued) break;
      continue;
    }
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_wait_cqe(ring_.get(), &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) {  // the ring is unusable; nothing more can be waited for
      ring_status =
          Status::IOError(std::string("io_uring_wait_cqe on ") + path + ": " + std::strerror(-rc));
      break;
    }
    auto* r = static_cast<Request*>(io_uring_cqe_get_data(cqe));
    const int res = cqe->res;
    io_uring_cqe_seen(ring_.get(), cqe);
    --in_flight;
    if (res == -EINTR || res == -EAGAIN) {
      again.push_back(r);
    } else if (res < 0) {
      r->status = Status::FromErrno(
          std::string("read ") + path + " at offset " + std::to_string(r->offset + r->done), -res);
      finish(r);
    } else {
      r->done += static_cast<uint64_t>(res);
      // A short read is the end of the file unless more can be asked for at an aligned offset.
      if (res > 0 && r->done < r->buf.size() && IsAligned(r->done)) {
        again.push_back(r);
      } else {
        finish(r);
      }
    }
  }
  for (Request& r : requests) {
    if (finished[static_cast<size_t>(&r - requests.data())]) continue;
    if (r.status.ok() && r.done < r.buf.size()) r.status = ring_status;
    finish(&r);
  }
  return ring_status;
}

}  // namespace llms
