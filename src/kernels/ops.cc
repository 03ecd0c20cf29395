#include "kernels/ops.h"

#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/ops.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/ops-inl.h"

#if HWY_ONCE
namespace llms {

HWY_EXPORT(RMSNormImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(SwiGLUImpl);
HWY_EXPORT(DotImpl);

void RMSNorm(const float* x, const float* weight, size_t n, float eps, float* out) {
  HWY_DYNAMIC_DISPATCH(RMSNormImpl)(x, weight, n, eps, out);
}

void Softmax(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n); }

void SwiGLU(float* gate, const float* up, size_t n) {
  HWY_DYNAMIC_DISPATCH(SwiGLUImpl)(gate, up, n);
}

float Dot(const float* x, const float* y, size_t n) {
  float result;
  HWY_DYNAMIC_DISPATCH(DotImpl)(x, y, n, &result);
  return result;
}

// RoPE touches head_dim values per head once per token: too little work for SIMD dispatch to pay,
// and sin/cos must be exact to match references, so it stays scalar in double precision angles.
void Rope(float* x, size_t num_heads, size_t head_dim, float pos, const float* freq) {
  for (size_t i = 0; i < head_dim / 2; ++i) {
    const double angle = static_cast<double>(pos) * freq[i];
    const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    for (size_t h = 0; h < num_heads; ++h) {
      float* pair = x + h * head_dim + 2 * i;
      const float a = pair[0], b = pair[1];
      pair[0] = a * c - b * s;
      pair[1] = a * s + b * c;
    }
  }
}

void RopeFrequencies(size_t head_dim, float base, float linear_scale, float* freq) {
  for (size_t i = 0; i < head_dim / 2; ++i) {
    freq[i] = static_cast<float>(
        std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / head_dim) /
        linear_scale);
  }
}

}  // namespace llms
#endif  // HWY_ONCE
