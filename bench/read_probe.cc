// The memory-read probe of the benchmarks: sums a buffer with the widest vectors this CPU has
// (Highway dynamic dispatch), so the measured bandwidth is the memory's, not the loop's.
#include "bench/read_probe.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/read_probe.cc"
#include "hwy/cache_control.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

float SumFloatsImpl(const float* HWY_RESTRICT x, size_t n) {
  // Four streams, one per quarter of the buffer, each with its own accumulator (which also hides
  // the add latency), prefetched 8 KiB ahead: the way the weight kernels read four rows at a
  // time. One sequential stream per core leaves DRAM parallelism unused and measured 10-15% less
  // than decode itself reads.
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d), quarter = n / 4 / N * N, ahead = 2048;
  const float* s0 = x;
  const float* s1 = x + quarter;
  const float* s2 = x + 2 * quarter;
  const float* s3 = x + 3 * quarter;
  auto a = hn::Zero(d), b = hn::Zero(d), c = hn::Zero(d), e = hn::Zero(d);
  for (size_t i = 0; i < quarter; i += N) {
    if (i % 16 == 0) {  // one prefetch per cache line of each stream
      hwy::Prefetch(s0 + i + ahead);
      hwy::Prefetch(s1 + i + ahead);
      hwy::Prefetch(s2 + i + ahead);
      hwy::Prefetch(s3 + i + ahead);
    }
    a = hn::Add(a, hn::LoadU(d, s0 + i));
    b = hn::Add(b, hn::LoadU(d, s1 + i));
    c = hn::Add(c, hn::LoadU(d, s2 + i));
    e = hn::Add(e, hn::LoadU(d, s3 + i));
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a, b), hn::Add(c, e))));
  for (size_t i = 4 * quarter; i < n; ++i) sum += x[i];
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace llms
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace llms {
HWY_EXPORT(SumFloatsImpl);
float SumFloats(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(SumFloatsImpl)(x, n); }
}  // namespace llms
#endif
