// Per-target implementation of attention.h (Highway toggle-guarded include).
#if defined(LLMS_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LLMS_KERNELS_ATTENTION_INL_H_
#undef LLMS_KERNELS_ATTENTION_INL_H_
#else
#define LLMS_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "formats/float16.h"
#include "formats/kv_quant.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/attention.h"
#include "kernels/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Values of a packed run (f16 or intN, layout in kv_format.h) from index `first`, one vector's
// worth, as floats: scale * q + min for the int levels (FMA; the reference rounds twice, which
// differs by an ulp at most). REQUIRES: first is a multiple of Lanes(df) (so with 4 lanes or
// more, intN values start at a byte boundary) and the run holds first + Lanes(df) values.
template <class DF>
HWY_INLINE hn::Vec<DF> DecodeRun(DF df, KvLevel level, const uint8_t* HWY_RESTRICT run,
                                 size_t first, float scale, float minv) {
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<uint8_t, DF> d8;
  hn::Vec<decltype(d8)> codes;
  if (level != KvLevel::kF16 && hn::Lanes(df) < 4) {
    // The scalar target: one value per vector, which may start mid-byte.
    const auto code = static_cast<float>(UnpackValue(run, first, KvLevelBits(level)));
    return hn::MulAdd(hn::Set(df, scale), hn::Set(df, code), hn::Set(df, minv));
  }
  switch (level) {
    case KvLevel::kF16: {
      const hn::Rebind<hwy::float16_t, DF> dh;
      return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(run) + first));
    }
    case KvLevel::kInt8:
      codes = hn::LoadU(d8, run + first);
      break;
    case KvLevel::kInt4: {
      // Each byte's two values (low nibble first) moved into the two bytes of a u16 lane.
      const hn::Half<DF> dhalf;
      const hn::Rebind<uint16_t, decltype(dhalf)> d16;
      const auto w =
          hn::PromoteTo(d16, hn::LoadU(hn::Rebind<uint8_t, decltype(dhalf)>(), run + first / 2));
      codes = hn::BitCast(
          d8, hn::Or(hn::And(w, hn::Set(d16, 0x0F)), hn::ShiftLeft<8>(hn::ShiftRight<4>(w))));
      break;
    }
    case KvLevel::kInt2: {
      // Each byte's four values (low bits first) moved into the four bytes of a u32 lane.
      const hn::Half<hn::Half<DF>> dq;
      const hn::Rebind<uint32_t, decltype(dq)> d32;
      const auto w =
          hn::PromoteTo(d32, hn::LoadU(hn::Rebind<uint8_t, decltype(dq)>(), run + first / 4));
      const auto m = hn::Set(d32, 3);
      codes = hn::BitCast(
          d8, hn::Or(hn::Or(hn::And(w, m), hn::ShiftLeft<8>(hn::And(hn::ShiftRight<2>(w), m))),
                     hn::Or(hn::ShiftLeft<16>(hn::And(hn::ShiftRight<4>(w), m)),
                            hn::ShiftLeft<24>(hn::ShiftRight<6>(w)))));
      break;
    }
  }
  return hn::MulAdd(hn::Set(df, scale), hn::ConvertTo(df, hn::PromoteTo(di, codes)),
                    hn::Set(df, minv));
}

// On 16-lane targets int4 and int2 runs decode by table lookup: a vector's 16 codes are one
// 64-bit (int4) or 32-bit (int2) word, broadcast to every lane and shifted so that each lane's
// code sits in its low bits; one permute then picks scale * code + min from a 16-entry table.
// That is 3 operations a vector where widening bytes to floats costs 8 or more, and the table's
// entries are the same FMA as DecodeRun's, so the results are bitwise equal. A 64-bit lane can
// shift its word only as a whole, so the int4 lanes come out in the order 0, 8, 1, 9, ..., 7,
// 15 ("int4 order"); accumulators are permuted to and from it.
template <class DF>
constexpr bool kLookupDecode = !HWY_HAVE_SCALABLE && hn::MaxLanes(DF()) == 16;

HWY_INLINE bool IsLookupLevel(KvLevel level) {
  return level == KvLevel::kInt4 || level == KvLevel::kInt2;
}

// Lane i of the result holds lane order[i] of v, order[i] = i / 2 + 8 * (i % 2).
template <class DF>
HWY_INLINE hn::Vec<DF> ToInt4Order(DF df, hn::Vec<DF> v) {
  alignas(64) static constexpr int32_t kOrder[16] = {0, 8,  1, 9,  2, 10, 3, 11,
                                                     4, 12, 5, 13, 6, 14, 7, 15};
  return hn::TableLookupLanes(v, hn::SetTableIndices(df, kOrder));
}

template <class DF>
HWY_INLINE hn::Vec<DF> FromInt4Order(DF df, hn::Vec<DF> v) {
  alignas(64) static constexpr int32_t kInverse[16] = {0, 2, 4, 6, 8, 10, 12, 14,
                                                       1, 3, 5, 7, 9, 11, 13, 15};
  return hn::TableLookupLanes(v, hn::SetTableIndices(df, kInverse));
}

// The 16 values a lane's low 4 bits select: scale * i + min for int4 and scale * (i & 3) + min
// for int2, whose code is only the low 2 of those bits.
template <class DF>
HWY_INLINE hn::Vec<DF> CodeTable(DF df, KvLevel level, float scale, float minv) {
  const hn::RebindToSigned<DF> di;
  const auto codes =
      level == KvLevel::kInt4 ? hn::Iota(di, 0) : hn::And(hn::Iota(di, 0), hn::Set(di, 3));
  return hn::MulAdd(hn::Set(df, scale), hn::ConvertTo(df, codes), hn::Set(df, minv));
}

// The 16 values of an int4 or int2 run from index `first` (a multiple of 16), int4 in int4 order.
template <class DF>
HWY_INLINE hn::Vec<DF> LookupRun(DF df, KvLevel level, const uint8_t* HWY_RESTRICT run,
                                 size_t first, hn::Vec<DF> table) {
  const hn::RebindToUnsigned<DF> du;
  hn::Vec<decltype(du)> fields;
  if (level == KvLevel::kInt4) {
    const hn::Repartition<uint64_t, DF> d64;
    uint64_t word;
    std::memcpy(&word, run + first / 2, sizeof(word));
    fields = hn::BitCast(du, hn::Set(d64, word) >> hn::ShiftLeft<2>(hn::Iota(d64, 0)));
  } else {
    uint32_t word;
    std::memcpy(&word, run + first / 4, sizeof(word));
    fields = hn::Set(du, word) >> hn::ShiftLeft<1>(hn::Iota(du, 0));
  }
  const auto index = hn::BitCast(hn::RebindToSigned<DF>(), hn::And(fields, hn::Set(du, 15)));
  return hn::TableLookupLanes(table, hn::IndicesFromVec(df, index));
}

// Widens `n` f16 values (QuantParams fields: scale, min, scale, min, ...) at p to floats, with
// the target's conversion: one instruction per vector where the scalar F16ToF32 branches per value.
HWY_INLINE void DecodeParamsF32(const uint8_t* HWY_RESTRICT p, size_t n, float* HWY_RESTRICT out) {
  const hn::CappedTag<float, 16> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const auto* h = reinterpret_cast<const hwy::float16_t*>(p);
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, out + i);
  for (; i < n; ++i) {
    uint16_t bits;
    std::memcpy(&bits, p + 2 * i, 2);
    out[i] = F16ToF32(bits);
  }
}

// scores[r][start + t] = scale * q_r . k_t for kR query heads of the group (q: their rows),
// tokens [t0, t0 + Lanes) of the chunk, clipped to `valid`. One vector of tokens per
// accumulator: each decoded key vector (one channel, Lanes tokens) serves all kR heads, so the
// decode is paid once per n_rep FMAs.
// kLookup: the chunk's level is int4 or int2 and the target decodes them with LookupRun.
template <size_t kR, bool kLookup, class DF>
HWY_INLINE void ScoresBlock(DF df, const AttentionArgs& a, const KvChunkRef& c, size_t t0,
                            size_t valid, const float* HWY_RESTRICT q, float* HWY_RESTRICT scores,
                            size_t score_stride, const float* HWY_RESTRICT kparams) {
  const KvLayout& L = *a.layout;
  const size_t N = hn::Lanes(df), T = L.chunk_tokens, D = L.head_dim;
  const size_t run_bytes = T * static_cast<size_t>(KvLevelBits(c.level)) / 8;
  const uint8_t* kvals = c.slice + L.KValuesOffset(c.level);
  hn::Vec<DF> acc[kR];
  for (size_t r = 0; r < kR; ++r) acc[r] = hn::Zero(df);
  for (size_t d = 0; d < D; ++d) {
    const uint8_t* run = kvals + (a.kv_head * D + d) * run_bytes;
    hn::Vec<DF> k;
    if constexpr (kLookup) {
      k = LookupRun(df, c.level, run, t0,
                    CodeTable(df, c.level, kparams[2 * d], kparams[2 * d + 1]));
    } else {
      k = DecodeRun(df, c.level, run, t0, kparams[2 * d], kparams[2 * d + 1]);
    }
    for (size_t r = 0; r < kR; ++r) acc[r] = hn::MulAdd(hn::Set(df, q[r * D + d]), k, acc[r]);
  }
  if constexpr (kLookup) {
    if (c.level == KvLevel::kInt4) {
      for (size_t r = 0; r < kR; ++r) acc[r] = FromInt4Order(df, acc[r]);
    }
  }
  const size_t n = std::min(N, valid - t0);
  HWY_ALIGN float block[16];  // N <= 16
  for (size_t r = 0; r < kR; ++r) {
    float* dst = scores + r * score_stride + c.start_pos + t0;
    const auto v = hn::Mul(acc[r], hn::Set(df, a.scale));
    if (n == N) {
      hn::StoreU(v, df, dst);
    } else {
      hn::Store(v, df, block);
      std::copy(block, block + n, dst);
    }
  }
}

// out[r][d0, d0 + Lanes) += sum_t p[r][start + t] * v_t over the chunk's first `valid` tokens,
// for kR heads. Each decoded value vector serves all kR heads.
template <size_t kR, bool kLookup, class DF>
HWY_INLINE void ValuesBlock(DF df, const AttentionArgs& a, const KvChunkRef& c, size_t d0,
                            size_t valid, const float* HWY_RESTRICT probs, size_t prob_stride,
                            float* HWY_RESTRICT out, const float* HWY_RESTRICT vparams) {
  const KvLayout& L = *a.layout;
  const size_t D = L.head_dim, W = L.width(), group = L.v_group(), groups = W / group;
  const size_t bits = static_cast<size_t>(KvLevelBits(c.level));
  const uint8_t* vvals = c.slice + L.VValuesOffset(c.level);
  const size_t ch = a.kv_head * D + d0;  // Lanes(df) divides the group, so one group's params
  const bool int4_order = kLookup && c.level == KvLevel::kInt4;
  hn::Vec<DF> acc[kR];
  for (size_t r = 0; r < kR; ++r) {
    acc[r] = hn::LoadU(df, out + r * D + d0);
    if constexpr (kLookup) acc[r] = int4_order ? ToInt4Order(df, acc[r]) : acc[r];
  }
  for (size_t t = 0; t < valid; ++t) {
    const float* p = vparams + 2 * (t * groups + ch / group);
    const uint8_t* run = vvals + t * W * bits / 8;
    hn::Vec<DF> v;
    if constexpr (kLookup) {
      v = LookupRun(df, c.level, run, ch, CodeTable(df, c.level, p[0], p[1]));
    } else {
      v = DecodeRun(df, c.level, run, ch, p[0], p[1]);
    }
    const float* pt = probs + c.start_pos + t;
    for (size_t r = 0; r < kR; ++r)
      acc[r] = hn::MulAdd(hn::Set(df, pt[r * prob_stride]), v, acc[r]);
  }
  for (size_t r = 0; r < kR; ++r) {
    if constexpr (kLookup) acc[r] = int4_order ? FromInt4Order(df, acc[r]) : acc[r];
    hn::StoreU(acc[r], df, out + r * D + d0);
  }
}

// Calls fn(kR constant, first head) over the n_rep heads in groups of 8, 4, 2 and 1: 8
// accumulators and their decoded vector fit 16 registers.
template <class Fn>
HWY_INLINE void ForHeadGroups(size_t n_rep, const Fn& fn) {
  size_t r = 0;
  for (; r + 8 <= n_rep; r += 8) fn(std::integral_constant<size_t, 8>(), r);
  if (r + 4 <= n_rep) fn(std::integral_constant<size_t, 4>(), r), r += 4;
  if (r + 2 <= n_rep) fn(std::integral_constant<size_t, 2>(), r), r += 2;
  if (r < n_rep) fn(std::integral_constant<size_t, 1>(), r);
}

template <class DF>
HWY_INLINE void ChunkScores(DF df, const AttentionArgs& a, const KvChunkRef& c, size_t valid,
                            const float* HWY_RESTRICT q, float* HWY_RESTRICT scores,
                            size_t score_stride, float* HWY_RESTRICT kparams) {
  const size_t D = a.layout->head_dim;
  if (c.level != KvLevel::kF16) {  // the head's channels' (scale, min), widened once per chunk
    DecodeParamsF32(c.slice + a.kv_head * D * sizeof(QuantParams), 2 * D, kparams);
  }
  const bool lookup = kLookupDecode<DF> && IsLookupLevel(c.level);
  for (size_t t0 = 0; t0 < valid; t0 += hn::Lanes(df)) {
    ForHeadGroups(a.n_rep, [&](auto kR, size_t r) HWY_ATTR {
      constexpr size_t R = decltype(kR)::value;
      float* dst = scores + r * score_stride;
      if (lookup) {
        ScoresBlock<R, kLookupDecode<DF>>(df, a, c, t0, valid, q + r * D, dst, score_stride,
                                          kparams);
      } else {
        ScoresBlock<R, false>(df, a, c, t0, valid, q + r * D, dst, score_stride, kparams);
      }
    });
  }
}

template <class DF>
HWY_INLINE void ChunkValues(DF df, const AttentionArgs& a, const KvChunkRef& c, size_t valid,
                            const float* HWY_RESTRICT probs, size_t prob_stride,
                            float* HWY_RESTRICT out, float* HWY_RESTRICT vparams) {
  const KvLayout& L = *a.layout;
  const size_t D = L.head_dim;
  if (c.level != KvLevel::kF16) {  // every (scale, min) of the chunk's values, widened once
    DecodeParamsF32(c.slice + L.VParamsOffset(c.level), 2 * valid * (L.width() / L.v_group()),
                    vparams);
  }
  const bool lookup = kLookupDecode<DF> && IsLookupLevel(c.level);
  for (size_t d0 = 0; d0 < D; d0 += hn::Lanes(df)) {
    ForHeadGroups(a.n_rep, [&](auto kR, size_t r) HWY_ATTR {
      constexpr size_t R = decltype(kR)::value;
      const float* p = probs + r * prob_stride;
      if (lookup) {
        ValuesBlock<R, kLookupDecode<DF>>(df, a, c, d0, valid, p, prob_stride, out + r * D,
                                          vparams);
      } else {
        ValuesBlock<R, false>(df, a, c, d0, valid, p, prob_stride, out + r * D, vparams);
      }
    });
  }
}

// Prefetches the bytes of chunk c that one head's attention reads: its K channels (and their
// params) or its V rows (and params). Chunks are separate allocations, so the hardware
// prefetchers lose the stream at every chunk boundary; a 16-token f16 chunk is 2 KB of K per
// head, read in about a third of a microsecond, which is DRAM latency. Measured at a 2048-token
// context this left f16 attention at a few GB/s, bound by latency, not bandwidth.
HWY_INLINE void PrefetchChunk(const AttentionArgs& a, const KvChunkRef& c, bool keys) {
  const KvLayout& L = *a.layout;
  const size_t D = L.head_dim, bits = static_cast<size_t>(KvLevelBits(c.level));
  const bool quantized = c.level != KvLevel::kF16;
  if (keys) {
    const size_t run_bytes = L.chunk_tokens * bits / 8;
    const uint8_t* k = c.slice + L.KValuesOffset(c.level) + a.kv_head * D * run_bytes;
    for (size_t b = 0; b < D * run_bytes; b += 64) hwy::Prefetch(k + b);
    if (quantized) {  // the head's D channel params: 4 cache lines when D is 64
      const uint8_t* p = c.slice + a.kv_head * D * sizeof(QuantParams);
      for (size_t b = 0; b < D * sizeof(QuantParams); b += 64) hwy::Prefetch(p + b);
    }
    return;
  }
  const size_t row_bytes = L.width() * bits / 8, head_bytes = D * bits / 8;
  const uint8_t* v = c.slice + L.VValuesOffset(c.level) + a.kv_head * head_bytes;
  for (size_t t = 0; t < c.valid_tokens; ++t) {
    for (size_t b = 0; b < head_bytes; b += 64) hwy::Prefetch(v + t * row_bytes + b);
  }
  if (quantized) {
    const size_t params_bytes = L.VParamsBytes(c.level);
    const uint8_t* p = c.slice + L.VParamsOffset(c.level);
    for (size_t b = 0; b < params_bytes; b += 64) hwy::Prefetch(p + b);
  }
}

template <class DF>
HWY_INLINE void AttendGroupT(DF df, const AttentionArgs& a, std::span<const KvChunkRef> chunks,
                             const float* HWY_RESTRICT q, float* HWY_RESTRICT out,
                             float* HWY_RESTRICT scratch, float* HWY_RESTRICT probs) {
  const KvLayout& L = *a.layout;
  const size_t n_pos = a.pos + 1, D = L.head_dim;
  float* scores = scratch;                   // [n_rep][n_pos]
  float* params = scores + a.n_rep * n_pos;  // a chunk's widened K or V params
  for (size_t i = 0; i < chunks.size() && chunks[i].start_pos <= a.pos; ++i) {
    const KvChunkRef& c = chunks[i];
    if (i + 1 < chunks.size()) PrefetchChunk(a, chunks[i + 1], /*keys=*/true);
    const size_t valid = std::min(c.valid_tokens, n_pos - c.start_pos);
    ChunkScores(df, a, c, valid, q, scores, n_pos, params);
  }
  for (size_t r = 0; r < a.n_rep; ++r) {
    SoftmaxImpl(scores + r * n_pos, n_pos);
    if (probs != nullptr) {
      for (size_t j = 0; j < n_pos; ++j) probs[j] += a.prob_weight * scores[r * n_pos + j];
    }
  }
  std::fill(out, out + a.n_rep * D, 0.0f);
  for (size_t i = 0; i < chunks.size() && chunks[i].start_pos <= a.pos; ++i) {
    const KvChunkRef& c = chunks[i];
    if (i + 1 < chunks.size()) PrefetchChunk(a, chunks[i + 1], /*keys=*/false);
    const size_t valid = std::min(c.valid_tokens, n_pos - c.start_pos);
    ChunkValues(df, a, c, valid, scores, n_pos, out, params);
  }
}

HWY_NOINLINE void AttendGroupImpl(const AttentionArgs& a, std::span<const KvChunkRef> chunks,
                                  const float* HWY_RESTRICT q, float* HWY_RESTRICT out,
                                  float* HWY_RESTRICT scratch, float* HWY_RESTRICT probs) {
  // A vector holds tokens (keys) or channels (values), so its lanes must divide both the chunk
  // size and the head size: 16 lanes (AVX-512) when both are multiples of 16, else 8 at most
  // (both are multiples of 8 by KvLayout::Validate).
  const KvLayout& L = *a.layout;
  if (L.chunk_tokens % 16 == 0 && L.head_dim % 16 == 0) {
    AttendGroupT(hn::CappedTag<float, 16>(), a, chunks, q, out, scratch, probs);
  } else {
    AttendGroupT(hn::CappedTag<float, 8>(), a, chunks, q, out, scratch, probs);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace llms
HWY_AFTER_NAMESPACE();

#endif  // include guard
