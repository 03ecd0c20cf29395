#include "base/thread_pool.h"

#include <algorithm>

namespace llms {
namespace {

// About 50 microseconds of spinning on a modern core: longer than the gap between two kernels
// of one decode step, much shorter than the gap between two user requests.
constexpr int kSpinIterations = 20000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

int ThreadPool::HardwareThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(num_threads <= 0 ? HardwareThreads() : num_threads) {
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    epoch_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Work(Job* job, int thread) {
  for (;;) {
    const size_t task = job->next.fetch_add(1);
    if (task >= job->num_tasks) return;
    (*job->fn)(task, thread);
    job->done.fetch_add(1);
  }
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t now = epoch_.load();
    for (int spin = 0; now == seen && spin < kSpinIterations; ++spin) {
      CpuRelax();
      now = epoch_.load();
    }
    if (now == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return epoch_.load() != seen; });
      now = epoch_.load();
    }
    seen = now;
    if (stop_.load()) return;
    // Announce ourselves before looking at the job, so the caller cannot retire it under us.
    workers_in_job_.fetch_add(1);
    if (Job* job = job_.load()) Work(job, index);
    workers_in_job_.fetch_sub(1);
  }
}

void ThreadPool::Run(size_t num_tasks, const std::function<void(size_t, int)>& fn) {
  if (num_tasks == 0) return;
  if (num_threads_ == 1 || num_tasks == 1) {
    for (size_t t = 0; t < num_tasks; ++t) fn(t, 0);
    return;
  }
  Job job;
  job.fn = &fn;
  job.num_tasks = num_tasks;
  job_.store(&job);
  {
    // Taking the lock orders the epoch bump against a worker that is about to sleep.
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_.fetch_add(1);
  }
  wake_.notify_all();
  Work(&job, 0);
  while (job.done.load() != num_tasks) CpuRelax();  // only tasks a worker is running
  job_.store(nullptr);
  while (workers_in_job_.load() != 0) CpuRelax();
}

void ThreadPool::ParallelFor(size_t n, size_t grain,
                             const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t tasks = (n + grain - 1) / grain;
  Run(tasks, [&](size_t task, int) { fn(task * grain, std::min(n, (task + 1) * grain)); });
}

}  // namespace llms
