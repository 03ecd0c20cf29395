// Weight storage types as they appear in GGUF files: the ggml type ids, and the block layouts of
// the quantized ones, bit-exact to ggml's published definitions (ggml-common.h). A row of a
// quantized matrix is a sequence of blocks; a block covers kBlockSize consecutive values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace llms {

// Numeric values are ggml's type ids as stored in GGUF tensor infos; never renumber.
enum class WeightType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ6_K = 14,
  kBF16 = 30,
};

constexpr int kQK8_0 = 32;  // values per Q8_0 / Q4_0 block
constexpr int kQK_K = 256;  // values per K-quant super-block
constexpr int kKScaleBytes = 12;

// Q8_0: 32 values, value = d * qs[i].
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0: 32 values, value = d * (nibble - 8); byte i holds value i (low nibble) and value i+16
// (high nibble).
struct BlockQ4_0 {
  uint16_t d;  // f16 scale
  uint8_t qs[kQK8_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_K: 256 values in 8 sub-blocks of 32. value = d * sc[j] * q - dmin * m[j], with 6-bit sc/m
// packed in `scales` (see GetScaleMinK4). qs: for each 64-value half-pair p (0..3), 32 bytes whose
// low nibbles are sub-block 2p and high nibbles sub-block 2p+1.
struct BlockQ4_K {
  uint16_t d;     // f16 super-block scale of the sub-block scales
  uint16_t dmin;  // f16 super-block scale of the sub-block mins
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q6_K: 256 values in 16 sub-blocks of 16. value = d * scales[j] * (q - 32), q 6-bit: low 4 bits
// in ql, high 2 bits in qh (layout in DequantizeRowQ6_K).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // f16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210);

// Unpacks sub-block j's 6-bit scale and min of a Q4_K block (ggml's get_scale_min_k4).
inline void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

struct WeightTypeInfo {
  const char* name;  // as llama.cpp prints it: "F32", "Q4_K", ...
  int block_size;    // values per block
  int block_bytes;   // bytes per block
};

// Layout facts of `type`, or nullopt for a type llms does not support.
std::optional<WeightTypeInfo> GetWeightTypeInfo(WeightType type);
// Same, from a raw ggml type id read from a file.
std::optional<WeightTypeInfo> GetWeightTypeInfo(uint32_t raw_type);

// The type named `name` as GetWeightTypeInfo names it ("Q4_K"), or nullopt.
std::optional<WeightType> ParseWeightType(std::string_view name);

// A weight matrix in its storage type: `rows` rows of `cols` values, row-major, each row
// RowBytes(type, cols) bytes. Non-owning: `data` must outlive the view.
struct WeightMatrix {
  WeightType type;
  size_t rows;
  size_t cols;
  const uint8_t* data;
};

// Bytes of a row of `n` values, or 0 if n is not a multiple of the block size.
size_t RowBytes(WeightType type, size_t n);

}  // namespace llms
