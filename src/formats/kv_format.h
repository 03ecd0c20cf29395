// The byte layout of one KV chunk's layer slice at each precision level. A chunk holds K and V of
// `chunk_tokens` consecutive tokens for every layer; each layer's slice is contiguous so one
// layer can be read from flash alone. Keys are quantized per channel across the chunk's tokens
// and values per token in groups along the KV width (the KIVI finding: keys have outlier
// channels). Format document: docs/kv_chunk_format.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace llms {

// Precision of a chunk. Numeric values are stored on flash; never renumber.
enum class KvLevel : uint8_t { kF16 = 0, kInt8 = 1, kInt4 = 2, kInt2 = 3 };
constexpr int kNumKvLevels = 4;

int KvLevelBits(KvLevel level);          // 16, 8, 4, 2
const char* KvLevelName(KvLevel level);  // "f16", "int8", "int4", "int2"
std::optional<KvLevel> ParseKvLevel(std::string_view name);

// Scale and offset of one quantization group: value = scale * q + min, q in [0, 2^bits - 1].
struct QuantParams {
  uint16_t scale;  // f16
  uint16_t min;    // f16
};

// Geometry of a layer slice. Width = kv_heads * head_dim values per token for K and for V.
//
// f16 slice:  K[width][tokens] f16 (channel-major, so a channel's tokens are contiguous)
//             V[tokens][width] f16
// intN slice: K params[width] | K values[width][tokens * N / 8 bytes]
//             V params[tokens][width / v_group] | V values[tokens][width * N / 8 bytes]
// Packed values: value i of a run sits in byte i * N / 8 at bit (i * N) % 8, low bits first.
struct KvLayout {
  size_t kv_heads = 0;
  size_t head_dim = 0;
  size_t chunk_tokens = 16;

  size_t width() const { return kv_heads * head_dim; }
  // Values per V quantization group: 32 when the width allows (the usual head sizes), else the
  // whole width, so that any head size (stories260K's is 8) works.
  size_t v_group() const { return width() % 32 == 0 ? 32 : width(); }

  size_t KParamsBytes(KvLevel level) const;
  size_t KValuesBytes(KvLevel level) const;
  size_t VParamsBytes(KvLevel level) const;
  size_t VValuesBytes(KvLevel level) const;
  size_t LayerBytes(KvLevel level) const;

  // Offsets inside a layer slice.
  size_t KValuesOffset(KvLevel level) const { return KParamsBytes(level); }
  size_t VParamsOffset(KvLevel level) const { return KParamsBytes(level) + KValuesBytes(level); }
  size_t VValuesOffset(KvLevel level) const { return VParamsOffset(level) + VParamsBytes(level); }

  // Empty when usable; otherwise why not (head_dim must be a multiple of 8, chunk_tokens a
  // multiple of 8 in [8, 256]).
  std::string_view Validate() const;
};

}  // namespace llms
