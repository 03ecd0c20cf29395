// ThreadPool: every task runs exactly once, `thread` ids are in range and never shared by two
// running tasks, ParallelFor covers its range in `grain` pieces, and many back-to-back jobs and
// destruction of an idle pool neither hang nor crash.
#include "base/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "testutil/testutil.h"

namespace llms {
namespace {

TEST(ThreadPoolTest, NumThreads) {
  EXPECT_EQ(ThreadPool(1).num_threads(), 1);
  EXPECT_EQ(ThreadPool(3).num_threads(), 3);
  EXPECT_GE(ThreadPool::HardwareThreads(), 1);
  EXPECT_EQ(ThreadPool(0).num_threads(), ThreadPool::HardwareThreads());
  EXPECT_EQ(ThreadPool(-1).num_threads(), ThreadPool::HardwareThreads());
}

TEST(ThreadPoolTest, RunCoversEveryTaskOnceWithExclusiveThreadIds) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (size_t num_tasks : {0, 1, 2, 3, 100, 10000}) {
      SCOPED_TRACE("threads " + std::to_string(threads) + ", tasks " + std::to_string(num_tasks));
      std::vector<std::atomic<int>> runs(num_tasks);
      std::vector<std::atomic<bool>> busy(static_cast<size_t>(threads));
      std::atomic<int> bad_thread{0}, overlaps{0};
      pool.Run(num_tasks, [&](size_t task, int thread) {
        if (thread < 0 || thread >= threads) {
          bad_thread.fetch_add(1);
          return;
        }
        std::atomic<bool>& flag = busy[static_cast<size_t>(thread)];
        if (flag.exchange(true)) overlaps.fetch_add(1);
        // A little work, so a second task on the same id would have a window to overlap.
        volatile uint64_t sink = task;
        for (int i = 0; i < 50; ++i) sink = sink * 31 + static_cast<uint64_t>(i);
        runs[task].fetch_add(1);
        flag.store(false);
      });
      EXPECT_EQ(bad_thread.load(), 0);
      EXPECT_EQ(overlaps.load(), 0);
      size_t wrong = 0;
      for (size_t t = 0; t < num_tasks; ++t) wrong += runs[t].load() != 1;
      EXPECT_EQ(wrong, 0u) << "tasks not run exactly once";
    }
  }
}

TEST(ThreadPoolTest, ParallelForCoversRangeInGrainPieces) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (size_t n : {0, 1, 7, 64, 1000, 10001}) {
      for (size_t grain : {0, 1, 3, 16, 1000, 20000}) {
        SCOPED_TRACE("threads " + std::to_string(threads) + ", n " + std::to_string(n) +
                     ", grain " + std::to_string(grain));
        const size_t g = std::max<size_t>(grain, 1);  // grain 0 is treated as 1
        std::vector<std::atomic<int>> hits(n);
        std::atomic<int> bad_ranges{0}, calls{0};
        pool.ParallelFor(n, grain, [&](size_t begin, size_t end) {
          calls.fetch_add(1);
          // Every range starts on a grain boundary and is `grain` long, except a shorter last.
          if (begin >= end || end > n || begin % g != 0 || (end - begin != g && end != n)) {
            bad_ranges.fetch_add(1);
            return;
          }
          for (size_t i = begin; i < end; ++i) hits[i].fetch_add(1);
        });
        EXPECT_EQ(bad_ranges.load(), 0);
        EXPECT_EQ(static_cast<size_t>(calls.load()), (n + g - 1) / g);
        size_t wrong = 0;
        for (size_t i = 0; i < n; ++i) wrong += hits[i].load() != 1;
        EXPECT_EQ(wrong, 0u) << "elements not covered exactly once";
      }
    }
  }
}

TEST(ThreadPoolTest, ManyBackToBackSmallJobs) {
  for (int threads : {2, 4}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    ThreadPool pool(threads);
    std::atomic<uint64_t> sum{0};
    uint64_t expected = 0;
    for (size_t job = 0; job < 10000; ++job) {
      const size_t tasks = 1 + job % 5;  // 1..5 tasks: fewer, equal and more than threads
      pool.Run(tasks, [&](size_t task, int) { sum.fetch_add(task + 1); });
      expected += tasks * (tasks + 1) / 2;
    }
    EXPECT_EQ(sum.load(), expected);
  }
}

TEST(ThreadPoolTest, JobsAfterWorkersFellAsleep) {
  ThreadPool pool(4);
  for (int round = 0; round < 3; ++round) {
    // Long enough for the workers to stop spinning and wait on the condition variable (the
    // spin is tens of microseconds); correctness does not depend on the exact time.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::atomic<int> count{0};
    pool.Run(64, [&](size_t, int) { count.fetch_add(1); });
    EXPECT_EQ(count.load(), 64);
  }
}

TEST(ThreadPoolTest, DestructionIsClean) {
  // Right after construction (workers may not have started yet).
  for (int i = 0; i < 50; ++i) {
    auto pool = std::make_unique<ThreadPool>(4);
    pool.reset();
  }
  // Right after a job (workers spinning).
  for (int i = 0; i < 50; ++i) {
    auto pool = std::make_unique<ThreadPool>(3);
    std::atomic<int> count{0};
    pool->Run(10, [&](size_t, int) { count.fetch_add(1); });
    EXPECT_EQ(count.load(), 10);
    pool.reset();
  }
  // With workers asleep on the condition variable.
  auto pool = std::make_unique<ThreadPool>(4);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  pool.reset();
  SUCCEED();
}

}  // namespace
}  // namespace llms
