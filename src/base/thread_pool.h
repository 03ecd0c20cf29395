// ThreadPool: a fork-join pool for the engine's data-parallel kernels. The calling thread takes
// part in every job, so a pool of N threads starts N-1 workers. Workers spin briefly before they
// sleep, because a decode step dispatches a few hundred short jobs per token and a condition
// variable wake-up per job would cost more than the job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llms {

// Thread safety: Run() may be called from one thread at a time (the engine's thread).
class ThreadPool {
 public:
  // num_threads <= 0 means one per hardware core.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(thread_index) once on each of the num_threads() threads and returns when all
  // have finished. thread_index is in [0, num_threads()).
  void Run(const std::function<void(int)>& fn);

  // Splits [0, n) into num_threads() contiguous ranges of nearly equal size (multiples of
  // `grain`, except the last) and calls fn(begin, end) for each non-empty one.
  void ParallelFor(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

  static int HardwareThreads();

 private:
  void WorkerLoop(int index);

  const int num_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;  // valid while a Run() is in flight
  std::atomic<uint64_t> epoch_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace llms
