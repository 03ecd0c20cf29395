// Element-wise and row-wise operations of the transformer block: RMSNorm, RoPE, softmax,
// SwiGLU. Highway kernels, dispatched per call to the best target of this CPU; each has a
// scalar reference in tests/kernels/ops_test.cc.
#pragma once

#include <cstddef>

namespace llms {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]. out may alias x.
void RMSNorm(const float* x, const float* weight, size_t n, float eps, float* out);

// In place: x[i] = exp(x[i] - max) / sum. n >= 1.
void Softmax(float* x, size_t n);

// In place: gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)).
void SwiGLU(float* gate, const float* up, size_t n);

// Rotates adjacent pairs (x[2i], x[2i+1]) of each of `num_heads` heads of `head_dim` values by
// angle pos * freq[i] (the llama "normal" RoPE mode). freq: head_dim / 2 frequencies from
// RopeFrequencies.
void Rope(float* x, size_t num_heads, size_t head_dim, float pos, const float* freq);

// freq[i] = base^(-2i / head_dim) / linear_scale, for i < head_dim / 2.
void RopeFrequencies(size_t head_dim, float base, float linear_scale, float* freq);

// sum x[i] * y[i] in f32 with SIMD accumulators.
float Dot(const float* x, const float* y, size_t n);

}  // namespace llms
