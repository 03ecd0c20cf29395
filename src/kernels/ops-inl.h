// Per-target implementations of ops.h (Highway toggle-guarded include).
#if defined(LLMS_KERNELS_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LLMS_KERNELS_OPS_INL_H_
#undef LLMS_KERNELS_OPS_INL_H_
#else
#define LLMS_KERNELS_OPS_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

HWY_INLINE float SumOfSquares(const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto a = hn::LoadU(d, x + i), b = hn::LoadU(d, x + i + N);
    acc0 = hn::MulAdd(a, a, acc0);
    acc1 = hn::MulAdd(b, b, acc1);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

HWY_INLINE void DotImpl(const float* HWY_RESTRICT x, const float* HWY_RESTRICT y, size_t n,
                        float* HWY_RESTRICT result) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    acc0 = hn::MulAdd(hn::LoadU(d, x + i), hn::LoadU(d, y + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(d, x + i + N), hn::LoadU(d, y + i + N), acc1);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += x[i] * y[i];
  *result = sum;
}

HWY_INLINE void RMSNormImpl(const float* HWY_RESTRICT x, const float* HWY_RESTRICT weight, size_t n,
                            float eps, float* out) {
  const float inv = 1.0f / std::sqrt(SumOfSquares(x, n) / static_cast<float>(n) + eps);
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto vinv = hn::Set(d, inv);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), vinv), hn::LoadU(d, weight + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = x[i] * inv * weight[i];
}

HWY_INLINE void SoftmaxImpl(float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  // The maximum in vectors: the scalar loop was one dependent compare per value, 1.6 ms per
  // decode step at a 2048-token context (8 x 2048 scores per KV head and layer). A maximum does
  // not depend on the order, so the result is the same.
  float maxv = x[0];
  size_t j = 0;
  if (n >= N) {
    auto m = hn::LoadU(d, x);
    for (j = N; j + N <= n; j += N) m = hn::Max(m, hn::LoadU(d, x + j));
    maxv = hn::GetLane(hn::MaxOfLanes(d, m));
  }
  for (; j < n; ++j) maxv = x[j] > maxv ? x[j] : maxv;
  const auto vmax = hn::Set(d, maxv);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vmax));
    hn::StoreU(e, d, x + i);
    acc = hn::Add(acc, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - maxv);
    sum += x[i];
  }
  const auto vinv = hn::Set(d, 1.0f / sum);
  for (i = 0; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vinv), d, x + i);
  for (; i < n; ++i) x[i] /= sum;
}

HWY_INLINE void SwiGLUImpl(float* HWY_RESTRICT gate, const float* HWY_RESTRICT up, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto g = hn::LoadU(d, gate + i);
    const auto silu = hn::Div(g, hn::Add(one, hn::Exp(d, hn::Neg(g))));
    hn::StoreU(hn::Mul(silu, hn::LoadU(d, up + i)), d, gate + i);
  }
  if (i < n) {
    // The tail goes through the same vector math (via a padded copy), so every element's
    // result is independent of where it falls: a batch of rows equals the rows one by one.
    HWY_ALIGN float g[hn::MaxLanes(d)] = {}, u[hn::MaxLanes(d)] = {};
    std::copy(gate + i, gate + n, g);
    std::copy(up + i, up + n, u);
    const auto gv = hn::Load(d, g);
    const auto silu = hn::Div(gv, hn::Add(one, hn::Exp(d, hn::Neg(gv))));
    hn::Store(hn::Mul(silu, hn::Load(d, u)), d, g);
    std::copy(g, g + (n - i), gate + i);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace llms
HWY_AFTER_NAMESPACE();

#endif  // include guard
