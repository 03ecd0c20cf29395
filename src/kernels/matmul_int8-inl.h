// Int8 dot-product path of matmul-inl.h for the quantized weight types (Q8_0, Q4_0, Q4_K, Q6_K)
// on AVX-512 VNNI (Highway's AVX3_DL target). The f32 path decodes every weight to f32 and is
// bound by FMA throughput in prefill (16 multiply-adds per instruction) and by the decode
// arithmetic in Q4 decode. Here activations are quantized to int8 once per call, 32 values per
// scale (ggml's Q8_0 activations), and one VPDPBUSD does 64 byte multiply-adds; the weights'
// integer codes go into it unconverted. Other targets keep the f32 path (kHaveInt8Dot false).
//
// Per 64-value "pair" p of a row and a token, with weight codes u (unsigned bytes), the kernel
// adds cvt(sum_4 (u - k) * q) * (s * d) lane-wise: lane i covers values 4i..4i+3, its weight
// scale s is that of the 16-value group 4i / 16 and its activation scale d that of the 32-block
// 4i / 32. Every type's value is s * (u - k) - c: Q8_0 stores code + 128 (k = 128), Q4_0 has
// k = 8, Q6_K k = 32, and Q4_K k = 0 with a float offset c = dmin * m per sub-block. The integer
// offset is exact: the dot product starts from -k * (sum of the 4 q), precomputed per token.
// Q4_K's offset is one FMA per block with the token's per-sub-block sums d * sum(q). Scales are
// decoded from each block as the block is read (no separate pass, which waits on DRAM).
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

#include "formats/float16.h"
#include "formats/weight_types.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_AVX3_DL
constexpr bool kHaveInt8Dot = true;
// AVX3_DL is Ice Lake's feature set, which includes AVX512-VNNI and VBMI, but Highway 1.0.3's
// target string does not name VNNI, so the CPU is asked once rather than trusted.
HWY_INLINE bool CpuHasInt8Dot() {
  static const bool has =
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
  return has;
}
#else
constexpr bool kHaveInt8Dot = false;
HWY_INLINE bool CpuHasInt8Dot() { return false; }
#endif

// Narrower matrices keep the f32 path. Their products take microseconds either way, and with
// f32 activations a quantized model's error is all in its weights, which the small synthetic
// test models (width 256 and 768) check against their dequantized F32 twins to 1e-4
// (synthetic_model_test); int8 activations add about 1/254 relative per matrix. Real models are
// 2048 (TinyLlama) to 8192 wide.
constexpr size_t kInt8MinCols = 1024;

// True if this target multiplies `type` with int8 activations (see the header comment).
// Q8_0/Q4_0 rows are walked in pairs of blocks, so their width must be a multiple of 64.
HWY_INLINE bool UsesInt8Path(WeightType type, size_t cols) {
  if (!kHaveInt8Dot || cols < kInt8MinCols || !CpuHasInt8Dot()) return false;
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

// n rows of activations quantized per 32 values: x[t][i] ~= d[t][i / 32] * q[t][i], plus the
// per-type offset terms. Grown, never shrunk: a caller that keeps one stops allocating once it
// has seen its largest batch.
struct Int8Rows {
  size_t cols = 0;
  size_t d_stride = 0;         // floats per row of d: cols / 32, + 16 so 16-lane loads stay inside
  std::vector<int8_t> q;       // [n][cols]
  std::vector<float> d;        // [n][d_stride]
  std::vector<int32_t> start;  // [n][cols / 4]: -k * (sum of q[4i..4i+3]), k the type's offset
  std::vector<float> ksum;     // [n][cols / 16]: per 256 values, 8 zeros then d * sum(q) of each
                               // 32-value sub-block (Q4_K's float offsets); else empty
};

#if HWY_TARGET == HWY_AVX3_DL

using DF16 = hn::Full512<float>;
using DI32 = hn::Full512<int32_t>;
using DU8 = hn::Full512<uint8_t>;
using DI8 = hn::Full512<int8_t>;
using DU8H = hn::Full256<uint8_t>;

// acc_i + sum over j < 4 of w[4i + j] * x[4i + j], unsigned times signed bytes (VPDPBUSD).
// Highway 1.0.3 has no op for it, and its AVX3_DL target string lacks avx512vnni, so the
// intrinsic would not compile here: inline assembly is the one way in.
HWY_INLINE hn::Vec<DI32> DotBytes(hn::Vec<DI32> acc, hn::Vec<DU8> w, hn::Vec<DI8> x) {
  __m512i r = acc.raw;
  asm("vpdpbusd %2, %1, %0" : "+v"(r) : "v"(w.raw), "vm"(x.raw));
  return hn::Vec<DI32>{r};
}

// Quantizes row x (cols floats, cols % 32 == 0) like QuantizeActivationsRef (weight_ref.h): the
// same float operations, so the codes are identical. k: the weight type's integer code offset;
// ksum: null unless the type has float offsets.
HWY_INLINE void QuantizeInt8Row(const float* HWY_RESTRICT x, size_t cols, int k,
                                int8_t* HWY_RESTRICT q, float* HWY_RESTRICT d,
                                int32_t* HWY_RESTRICT start, float* HWY_RESTRICT ksum) {
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
    if (ksum != nullptr) {
      const int32_t sum = hn::GetLane(hn::SumOfLanes(di, hn::Add(i0, i1)));
      ksum[16 * (b / 8) + b % 8] = 0.0f;
      ksum[16 * (b / 8) + 8 + b % 8] = scale * static_cast<float>(sum);
    }
  }
  for (size_t p = 0; p < cols / 64; ++p) {
    const auto sums = DotBytes(hn::Zero(di), hn::Set(DU8(), static_cast<uint8_t>(k)),
                               hn::LoadU(DI8(), q + 64 * p));
    hn::StoreU(hn::Neg(sums), di, start + 16 * p);
  }
}

// Sizes `out` for n rows of `cols` and quantizes them for a type with code offset k.
HWY_INLINE void QuantizeInt8Rows(const float* HWY_RESTRICT x, size_t n, size_t cols, int k,
                                 bool float_offsets, Int8Rows* out) {
  out->cols = cols;
  out->d_stride = cols / 32 + 16;
  if (out->q.size() < n * cols) out->q.resize(n * cols);
  if (out->d.size() < n * out->d_stride) out->d.resize(n * out->d_stride);
  if (out->start.size() < n * cols / 4) out->start.resize(n * cols / 4);
  if (float_offsets && out->ksum.size() < n * cols / 16) out->ksum.resize(n * cols / 16);
  for (size_t t = 0; t < n; ++t) {
    QuantizeInt8Row(x + t * cols, cols, k, out->q.data() + t * cols,
                    out->d.data() + t * out->d_stride, out->start.data() + t * cols / 4,
                    float_offsets ? out->ksum.data() + t * cols / 16 : nullptr);
  }
}

// Words idx[0] (lanes 0-7) and idx[1] (lanes 8-15) of v, taken as f16 and widened: the two
// block scales of a pair. VPERMW (AVX512BW) has no Highway 1.0.3 op for 16-bit lanes.
HWY_INLINE hn::Vec<DF16> PairScales(hn::Vec<DU8> v, int word0, int word1) {
  const __m512i idx = _mm512_set1_epi16(static_cast<int16_t>(word0));
  const __m512i idx2 =
      _mm512_mask_set1_epi16(idx, 0xFF00u, static_cast<int16_t>(word1));  // lanes 8-15
  const __m512i words = _mm512_permutexvar_epi16(idx2, v.raw);
  return hn::Vec<DF16>{_mm512_cvtph_ps(_mm512_castsi512_si256(words))};
}

// Per byte, the low nibble, or the high one in the selected 128-bit (Q4_0) or 256-bit (Q4_K)
// blocks: VPMULTISHIFTQB (VBMI) takes each output byte from any bit offset of its qword, so a
// shift, a mask and a blend become one shift-select and one mask.
HWY_INLINE hn::Vec<DU8> LowOrHighNibbles(__m512i bytes, bool high_in_odd_blocks) {
  // Bit offsets 0, 8, .., 56 select byte j of the qword; + 4 its high nibble.
  constexpr int64_t kLow = 0x3830282018100800, kHigh = 0x3c342c241c140c04;
  const __m512i offsets =
      high_in_odd_blocks ? _mm512_set_epi64(kHigh, kHigh, kLow, kLow, kHigh, kHigh, kLow, kLow)
                         : _mm512_set_epi64(kHigh, kHigh, kHigh, kHigh, kLow, kLow, kLow, kLow);
  const hn::Vec<DU8> picked{_mm512_multishift_epi64_epi8(offsets, bytes)};
  return hn::And(picked, hn::Set(DU8(), 0x0F));
}

// ---- Int8 traits: one per storage type ----
//
// Each provides kUnitValues / kUnitBytes (one block, or two for the 32-value types so that a
// unit is whole pairs), kUnitPairs = kUnitValues / 64, kCodeOffset (k), kFloatOffsets, and
//   State Load(unit): what a unit's pairs share (K-quants: its decoded scales);
//   Pair(unit, state, j, &codes, &scales): pair j's unsigned codes u (values 64j..64j+63 of the
//     unit, in value order) and per-lane weight scales s;
//   (kFloatOffsets) Offsets(state): lanes 8-15 the unit's 8 sub-block offsets c, lanes 0-7 any.

struct NoState {};

struct Int8TraitsQ8_0 {
  static constexpr size_t kUnitValues = 64, kUnitBytes = 2 * sizeof(BlockQ8_0), kUnitPairs = 1;
  static constexpr int kCodeOffset = 128;
  static constexpr bool kFloatOffsets = false;
  using State = NoState;
  static HWY_INLINE State Load(const uint8_t*) { return {}; }
  static HWY_INLINE void Pair(const uint8_t* HWY_RESTRICT u, State, size_t, hn::Vec<DU8>* codes,
                              hn::Vec<DF16>* scales) {
    static_assert(offsetof(BlockQ8_0, d) == 0 && sizeof(BlockQ8_0) == 34, "scale words 0, 17");
    const DU8 du8;
    const DU8H dh;
    const uint8_t* q0 = u + offsetof(BlockQ8_0, qs);
    const auto v = hn::Combine(du8, hn::LoadU(dh, q0 + sizeof(BlockQ8_0)), hn::LoadU(dh, q0));
    *codes = hn::Xor(v, hn::Set(du8, 0x80));         // code + 128: int8 to unsigned
    *scales = PairScales(hn::LoadU(du8, u), 0, 17);  // 64 of the unit's 68 bytes
  }
};

struct Int8TraitsQ4_0 {
  static constexpr size_t kUnitValues = 64, kUnitBytes = 2 * sizeof(BlockQ4_0), kUnitPairs = 1;
  static constexpr int kCodeOffset = 8;
  static constexpr bool kFloatOffsets = false;
  using State = NoState;
  static HWY_INLINE State Load(const uint8_t*) { return {}; }
  // Both blocks in one masked load (36 bytes; the mask keeps the read inside the row). Block
  // bytes i hold values i (low nibble) and i + 16 (high): VPERMB spreads each block's 16 bytes
  // over two 128-bit lanes, which then keep the low or the high nibble: [lo0 hi0 lo1 hi1].
  static HWY_INLINE void Pair(const uint8_t* HWY_RESTRICT u, State, size_t, hn::Vec<DU8>* codes,
                              hn::Vec<DF16>* scales) {
    static_assert(offsetof(BlockQ4_0, d) == 0 && sizeof(BlockQ4_0) == 18, "scale words 0, 9");
    const DU8 du8;
    const auto v = hn::MaskedLoad(hn::FirstN(du8, kUnitBytes), du8, u);
    alignas(64) static constexpr uint8_t kSpread[64] = {
        2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 2,  3,  4,  5,  6,  7,
        8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 33, 34, 35, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};
    const __m512i both = _mm512_permutexvar_epi8(hn::Load(du8, kSpread).raw, v.raw);
    *codes = LowOrHighNibbles(both, /*high_in_odd_blocks=*/true);
    *scales = PairScales(v, 0, 9);
  }
};

struct Int8TraitsQ4_K {
  static constexpr size_t kUnitValues = kQK_K, kUnitBytes = sizeof(BlockQ4_K), kUnitPairs = 4;
  static constexpr int kCodeOffset = 0;
  static constexpr bool kFloatOffsets = true;
  struct State {
    hn::Vec<DF16> v;  // [d * sc_0..7 | dmin * m_0..7]
  };
  // The 6-bit sc and m of the 8 sub-blocks unpacked with 32-bit masks (ggml's utmp trick, the
  // same values as GetScaleMinK4) into bytes sc0..sc7 m0..m7, then widened and scaled at once.
  static HWY_INLINE State Load(const uint8_t* HWY_RESTRICT u) {
    const DF16 df;
    constexpr uint32_t kMask6 = 0x3f3f3f3f, kMask4 = 0x0f0f0f0f, kMask2 = 0x03030303;
    uint32_t w[4];
    std::memcpy(w, u + offsetof(BlockQ4_K, scales), kKScaleBytes);
    w[3] = ((w[2] >> 4) & kMask4) | (((w[1] >> 6) & kMask2) << 4);
    const uint32_t m_low = w[1] & kMask6;
    w[1] = (w[2] & kMask4) | (((w[0] >> 6) & kMask2) << 4);
    w[2] = m_low;
    w[0] &= kMask6;
    const auto scale =
        hn::IfThenElse(hn::FirstN(df, 8), hn::Set(df, LoadF16Scale(u + offsetof(BlockQ4_K, d))),
                       hn::Set(df, LoadF16Scale(u + offsetof(BlockQ4_K, dmin))));
    const auto codes =
        hn::PromoteTo(DI32(), hn::LoadU(hn::Full128<uint8_t>(), reinterpret_cast<uint8_t*>(w)));
    return {hn::Mul(scale, hn::ConvertTo(df, codes))};
  }
  // Pair j: 32 bytes whose low nibbles are values 64j..64j+31 and high nibbles the next 32.
  static HWY_INLINE void Pair(const uint8_t* HWY_RESTRICT u, const State& st, size_t j,
                              hn::Vec<DU8>* codes, hn::Vec<DF16>* scales) {
    const DF16 df;
    alignas(64) static constexpr int32_t kLanes[4][16] = {
        {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
        {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
        {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
        {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}};
    const __m512i q = _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + offsetof(BlockQ4_K, qs) + 32 * j)));
    *codes = LowOrHighNibbles(q, /*high_in_odd_blocks=*/false);
    *scales = hn::TableLookupLanes(st.v, hn::SetTableIndices(df, kLanes[j]));
  }
  static HWY_INLINE hn::Vec<DF16> Offsets(const State& st) { return st.v; }
};

struct Int8TraitsQ6_K {
  static constexpr size_t kUnitValues = kQK_K, kUnitBytes = sizeof(BlockQ6_K), kUnitPairs = 4;
  static constexpr int kCodeOffset = 32;
  static constexpr bool kFloatOffsets = false;
  struct State {
    hn::Vec<DF16> s;  // d * scales[0..15], one per 16 values
  };
  static HWY_INLINE State Load(const uint8_t* HWY_RESTRICT u) {
    const DF16 df;
    const auto sc = hn::PromoteTo(
        DI32(), hn::LoadU(hn::Full128<int8_t>(),
                          reinterpret_cast<const int8_t*>(u + offsetof(BlockQ6_K, scales))));
    return {hn::Mul(hn::Set(df, LoadF16Scale(u + offsetof(BlockQ6_K, d))), hn::ConvertTo(df, sc))};
  }
  // Pair j covers values 64j..64j+63: half h = j / 2 of the block, quarter pair j % 2 (layout
  // in WeightTraitsQ6_K::DecodeBlock). Codes are the unsigned 6-bit q.
  static HWY_INLINE void Pair(const uint8_t* HWY_RESTRICT u, const State& st, size_t j,
                              hn::Vec<DU8>* codes, hn::Vec<DF16>* scales) {
    const DF16 df;
    const DU8 du8;
    const DU8H dh;
    alignas(64) static constexpr int32_t kLanes[4][16] = {
        {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3},
        {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7},
        {8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11},
        {12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15}};
    const size_t h = j / 2;
    const auto a = hn::LoadU(dh, u + offsetof(BlockQ6_K, ql) + 64 * h);
    const auto b = hn::LoadU(dh, u + offsetof(BlockQ6_K, ql) + 64 * h + 32);
    const auto hb = hn::LoadU(dh, u + offsetof(BlockQ6_K, qh) + 32 * h);
    const auto low = hn::Set(dh, 0x0F), top = hn::Set(dh, 0x30);
    if (j % 2 == 0) {
      *codes = hn::Combine(du8, hn::Or(hn::And(b, low), hn::And(hn::ShiftLeft<2>(hb), top)),
                           hn::Or(hn::And(a, low), hn::And(hn::ShiftLeft<4>(hb), top)));
    } else {
      *codes = hn::Combine(du8, hn::Or(hn::ShiftRight<4>(b), hn::And(hn::ShiftRight<2>(hb), top)),
                           hn::Or(hn::ShiftRight<4>(a), hn::And(hb, top)));
    }
    *scales = hn::TableLookupLanes(st.s, hn::SetTableIndices(df, kLanes[j]));
  }
};

// Rows per tile and tokens per tile: 4 x 4 accumulators plus 4 weight-code and 4 weight-scale
// vectors fit AVX-512's 32 registers; each weight vector serves 4 tokens and each activation
// vector 4 rows, which measured about 1.6x the multiply-adds per second of 1 x 1.
constexpr size_t kInt8Rows = 4;
constexpr size_t kInt8Tokens = 4;

// out[t * out_stride + r] = dot(row r, token t0 + t) for kR rows starting at `rows` (row_bytes
// apart) and kT tokens. If `next` is set, it is prefetched spread over the units, next_unit_bytes
// per unit (decode streams weights from DRAM once).
template <class Traits, size_t kR, size_t kT>
HWY_INLINE void Int8Tile(const uint8_t* HWY_RESTRICT rows, size_t row_bytes, const Int8Rows& x,
                         size_t t0, size_t units, float* HWY_RESTRICT out, size_t out_stride,
                         const uint8_t* next = nullptr, size_t next_unit_bytes = 0) {
  const DF16 df;
  const DI32 di;
  alignas(64) static constexpr int32_t kPerBlock32[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                          1, 1, 1, 1, 1, 1, 1, 1};
  const auto by_block = hn::SetTableIndices(df, kPerBlock32);
  hn::Vec<DF16> acc[kR][kT];
  for (size_t r = 0; r < kR; ++r) {
    for (size_t t = 0; t < kT; ++t) acc[r][t] = hn::Zero(df);
  }
  const int8_t* xq = x.q.data() + t0 * x.cols;
  const float* xd = x.d.data() + t0 * x.d_stride;
  const int32_t* xstart = x.start.data() + t0 * x.cols / 4;
  for (size_t u = 0; u < units; ++u) {
    if (next != nullptr) {
      for (size_t b = 0; b < next_unit_bytes; b += 64) {
        hwy::Prefetch(next + u * next_unit_bytes + b);
      }
    }
    typename Traits::State st[kR];
    for (size_t r = 0; r < kR; ++r)
      st[r] = Traits::Load(rows + r * row_bytes + u * Traits::kUnitBytes);
    for (size_t j = 0; j < Traits::kUnitPairs; ++j) {
      const size_t p = u * Traits::kUnitPairs + j;  // pair index in the row
      hn::Vec<DU8> w[kR];
      hn::Vec<DF16> ws[kR];
      for (size_t r = 0; r < kR; ++r) {
        Traits::Pair(rows + r * row_bytes + u * Traits::kUnitBytes, st[r], j, &w[r], &ws[r]);
      }
      for (size_t t = 0; t < kT; ++t) {
        const auto q = hn::LoadU(DI8(), xq + t * x.cols + 64 * p);
        const auto xs = hn::TableLookupLanes(hn::LoadU(df, xd + t * x.d_stride + 2 * p), by_block);
        for (size_t r = 0; r < kR; ++r) {
          const auto init = Traits::kCodeOffset != 0
                                ? hn::LoadU(di, xstart + t * x.cols / 4 + 16 * p)
                                : hn::Zero(di);
          acc[r][t] =
              hn::MulAdd(hn::ConvertTo(df, DotBytes(init, w[r], q)), hn::Mul(ws[r], xs), acc[r][t]);
        }
      }
    }
    if constexpr (Traits::kFloatOffsets) {
      for (size_t t = 0; t < kT; ++t) {
        const auto ks = hn::LoadU(df, x.ksum.data() + (t0 + t) * x.cols / 16 + 16 * u);
        for (size_t r = 0; r < kR; ++r) {
          acc[r][t] = hn::NegMulAdd(Traits::Offsets(st[r]), ks, acc[r][t]);
        }
      }
    }
  }
  for (size_t r = 0; r < kR; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      out[t * out_stride + r] = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
    }
  }
}

// Rows [r0, r1) of y for tokens [t0, t0 + kT), kInt8Rows at a time.
template <class Traits, size_t kT>
HWY_INLINE void Int8TokenTile(const WeightMatrix& w, const Int8Rows& x, size_t t0, size_t r0,
                              size_t r1, float* y) {
  const size_t row_bytes = RowBytes(w.type, w.cols), units = w.cols / Traits::kUnitValues;
  float* out = y + t0 * w.rows;
  size_t r = r0;
  for (; r + kInt8Rows <= r1; r += kInt8Rows) {
    Int8Tile<Traits, kInt8Rows, kT>(w.data + r * row_bytes, row_bytes, x, t0, units, out + r,
                                    w.rows);
  }
  for (; r < r1; ++r) {
    Int8Tile<Traits, 1, kT>(w.data + r * row_bytes, row_bytes, x, t0, units, out + r, w.rows);
  }
}

// Rows [r0, r1) of y for one token (decode): the weights stream from DRAM once, 4 rows at a
// time, while the next 4 rows are prefetched spread over this tile's units: about 9 KB (Q8_0,
// 2048 columns) or 0.4 us ahead at 20 GB/s, which covers DRAM latency.
template <class Traits>
HWY_NOINLINE void Int8MatVecRows(const WeightMatrix& w, const Int8Rows& x, float* HWY_RESTRICT y,
                                 size_t r0, size_t r1) {
  const size_t row_bytes = RowBytes(w.type, w.cols), units = w.cols / Traits::kUnitValues;
  // Bytes of the next tile to prefetch per unit of this one, rounded up to cache lines.
  const size_t next_unit_bytes = (kInt8Rows * row_bytes / units + 63) / 64 * 64;
  size_t r = r0;
  for (; r + kInt8Rows <= r1; r += kInt8Rows) {
    const uint8_t* rows = w.data + r * row_bytes;
    const uint8_t* next = r + 2 * kInt8Rows <= r1 ? rows + kInt8Rows * row_bytes : nullptr;
    Int8Tile<Traits, kInt8Rows, 1>(rows, row_bytes, x, 0, units, y + r, w.rows, next,
                                   next_unit_bytes);
  }
  for (; r < r1; ++r)
    Int8Tile<Traits, 1, 1>(w.data + r * row_bytes, row_bytes, x, 0, units, y + r, w.rows);
}

// All tokens for rows [r0, r1) of y, in blocks of rows that stay in L2 across the token tiles.
template <class Traits>
HWY_NOINLINE void Int8MatMulRows(const WeightMatrix& w, const Int8Rows& x, size_t n,
                                 float* HWY_RESTRICT y, size_t r0, size_t r1,
                                 size_t weight_block_bytes) {
  if (n == 1) return Int8MatVecRows<Traits>(w, x, y, r0, r1);
  const size_t row_bytes = RowBytes(w.type, w.cols);
  size_t block_rows = std::max<size_t>(kInt8Rows, weight_block_bytes / row_bytes);
  block_rows = block_rows / kInt8Rows * kInt8Rows;
  for (size_t rb = r0; rb < r1; rb += block_rows) {
    const size_t re = std::min(r1, rb + block_rows);
    size_t t = 0;
    for (; t + kInt8Tokens <= n; t += kInt8Tokens) {
      Int8TokenTile<Traits, kInt8Tokens>(w, x, t, rb, re, y);
    }
    switch (n - t) {
      case 3:
        Int8TokenTile<Traits, 3>(w, x, t, rb, re, y);
        break;
      case 2:
        Int8TokenTile<Traits, 2>(w, x, t, rb, re, y);
        break;
      case 1:
        Int8TokenTile<Traits, 1>(w, x, t, rb, re, y);
        break;
      default:
        break;
    }
  }
}

// Quantizes x for w's type and calls fn(Int8Traits()). REQUIRES: UsesInt8Path(w.type, w.cols).
template <class Fn>
HWY_INLINE void WithInt8Traits(const WeightMatrix& w, const float* x, size_t n, Int8Rows* xq,
                               const Fn& fn) {
  auto run = [&](auto traits) HWY_ATTR {
    using Traits = decltype(traits);
    QuantizeInt8Rows(x, n, w.cols, Traits::kCodeOffset, Traits::kFloatOffsets, xq);
    fn(traits);
  };
  switch (w.type) {
    case WeightType::kQ8_0:
      return run(Int8TraitsQ8_0());
    case WeightType::kQ4_0:
      return run(Int8TraitsQ4_0());
    case WeightType::kQ4_K:
      return run(Int8TraitsQ4_K());
    case WeightType::kQ6_K:
      return run(Int8TraitsQ6_K());
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
