// Int8 dot-product path of matmul-inl.h for the quantized weight types (Q8_0, Q4_0, Q4_K, Q6_K)
// on AVX-512 VNNI (Highway's AVX3_DL target). The f32 path decodes every weight to f32 and is
// bound by FMA throughput in prefill (16 multiply-adds per instruction) and by the decode
// arithmetic in Q4 decode. Here activations are quantized to int8 once per call, 32 values per
// scale (ggml's Q8_0 activations), and one VPDPBUSD does 64 byte multiply-adds; the weights'
// integer codes go into it unconverted. Other targets keep the f32 path (kHaveInt8Dot false).
//
// Per 64-value "pair" p of a row and a token, with weight codes u (unsigned bytes), the kernel
// adds cvt(sum_4 u * q) * (s * d) lane-wise: lane i covers values 4i..4i+3, its weight scale s
// is that of the 16-value group 4i / 16 and its activation scale d that of the 32-block 4i / 32.
// Every type's value is s * u - c for a per-16-value offset c (Q8_0: the signed code is stored
// as u = code + 128, c = 128 s; Q4_0: c = 8 s; Q4_K: c = dmin * m; Q6_K: c = 32 s), so
//   dot(row, x) = sum_p (lanes) - sum_g c_g * (d * sum of q over group g)
// and the offset part is one short f32 dot product per (row, token) after the main loop.
// Each output is one fixed sequence of operations whatever the tile, thread count or batch, so
// MatMul still equals MatVec bit for bit.
#if defined(LLMS_KERNELS_MATMUL_INT8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LLMS_KERNELS_MATMUL_INT8_INL_H_
#undef LLMS_KERNELS_MATMUL_INT8_INL_H_
#else
#define LLMS_KERNELS_MATMUL_INT8_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/float16.h"
#include "kernels/weight_types.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3 enables AVX3_DL only on CPUs with AVX512-VNNI (Ice Lake, Zen 4 and later).
constexpr bool kHaveInt8Dot = true;
#else
constexpr bool kHaveInt8Dot = false;
#endif

// True if this target multiplies `type` with int8 activations (see the header comment).
// Q8_0/Q4_0 rows are walked in pairs of blocks, so their width must be a multiple of 64.
HWY_INLINE bool UsesInt8Path(WeightType type, size_t cols) {
  if (!kHaveInt8Dot || cols == 0) return false;
  switch (type) {
    case WeightType::kQ8_0:
    case WeightType::kQ4_0:
      return cols % 64 == 0;
    case WeightType::kQ4_K:
    case WeightType::kQ6_K:
      return cols % kQK_K == 0;
    default:
      return false;
  }
}

// Decodes the f16 block scale at `p` (any alignment) with the target's f16 conversion, which is
// one instruction (F16C) on AVX2 and up instead of the branchy scalar F16ToF32; both are exact.
HWY_INLINE float LoadF16Scale(const uint8_t* HWY_RESTRICT p) {
  const hn::CappedTag<float, 1> d1;
  const hn::Rebind<hwy::float16_t, decltype(d1)> dh1;
  return hn::GetLane(hn::PromoteTo(d1, hn::LoadU(dh1, reinterpret_cast<const hwy::float16_t*>(p))));
}

// n rows of activations quantized per 32 values: x[t][i] ~= d[t][i / 32] * q[t][i]. Grown, never
// shrunk, so a caller that keeps one has no allocation per call once warm.
struct Int8Rows {
  size_t cols = 0;
  size_t d_stride = 0;    // floats per row of d: cols / 32, plus 16 so a 16-lane load stays inside
  size_t s_stride = 0;    // floats per row of sum16: cols / 16 rounded up to 16 (zero-padded), + 16
  std::vector<int8_t> q;  // [n][cols]
  std::vector<float> d;   // [n][d_stride]
  std::vector<float> sum16;  // [n][s_stride]: d * (sum of q over each 16 values)
};

HWY_INLINE size_t Int8SumStride(size_t cols) { return (cols / 16 + 15) / 16 * 16 + 16; }

#if HWY_TARGET == HWY_AVX3_DL

using DF16 = hn::Full512<float>;
using DI32 = hn::Full512<int32_t>;
using DU8 = hn::Full512<uint8_t>;
using DI8 = hn::Full512<int8_t>;
using DU8H = hn::Full256<uint8_t>;

// Quantizes row x (cols floats, cols % 32 == 0) like QuantizeActivationsRef (weight_ref.h): the
// same float operations, so the codes are identical.
HWY_INLINE void QuantizeInt8Row(const float* HWY_RESTRICT x, size_t cols, int8_t* HWY_RESTRICT q,
                                float* HWY_RESTRICT d, float* HWY_RESTRICT sum16) {
  const DF16 df;
  const DI32 di;
  const hn::Full128<int8_t> d8;
  for (size_t b = 0; b < cols / 32; ++b) {
    const auto v0 = hn::LoadU(df, x + 32 * b), v1 = hn::LoadU(df, x + 32 * b + 16);
    const float amax = hn::GetLane(hn::MaxOfLanes(df, hn::Max(hn::Abs(v0), hn::Abs(v1))));
    const float scale = amax / 127.0f;
    const auto inv = hn::Set(df, amax > 0.0f ? 127.0f / amax : 0.0f);
    const auto i0 = hn::NearestInt(hn::Mul(v0, inv)), i1 = hn::NearestInt(hn::Mul(v1, inv));
    hn::StoreU(hn::DemoteTo(d8, i0), d8, q + 32 * b);
    hn::StoreU(hn::DemoteTo(d8, i1), d8, q + 32 * b + 16);
    d[b] = scale;
    sum16[2 * b] = scale * static_cast<float>(hn::GetLane(hn::SumOfLanes(di, i0)));
    sum16[2 * b + 1] = scale * static_cast<float>(hn::GetLane(hn::SumOfLanes(di, i1)));
  }
}

// Sizes `out` for n rows of `cols` and quantizes them.
HWY_INLINE void QuantizeInt8Rows(const float* HWY_RESTRICT x, size_t n, size_t cols,
                                 Int8Rows* out) {
  out->cols = cols;
  out->d_stride = cols / 32 + 16;
  out->s_stride = Int8SumStride(cols);
  if (out->q.size() < n * cols) out->q.resize(n * cols);
  if (out->d.size() < n * out->d_stride) out->d.resize(n * out->d_stride);
  if (out->sum16.size() < n * out->s_stride) out->sum16.resize(n * out->s_stride);
  for (size_t t = 0; t < n; ++t) {
    float* sum16 = out->sum16.data() + t * out->s_stride;
    QuantizeInt8Row(x + t * cols, cols, out->q.data() + t * cols, out->d.data() + t * out->d_stride,
                    sum16);
    std::fill(sum16 + cols / 16, sum16 + out->s_stride, 0.0f);  // the offset dot reads these
  }
}

// acc_i = sum over j < 4 of w[4i + j] * x[4i + j], unsigned times signed bytes (VPDPBUSD).
// Highway 1.0.3 has no op for it, and its AVX3_DL target string lacks avx512vnni, so the
// intrinsic would not compile here: inline assembly is the one way in.
HWY_INLINE hn::Vec<DI32> DotBytes(hn::Vec<DU8> w, hn::Vec<DI8> x) {
  __m512i acc = _mm512_setzero_si512();
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w.raw), "vm"(x.raw));
  return hn::Vec<DI32>{acc};
}

// Lane index tables: each of 8 (or 16) values twice, so per-32 values become per-16 groups.
alignas(64) static constexpr int32_t kDupLow[16] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7};
alignas(64) static constexpr int32_t kDupHigh[16] = {8,  8,  9,  9,  10, 10, 11, 11,
                                                     12, 12, 13, 13, 14, 14, 15, 15};

// Scales and offsets of `blocks` 32-value blocks whose f16 scale d opens each kBlockBytes
// block: s = d and c = c_per_d * d for both 16-value groups of a block. 16 blocks per gather:
// one by one, the scalar f16 conversions and stores cost more than the decode step's dot
// products (measured: decode at half speed).
template <size_t kBlockBytes>
HWY_INLINE void BlockScales32(const uint8_t* HWY_RESTRICT row, size_t blocks, float c_per_d,
                              float* HWY_RESTRICT s16, float* HWY_RESTRICT c16) {
  const DF16 df;
  const DI32 di;
  const hn::Full256<uint16_t> du16;
  const hn::Full256<hwy::float16_t> dh;
  const auto offsets = hn::Mul(hn::Iota(di, 0), hn::Set(di, static_cast<int32_t>(kBlockBytes)));
  const auto low = hn::SetTableIndices(df, kDupLow), high = hn::SetTableIndices(df, kDupHigh);
  const auto c_scale = hn::Set(df, c_per_d);
  size_t b = 0;
  for (; b + 16 <= blocks; b += 16) {
    // 4 bytes at each block start; the low 2 are d (little-endian) and all 4 lie in the block.
    const auto bits =
        hn::GatherOffset(di, reinterpret_cast<const int32_t*>(row + b * kBlockBytes), offsets);
    const auto d16 = hn::DemoteTo(du16, hn::And(bits, hn::Set(di, 0xFFFF)));
    const auto d = hn::PromoteTo(df, hn::BitCast(dh, d16));
    const auto c = hn::Mul(d, c_scale);
    hn::StoreU(hn::TableLookupLanes(d, low), df, s16 + 2 * b);
    hn::StoreU(hn::TableLookupLanes(d, high), df, s16 + 2 * b + 16);
    hn::StoreU(hn::TableLookupLanes(c, low), df, c16 + 2 * b);
    hn::StoreU(hn::TableLookupLanes(c, high), df, c16 + 2 * b + 16);
  }
  for (; b < blocks; ++b) {
    const float d = LoadF16Scale(row + b * kBlockBytes);
    s16[2 * b] = s16[2 * b + 1] = d;
    c16[2 * b] = c16[2 * b + 1] = c_per_d * d;
  }
}

// ---- Int8 traits: one per storage type ----
//
// Each provides kUnitValues / kUnitBytes (one block, or two for the 32-value types so that a
// unit is whole pairs), kUnitPairs = kUnitValues / 64, and
//   RowScales(row, units, s16, c16): per-16-value scale s and offset c of a row's units;
//   Codes(unit, j): the unsigned codes u of pair j (values 64j..64j+63 of the unit), in value
//   order.

struct Int8TraitsQ8_0 {
  static constexpr size_t kUnitValues = 64, kUnitBytes = 2 * sizeof(BlockQ8_0), kUnitPairs = 1;
  static HWY_INLINE void RowScales(const uint8_t* HWY_RESTRICT row, size_t units, float* s16,
                                   float* c16) {
    static_assert(offsetof(BlockQ8_0, d) == 0, "BlockScales32 reads d at the block start");
    BlockScales32<sizeof(BlockQ8_0)>(row, 2 * units, 128.0f, s16, c16);
  }
  static HWY_INLINE hn::Vec<DU8> Codes(const uint8_t* HWY_RESTRICT u, size_t /*j*/) {
    const DU8 du8;
    const DU8H dh;
    const uint8_t* q0 = u + offsetof(BlockQ8_0, qs);
    const auto v = hn::Combine(du8, hn::LoadU(dh, q0 + sizeof(BlockQ8_0)), hn::LoadU(dh, q0));
    return hn::Xor(v, hn::Set(du8, 0x80));  // code + 128: int8 to unsigned
  }
};

struct Int8TraitsQ4_0 {
  static constexpr size_t kUnitValues = 64, kUnitBytes = 2 * sizeof(BlockQ4_0), kUnitPairs = 1;
  static HWY_INLINE void RowScales(const uint8_t* HWY_RESTRICT row, size_t units, float* s16,
                                   float* c16) {
    static_assert(offsetof(BlockQ4_0, d) == 0, "BlockScales32 reads d at the block start");
    BlockScales32<sizeof(BlockQ4_0)>(row, 2 * units, 8.0f, s16, c16);
  }
  // Block bytes i hold values i (low nibble) and i + 16 (high): 128-bit lanes [lo0 hi0 lo1 hi1].
  static HWY_INLINE hn::Vec<DU8> Codes(const uint8_t* HWY_RESTRICT u, size_t /*j*/) {
    const DU8 du8;
    const uint8_t* q0 = u + offsetof(BlockQ4_0, qs);
    const auto both = hn::ConcatUpperLower(du8, hn::LoadDup128(du8, q0 + sizeof(BlockQ4_0)),
                                           hn::LoadDup128(du8, q0));
    return hn::OddEvenBlocks(hn::ShiftRight<4>(both), hn::And(both, hn::Set(du8, 0x0F)));
  }
};

struct Int8TraitsQ4_K {
  static constexpr size_t kUnitValues = kQK_K, kUnitBytes = sizeof(BlockQ4_K), kUnitPairs = 4;
  // The 6-bit sc and m of the 8 sub-blocks unpacked with 32-bit masks (ggml's utmp trick, the
  // same values as GetScaleMinK4) into bytes sc0..sc7 m0..m7, then widened and scaled as one
  // vector: [d * sc_j | dmin * m_j].
  static HWY_INLINE void RowScales(const uint8_t* HWY_RESTRICT row, size_t units, float* s16,
                                   float* c16) {
    const DF16 df;
    const DI32 di;
    const hn::Full128<uint8_t> d8;
    const auto low = hn::SetTableIndices(df, kDupLow), high = hn::SetTableIndices(df, kDupHigh);
    const auto first8 = hn::FirstN(df, 8);
    constexpr uint32_t kMask6 = 0x3f3f3f3f, kMask4 = 0x0f0f0f0f, kMask2 = 0x03030303;
    for (size_t i = 0; i < units; ++i) {
      const uint8_t* u = row + i * sizeof(BlockQ4_K);
      uint32_t w[4];
      std::memcpy(w, u + offsetof(BlockQ4_K, scales), kKScaleBytes);
      w[3] = ((w[2] >> 4) & kMask4) | (((w[1] >> 6) & kMask2) << 4);
      const uint32_t m_low = w[1] & kMask6;
      w[1] = (w[2] & kMask4) | (((w[0] >> 6) & kMask2) << 4);
      w[2] = m_low;
      w[0] &= kMask6;
      const auto scale =
          hn::IfThenElse(first8, hn::Set(df, LoadF16Scale(u + offsetof(BlockQ4_K, d))),
                         hn::Set(df, LoadF16Scale(u + offsetof(BlockQ4_K, dmin))));
      const auto codes = hn::PromoteTo(di, hn::LoadU(d8, reinterpret_cast<const uint8_t*>(w)));
      const auto v = hn::Mul(scale, hn::ConvertTo(df, codes));
      hn::StoreU(hn::TableLookupLanes(v, low), df, s16 + 16 * i);
      hn::StoreU(hn::TableLookupLanes(v, high), df, c16 + 16 * i);
    }
  }
  // Pair j: 32 bytes whose low nibbles are values 64j..64j+31 and high nibbles the next 32.
  static HWY_INLINE hn::Vec<DU8> Codes(const uint8_t* HWY_RESTRICT u, size_t j) {
    const DU8 du8;
    const DU8H dh;
    const auto q = hn::LoadU(dh, u + offsetof(BlockQ4_K, qs) + 32 * j);
    return hn::Combine(du8, hn::ShiftRight<4>(q), hn::And(q, hn::Set(dh, 0x0F)));
  }
};

struct Int8TraitsQ6_K {
  static constexpr size_t kUnitValues = kQK_K, kUnitBytes = sizeof(BlockQ6_K), kUnitPairs = 4;
  static HWY_INLINE void RowScales(const uint8_t* HWY_RESTRICT row, size_t units, float* s16,
                                   float* c16) {
    const DF16 df;
    const DI32 di;
    const hn::Full128<int8_t> d8;
    for (size_t i = 0; i < units; ++i) {
      const uint8_t* u = row + i * sizeof(BlockQ6_K);
      const auto sc = hn::PromoteTo(
          di, hn::LoadU(d8, reinterpret_cast<const int8_t*>(u + offsetof(BlockQ6_K, scales))));
      const auto s =
          hn::Mul(hn::Set(df, LoadF16Scale(u + offsetof(BlockQ6_K, d))), hn::ConvertTo(df, sc));
      hn::StoreU(s, df, s16 + 16 * i);
      hn::StoreU(hn::Mul(s, hn::Set(df, 32.0f)), df, c16 + 16 * i);
    }
  }
  // Pair j covers values 64j..64j+63: half h = j / 2 of the block, quarter pair k = j % 2 (layout
  // in WeightTraitsQ6_K::DecodeBlock). Codes are the unsigned 6-bit q; the -32 is in c16.
  static HWY_INLINE hn::Vec<DU8> Codes(const uint8_t* HWY_RESTRICT u, size_t j) {
    const DU8 du8;
    const DU8H dh;
    const size_t h = j / 2;
    const auto a = hn::LoadU(dh, u + offsetof(BlockQ6_K, ql) + 64 * h);
    const auto b = hn::LoadU(dh, u + offsetof(BlockQ6_K, ql) + 64 * h + 32);
    const auto hb = hn::LoadU(dh, u + offsetof(BlockQ6_K, qh) + 32 * h);
    const auto low = hn::Set(dh, 0x0F), top = hn::Set(dh, 0x30);
    if (j % 2 == 0) {
      return hn::Combine(du8, hn::Or(hn::And(b, low), hn::And(hn::ShiftLeft<2>(hb), top)),
                         hn::Or(hn::And(a, low), hn::And(hn::ShiftLeft<4>(hb), top)));
    }
    return hn::Combine(du8, hn::Or(hn::ShiftRight<4>(b), hn::And(hn::ShiftRight<2>(hb), top)),
                       hn::Or(hn::ShiftRight<4>(a), hn::And(hb, top)));
  }
};

// Rows per tile and tokens per tile: 4 x 4 accumulators plus 4 weight-code and 4 weight-scale
// vectors fit AVX-512's 32 registers; each weight vector serves 4 tokens and each activation
// vector 4 rows, which measured about 1.6x the multiply-adds per second of 1 x 1.
constexpr size_t kInt8Rows = 4;
constexpr size_t kInt8Tokens = 4;

// out[r][t] = dot(row r, token t0 + t) for kR rows (codes at rows[r], scales at s16[r], offsets
// at c16[r]) and kT tokens.
// kPremultiplied (one token only): s16 already holds s * d of the token, which saves the
// activation-scale lookup and multiply per pair in decode. The product is the same f32
// multiplication either way, so results are bit-identical.
template <class Traits, size_t kR, size_t kT, bool kPremultiplied = false>
HWY_INLINE void Int8Tile(const uint8_t* const* rows, const float* const* s16,
                         const float* const* c16, const Int8Rows& x, size_t t0, size_t units,
                         float* out, size_t out_stride, const uint8_t* next = nullptr,
                         size_t next_unit_bytes = 0) {
  const DF16 df;
  alignas(64) static constexpr int32_t kPerGroup16[16] = {0, 0, 0, 0, 1, 1, 1, 1,
                                                          2, 2, 2, 2, 3, 3, 3, 3};
  alignas(64) static constexpr int32_t kPerBlock32[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                          1, 1, 1, 1, 1, 1, 1, 1};
  const auto by_group = hn::SetTableIndices(df, kPerGroup16);
  const auto by_block = hn::SetTableIndices(df, kPerBlock32);
  hn::Vec<DF16> acc[kR][kT];
  for (size_t r = 0; r < kR; ++r) {
    for (size_t t = 0; t < kT; ++t) acc[r][t] = hn::Zero(df);
  }
  const int8_t* xq = x.q.data() + t0 * x.cols;
  const float* xd = x.d.data() + t0 * x.d_stride;
  for (size_t u = 0; u < units; ++u) {
    if (next != nullptr) {
      for (size_t b = 0; b < next_unit_bytes; b += 64)
        hwy::Prefetch(next + u * next_unit_bytes + b);
    }
    for (size_t j = 0; j < Traits::kUnitPairs; ++j) {
      const size_t p = u * Traits::kUnitPairs + j;  // pair index in the row
      hn::Vec<DU8> w[kR];
      hn::Vec<DF16> ws[kR];
      for (size_t r = 0; r < kR; ++r) {
        w[r] = Traits::Codes(rows[r] + u * Traits::kUnitBytes, j);
        ws[r] = hn::TableLookupLanes(hn::LoadU(df, s16[r] + 4 * p), by_group);
      }
      for (size_t t = 0; t < kT; ++t) {
        const auto q = hn::LoadU(DI8(), xq + t * x.cols + 64 * p);
        if constexpr (kPremultiplied) {
          static_assert(kT == 1, "scales premultiplied for one token");
          for (size_t r = 0; r < kR; ++r) {
            acc[r][t] = hn::MulAdd(hn::ConvertTo(df, DotBytes(w[r], q)), ws[r], acc[r][t]);
          }
          continue;
        }
        const auto xs = hn::TableLookupLanes(hn::LoadU(df, xd + t * x.d_stride + 2 * p), by_block);
        for (size_t r = 0; r < kR; ++r) {
          acc[r][t] =
              hn::MulAdd(hn::ConvertTo(df, DotBytes(w[r], q)), hn::Mul(ws[r], xs), acc[r][t]);
        }
      }
    }
  }
  const float* xsum = x.sum16.data() + t0 * x.s_stride;
  for (size_t r = 0; r < kR; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      auto offset = hn::Zero(df);
      for (size_t g = 0; g + 16 <= x.s_stride - 16; g += 16) {
        offset =
            hn::MulAdd(hn::LoadU(df, c16[r] + g), hn::LoadU(df, xsum + t * x.s_stride + g), offset);
      }
      out[t * out_stride + r] =
          hn::GetLane(hn::SumOfLanes(df, acc[r][t])) - hn::GetLane(hn::SumOfLanes(df, offset));
    }
  }
}

// Rows [r0, r1) of y for tokens [t0, t0 + kT), kInt8Rows at a time. s16/c16: the rows' scales
// and offsets from RowScales, x.s_stride floats per row, starting at row r0.
template <class Traits, size_t kT>
HWY_INLINE void Int8TokenTile(const WeightMatrix& w, const Int8Rows& x, size_t t0, size_t r0,
                              size_t r1, const float* s16, const float* c16, float* y) {
  const size_t row_bytes = RowBytes(w.type, w.cols), units = w.cols / Traits::kUnitValues;
  float* out = y + t0 * w.rows;
  size_t r = r0;
  for (; r + kInt8Rows <= r1; r += kInt8Rows) {
    const uint8_t* rows[kInt8Rows];
    const float* s[kInt8Rows];
    const float* c[kInt8Rows];
    for (size_t i = 0; i < kInt8Rows; ++i) {
      rows[i] = w.data + (r + i) * row_bytes;
      s[i] = s16 + (r + i - r0) * x.s_stride;
      c[i] = c16 + (r + i - r0) * x.s_stride;
    }
    Int8Tile<Traits, kInt8Rows, kT>(rows, s, c, x, t0, units, out + r, w.rows);
  }
  for (; r < r1; ++r) {
    const uint8_t* row = w.data + r * row_bytes;
    const float* s = s16 + (r - r0) * x.s_stride;
    const float* c = c16 + (r - r0) * x.s_stride;
    Int8Tile<Traits, 1, kT>(&row, &s, &c, x, t0, units, out + r, w.rows);
  }
}

// s16[g] *= d of token 0's block g / 2, for g < cols / 16 (16 groups at a time; the row's
// padding absorbs the overrun).
HWY_INLINE void PremultiplyScales(const Int8Rows& x, float* HWY_RESTRICT s16) {
  const DF16 df;
  const auto low = hn::SetTableIndices(df, kDupLow);
  for (size_t g = 0; g < x.cols / 16; g += 16) {
    const auto d = hn::TableLookupLanes(hn::LoadU(df, x.d.data() + g / 2), low);
    hn::StoreU(hn::Mul(hn::LoadU(df, s16 + g), d), df, s16 + g);
  }
}

// Rows [r0, r1) of y for one token (decode): the weights stream from DRAM once, so rows go 4 at
// a time straight from memory, with each tile's scales decoded just before its dot products,
// while the following tile is prefetched a tile ahead: the 4 rows of the next tile spread over
// this tile's units, about 9 KB (Q8_0, 2048 columns) or 0.4 us ahead at 20 GB/s, which covers
// DRAM latency. A separate scale pass over an L2-sized block of rows streamed at a third of
// this speed (gathers and short scalar loops wait on DRAM with little memory parallelism).
template <class Traits>
HWY_NOINLINE void Int8MatVecRows(const WeightMatrix& w, const Int8Rows& x, float* HWY_RESTRICT y,
                                 size_t r0, size_t r1) {
  const size_t row_bytes = RowBytes(w.type, w.cols), units = w.cols / Traits::kUnitValues;
  thread_local std::vector<float> scratch;  // [kInt8Rows][s_stride] scales, then offsets
  const size_t need = 2 * kInt8Rows * x.s_stride;
  if (scratch.size() < need) scratch.resize(need);
  float* s16 = scratch.data();
  float* c16 = s16 + kInt8Rows * x.s_stride;
  // Bytes of the next tile to prefetch per unit of this one, rounded up to cache lines.
  const size_t next_unit_bytes = (kInt8Rows * row_bytes / units + 63) / 64 * 64;
  for (size_t r = r0; r < r1;) {
    const size_t tile = r + kInt8Rows <= r1 ? kInt8Rows : 1;
    const uint8_t* rows[kInt8Rows];
    const float* s[kInt8Rows];
    const float* c[kInt8Rows];
    for (size_t i = 0; i < tile; ++i) {
      rows[i] = w.data + (r + i) * row_bytes;
      float* si = s16 + i * x.s_stride;
      float* ci = c16 + i * x.s_stride;
      Traits::RowScales(rows[i], units, si, ci);
      std::fill(ci + w.cols / 16, ci + x.s_stride, 0.0f);  // read by the offset dot
      PremultiplyScales(x, si);
      s[i] = si;
      c[i] = ci;
    }
    if (tile == kInt8Rows) {
      const uint8_t* next = r + 2 * kInt8Rows <= r1 ? rows[0] + kInt8Rows * row_bytes : nullptr;
      Int8Tile<Traits, kInt8Rows, 1, true>(rows, s, c, x, 0, units, y + r, w.rows, next,
                                           next_unit_bytes);
    } else {
      Int8Tile<Traits, 1, 1, true>(rows, s, c, x, 0, units, y + r, w.rows);
    }
    r += tile;
  }
}

// All tokens for rows [r0, r1) of y, in blocks of rows that stay in L2 across the token tiles.
// Each block's scales and offsets are decoded once into per-thread scratch.
template <class Traits>
HWY_NOINLINE void Int8MatMulRows(const WeightMatrix& w, const Int8Rows& x, size_t n,
                                 float* HWY_RESTRICT y, size_t r0, size_t r1,
                                 size_t weight_block_bytes) {
  if (n == 1) return Int8MatVecRows<Traits>(w, x, y, r0, r1);
  const size_t row_bytes = RowBytes(w.type, w.cols), units = w.cols / Traits::kUnitValues;
  size_t block_rows = std::max<size_t>(kInt8Rows, weight_block_bytes / row_bytes);
  block_rows = block_rows / kInt8Rows * kInt8Rows;
  // [block_rows][s_stride] scales, then as many offsets. Per thread, grown once.
  thread_local std::vector<float> scratch;
  const size_t need = 2 * block_rows * x.s_stride;
  if (scratch.size() < need) scratch.resize(need);
  float* s16 = scratch.data();
  float* c16 = s16 + block_rows * x.s_stride;
  for (size_t rb = r0; rb < r1; rb += block_rows) {
    const size_t re = std::min(r1, rb + block_rows);
    for (size_t r = rb; r < re; ++r) {
      float* s = s16 + (r - rb) * x.s_stride;
      float* c = c16 + (r - rb) * x.s_stride;
      Traits::RowScales(w.data + r * row_bytes, units, s, c);
      std::fill(c + w.cols / 16, c + x.s_stride, 0.0f);  // read by the offset dot
    }
    size_t t = 0;
    for (; t + kInt8Tokens <= n; t += kInt8Tokens) {
      Int8TokenTile<Traits, kInt8Tokens>(w, x, t, rb, re, s16, c16, y);
    }
    switch (n - t) {
      case 3:
        Int8TokenTile<Traits, 3>(w, x, t, rb, re, s16, c16, y);
        break;
      case 2:
        Int8TokenTile<Traits, 2>(w, x, t, rb, re, s16, c16, y);
        break;
      case 1:
        Int8TokenTile<Traits, 1>(w, x, t, rb, re, s16, c16, y);
        break;
      default:
        break;
    }
  }
}

// Calls fn(Int8Traits()) for `type`. REQUIRES: UsesInt8Path(type, cols).
template <class Fn>
HWY_INLINE void WithInt8Traits(WeightType type, const Fn& fn) {
  switch (type) {
    case WeightType::kQ8_0:
      return fn(Int8TraitsQ8_0());
    case WeightType::kQ4_0:
      return fn(Int8TraitsQ4_0());
    case WeightType::kQ4_K:
      return fn(Int8TraitsQ4_K());
    case WeightType::kQ6_K:
      return fn(Int8TraitsQ6_K());
    default:
      return;
  }
}

#endif  // HWY_TARGET == HWY_AVX3_DL

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace llms
HWY_AFTER_NAMESPACE();

#endif  // LLMS_KERNELS_MATMUL_INT8_INL_H_
