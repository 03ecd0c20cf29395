// Small helpers shared by the benchmarks: medians (time comes from base/clock.h's Stopwatch).
#pragma once

#include <algorithm>
#include <vector>

#include "base/clock.h"

namespace llms::bench {

// The median of `v` (the upper one for an even count). REQUIRES: v is not empty.
inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace llms::bench
