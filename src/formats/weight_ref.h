// Scalar reference code for the weight storage types, written plainly (like llama2.c) so that it
// can be checked by eye against ggml: dequantize, quantize and dot for one row. The SIMD kernels
// in matmul.h are tested against these; they are not meant to be fast.
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/weight_types.h"

namespace llms {

// Decodes the `n` values of `row` (RowBytes(type, n) bytes) into out[0, n), with exactly the
// arithmetic of ggml's dequantize_row_* (so results are bit-identical to ggml's).
// REQUIRES: n is a multiple of the type's block size.
void DequantizeRowRef(WeightType type, const uint8_t* row, float* out, size_t n);

// Encodes in[0, n) into RowBytes(type, n) bytes at `out`. Q8_0 and Q4_0 follow ggml's
// quantize_row_*_ref exactly; Q4_K and Q6_K use a plain min/max (absmax) quantizer whose blocks
// are valid but not the ones ggml's iterative search would pick. F16/BF16 round to nearest even.
// REQUIRES: n is a multiple of the type's block size.
void QuantizeRowRef(WeightType type, const float* in, uint8_t* out, size_t n);

// dot(row, x) over n values: the row dequantized by DequantizeRowRef, then summed in double.
// REQUIRES: n is a multiple of the type's block size.
double DotRef(WeightType type, const uint8_t* row, const float* x, size_t n);

// Activations as the int8 weight path quantizes them (matmul_int8-inl.h), like ggml's
// quantize_row_q8_0 but with 127 / amax as the inverse scale: per 32 values, d = amax / 127 and
// q[i] = nearest-even(x[i] * (127 / amax)) (0 when amax is 0). x[i] ~= d[i / 32] * q[i].
// REQUIRES: n is a multiple of 32; q holds n values, d n / 32.
void QuantizeActivationsRef(const float* x, size_t n, int8_t* q, float* d);

// dot(row, x) as the int8 path defines it: x quantized by QuantizeActivationsRef, each weight
// written as s * u - c with its integer code u and the per-16-value scale s and offset c in
// f32 (Q8_0: u = code + 128, c = 128 d; Q4_0: c = 8 d; Q4_K: s = d * sc, c = dmin * m; Q6_K:
// s = d * sc, c = 32 s), summed exactly in double. *abs_sum receives the sum of the magnitudes
// of the per-16 terms s * d * sum(u q) and c * d * sum(q), the scale of the kernel's rounding.
// REQUIRES: type is Q8_0, Q4_0, Q4_K or Q6_K; n a multiple of its block size.
double DotInt8Ref(WeightType type, const uint8_t* row, const float* x, size_t n, double* abs_sum);

}  // namespace llms
