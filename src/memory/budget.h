// MemoryBudget: the one hard limit on resident KV bytes across every context. Every chunk
// allocation reserves here first; nothing is allocated when the reservation fails.
#pragma once

#include <atomic>
#include <cstddef>

namespace llms {

// Thread safety: thread-safe (lock-free).
class MemoryBudget {
 public:
  explicit MemoryBudget(size_t limit_bytes) : limit_(limit_bytes) {}

  // Reserves `bytes` if that keeps use within the limit; returns whether it did.
  bool TryReserve(size_t bytes);
  // REQUIRES: `bytes` were reserved before.
  void Release(size_t bytes);

  size_t limit() const { return limit_; }
  size_t used() const { return used_.load(); }
  size_t peak() const { return peak_.load(); }

 private:
  const size_t limit_;
  std::atomic<size_t> used_{0};
  std::atomic<size_t> peak_{0};
};

}  // namespace llms
