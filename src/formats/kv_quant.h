// Conversions of KV layer slices between precision levels (layout in kv_format.h). These run
// once per chunk when it is re-quantized or checked, not per token, so they are plain scalar
// code and double as the reference that the SIMD attention kernel is tested against.
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/kv_format.h"

namespace llms {

// Decodes a layer slice at `level` into floats: k[c * chunk_tokens + t] (channel-major) and
// v[t * width + c] (token-major), each width * chunk_tokens floats.
void DecodeKvSlice(const KvLayout& layout, KvLevel level, const uint8_t* slice, float* k, float* v);

// Encodes float K/V (same shapes as DecodeKvSlice's outputs) into a slice at `level`.
// `dst` must hold layout.LayerBytes(level) bytes. Tokens at t >= valid_tokens are ignored when
// choosing quantization ranges (their values are encoded as the range minimum).
void EncodeKvSlice(const KvLayout& layout, KvLevel level, const float* k, const float* v,
                   size_t valid_tokens, uint8_t* dst);

// Writes one token's K and V rows (width floats each) into position t of an f16 slice.
void WriteTokenF16(const KvLayout& layout, uint8_t* slice, size_t t, const float* k_row,
                   const float* v_row);

// Unpacks value i of a run of `bits`-bit values; Pack sets it (the byte must start zeroed or
// hold the old value, which is overwritten).
inline uint32_t UnpackValue(const uint8_t* run, size_t i, int bits) {
  const size_t bit = i * static_cast<size_t>(bits);
  return (run[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}
inline void PackValue(uint8_t* run, size_t i, int bits, uint32_t q) {
  const size_t bit = i * static_cast<size_t>(bits);
  const uint32_t mask = ((1u << bits) - 1) << (bit % 8);
  run[bit / 8] = static_cast<uint8_t>((run[bit / 8] & ~mask) | ((q << (bit % 8)) & mask));
}

}  // namespace llms
