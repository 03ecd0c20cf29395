// ThreadPool: a fork-join pool for the engine's data-parallel kernels. A job is a number of
// tasks that the calling thread and the workers claim one by one from a shared counter, so a
// worker the OS has not scheduled yet never holds up the job: the caller takes its share. A
// pool of N threads starts N-1 workers. Workers spin briefly before they sleep, because a
// decode step dispatches a few hundred short jobs per token.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llms {

// Thread safety: Run and ParallelFor may be called from one thread at a time.
class ThreadPool {
 public:
  // num_threads <= 0 means one per hardware core.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(task, thread) for every task in [0, num_tasks) and returns when all are done.
  // `thread` in [0, num_threads()) names the executing thread (for per-thread scratch); no two
  // tasks run on the same `thread` at once.
  void Run(size_t num_tasks, const std::function<void(size_t task, int thread)>& fn);

  // Splits [0, n) into ranges of `grain` elements (the last may be shorter) and calls
  // fn(begin, end) for each, spread over the threads.
  void ParallelFor(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

  static int HardwareThreads();

 private:
  struct Job {
    const std::function<void(size_t, int)>* fn;
    size_t num_tasks;
    std::atomic<size_t> next{0};
    std::atomic<size_t> done{0};
  };
  void WorkerLoop(int index);
  static void Work(Job* job, int thread);

  const int num_threads_;
  std::vector<std::thread> workers_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<int> workers_in_job_{0};
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace llms
