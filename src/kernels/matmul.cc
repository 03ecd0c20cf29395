#include "kernels/matmul.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/matmul-inl.h"

#if HWY_ONCE
namespace llms {

HWY_EXPORT(MatMulImpl);
HWY_EXPORT(DequantizeRowImpl);
HWY_EXPORT(QuantizesActivationsImpl);

void MatMul(const WeightMatrix& w, const float* x, size_t n, float* y, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatMulImpl)(w, x, n, y, pool);
}

bool MatMulQuantizesActivations(WeightType type, size_t cols) {
  return HWY_DYNAMIC_DISPATCH(QuantizesActivationsImpl)(type, cols);
}

void DequantizeRow(const WeightMatrix& w, size_t row, float* out) {
  HWY_DYNAMIC_DISPATCH(DequantizeRowImpl)(w, row, out);
}

}  // namespace llms
#endif  // HWY_ONCE
