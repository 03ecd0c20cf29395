// Weight-matrix kernels: matrix-vector and matrix-matrix products with weights kept in their
// storage type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K). Dispatches once per call to the best
// SIMD target. On CPUs with AVX-512 VNNI the quantized types take an int8 path: activations are
// quantized to int8 per 32 values (like ggml's Q8_0 activations) and multiplied with the weights'
// integer codes by byte dot products (matmul_int8-inl.h); elsewhere weights are decoded to f32
// in registers and multiplied with f32 activations.
//
// Goals: bit-exact decoding of ggml's block layouts; results that do not depend on the thread
// count or on how many tokens are batched (each output is one fixed sequence of operations).
// Non-goals (for now): the int8 path on AVX2/NEON, repacking weights into a tile-friendly layout.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/thread_pool.h"
#include "formats/weight_types.h"

namespace llms {

// Y[t*rows + r] = dot(W row r, X[t*cols ...]) for t in [0,n). Cache-blocked: each decoded weight
// block is reused for several tokens; n may be 1 (a matrix-vector product). Y[t] equals MatMul
// of X[t] alone, bit for bit. Splits rows across pool threads (pool may be null = one thread).
// REQUIRES: cols is a multiple of the type's block size; x holds n*cols floats, y n*rows floats;
// y does not overlap x or w.data.
void MatMul(const WeightMatrix& w, const float* x, size_t n, float* y, ThreadPool* pool);

// True if MatMul of a `type` matrix with `cols` columns quantize the activations to int8
// on this CPU (then results match DotInt8Ref in weight_ref.h, not DotRef).
bool MatMulQuantizesActivations(WeightType type, size_t cols);

// Dequantize row `row` of w into out (cols floats) — used for embedding lookup. Bit-identical to
// DequantizeRowRef (weight_ref.h), hence to ggml's dequantize_row_*.
// REQUIRES: row < w.rows.
void DequantizeRow(const WeightMatrix& w, size_t row, float* out);

}  // namespace llms
