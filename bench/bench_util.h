// Small helpers shared by the benchmarks: a monotonic stopwatch and medians.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace llms::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The median of `v` (the upper one for an even count). REQUIRES: v is not empty.
inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace llms::bench
