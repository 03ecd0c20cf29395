// Scalar reference code for the weight storage types, written plainly (like llama2.c) so that it
// can be checked by eye against ggml: dequantize, quantize and dot for one row. The SIMD kernels
// in matmul.h are tested against these; they are not meant to be fast.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/weight_types.h"

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

}  // namespace llms
