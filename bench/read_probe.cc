// The memory-read probe of the benchmarks: sums a buffer with the widest vectors this CPU has
// (Highway dynamic dispatch), so the measured bandwidth is the memory's, not the loop's.
#include "bench/read_probe.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/read_probe.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

float SumFloatsImpl(const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto a = hn::Zero(d), b = hn::Zero(d), c = hn::Zero(d), e = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {  // four independent chains hide the add latency
    a = hn::Add(a, hn::LoadU(d, x + i));
    b = hn::Add(b, hn::LoadU(d, x + i + N));
    c = hn::Add(c, hn::LoadU(d, x + i + 2 * N));
    e = hn::Add(e, hn::LoadU(d, x + i + 3 * N));
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a, b), hn::Add(c, e))));
  for (; i < n; ++i) sum += x[i];
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
