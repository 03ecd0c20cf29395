// Per-target implementation of attention.h (Highway toggle-guarded include).
#if defined(LLMS_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LLMS_KERNELS_ATTENTION_INL_H_
#undef LLMS_KERNELS_ATTENTION_INL_H_
#else
#define LLMS_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cstring>

#include "hwy/highway.h"
#include "kernels/attention.h"
#include "kernels/float16.h"
#include "kernels/kv_quant.h"
#include "kernels/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Eight floats at most per vector: chunk sizes and head sizes are multiples of 8, so every row
// is a whole number of vectors on every target.
using DF8 = hn::CappedTag<float, 8>;

// Decodes `n` values of a run starting at value `first` into floats.
HWY_INLINE void DecodeRunF32(KvLevel level, const uint8_t* run, size_t first, size_t n,
                             QuantParams params, float* HWY_RESTRICT out) {
  if (level == KvLevel::kF16) {
    const DF8 df;
    const hn::Rebind<hwy::float16_t, DF8> dh;
    const auto* h = reinterpret_cast<const hwy::float16_t*>(run) + first;
    for (size_t i = 0; i < n; i += hn::Lanes(df)) {
      hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, out + i);
    }
    return;
  }
  const int bits = KvLevelBits(level);
  const float scale = F16ToF32(params.scale), minv = F16ToF32(params.min);
  for (size_t i = 0; i < n; ++i) {
    out[i] = scale * static_cast<float>(UnpackValue(run, first + i, bits)) + minv;
  }
}

HWY_INLINE QuantParams ParamsAt(const uint8_t* p, size_t index) {
  QuantParams q;
  std::memcpy(&q, p + index * sizeof(QuantParams), sizeof(q));
  return q;
}

// scores[r][start + t] = scale * q_r . k_t for the chunk's first `valid` tokens.
HWY_INLINE void ChunkScores(const AttentionArgs& a, const KvChunkRef& c, size_t valid,
                            const float* HWY_RESTRICT q, float* HWY_RESTRICT scores,
                            size_t score_stride, float* HWY_RESTRICT krow,
                            float* HWY_RESTRICT acc) {
  const KvLayout& L = *a.layout;
  const DF8 df;
  const size_t N = hn::Lanes(df), T = L.chunk_tokens, D = L.head_dim;
  const size_t run_bytes = T * static_cast<size_t>(KvLevelBits(c.level)) / 8;
  const uint8_t* kvals = c.slice + L.KValuesOffset(c.level);
  std::fill(acc, acc + a.n_rep * T, 0.0f);
  for (size_t d = 0; d < D; ++d) {
    const size_t channel = a.kv_head * D + d;
    const QuantParams p = c.level == KvLevel::kF16 ? QuantParams{} : ParamsAt(c.slice, channel);
    DecodeRunF32(c.level, kvals + channel * run_bytes, 0, T, p, krow);
    for (size_t r = 0; r < a.n_rep; ++r) {
      const auto qd = hn::Set(df, q[r * D + d]);
      for (size_t t = 0; t < T; t += N) {
        float* dst = acc + r * T + t;
        hn::StoreU(hn::MulAdd(qd, hn::LoadU(df, krow + t), hn::LoadU(df, dst)), df, dst);
      }
    }
  }
  for (size_t r = 0; r < a.n_rep; ++r) {
    for (size_t t = 0; t < valid; ++t)
      scores[r * score_stride + c.start_pos + t] = acc[r * T + t] * a.scale;
  }
}

// out[r] += sum_t p[r][start + t] * v_t over the chunk's first `valid` tokens.
HWY_INLINE void ChunkValues(const AttentionArgs& a, const KvChunkRef& c, size_t valid,
                            const float* HWY_RESTRICT probs, size_t prob_stride,
                            float* HWY_RESTRICT out, float* HWY_RESTRICT vrow) {
  const KvLayout& L = *a.layout;
  const DF8 df;
  const size_t N = hn::Lanes(df), D = L.head_dim, W = L.width();
  const size_t group = L.v_group(), groups = W / group;
  const size_t bits = static_cast<size_t>(KvLevelBits(c.level));
  const uint8_t* vparams = c.slice + L.VParamsOffset(c.level);
  const uint8_t* vvals = c.slice + L.VValuesOffset(c.level);
  const size_t first = a.kv_head * D;
  // A head's values span whole groups or lie inside one (both are multiples of 8).
  const size_t piece = std::min(group, D);
  for (size_t t = 0; t < valid; ++t) {
    const uint8_t* row = vvals + t * W * bits / 8;
    for (size_t off = 0; off < D; off += piece) {
      const size_t ch = first + off;
      const QuantParams p =
          c.level == KvLevel::kF16 ? QuantParams{} : ParamsAt(vparams, t * groups + ch / group);
      DecodeRunF32(c.level, row, ch, piece, p, vrow + off);
    }
    for (size_t r = 0; r < a.n_rep; ++r) {
      const auto pv = hn::Set(df, probs[r * prob_stride + c.start_pos + t]);
      float* o = out + r * D;
      for (size_t d = 0; d < D; d += N) {
        hn::StoreU(hn::MulAdd(pv, hn::LoadU(df, vrow + d), hn::LoadU(df, o + d)), df, o + d);
      }
    }
  }
}

HWY_NOINLINE void AttendGroupImpl(const AttentionArgs& a, std::span<const KvChunkRef> chunks,
                                  const float* HWY_RESTRICT q, float* HWY_RESTRICT out,
                                  float* HWY_RESTRICT scratch, float* HWY_RESTRICT probs) {
  const KvLayout& L = *a.layout;
  const size_t n_pos = a.pos + 1, T = L.chunk_tokens, D = L.head_dim;
  float* scores = scratch;                // [n_rep][n_pos]
  float* acc = scores + a.n_rep * n_pos;  // [n_rep][T]
  float* row = acc + a.n_rep * T;         // [max(T, D)]
  for (const KvChunkRef& c : chunks) {
    if (c.start_pos > a.pos) break;
    const size_t valid = std::min(c.valid_tokens, n_pos - c.start_pos);
    ChunkScores(a, c, valid, q, scores, n_pos, row, acc);
  }
  for (size_t r = 0; r < a.n_rep; ++r) {
    SoftmaxImpl(scores + r * n_pos, n_pos);
    if (probs != nullptr) {
      for (size_t j = 0; j < n_pos; ++j) probs[j] += a.prob_weight * scores[r * n_pos + j];
    }
  }
  std::fill(out, out + a.n_rep * D, 0.0f);
  for (const KvChunkRef& c : chunks) {
    if (c.start_pos > a.pos) break;
    const size_t valid = std::min(c.valid_tokens, n_pos - c.start_pos);
    ChunkValues(a, c, valid, scores, n_pos, out, row);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace llms
HWY_AFTER_NAMESPACE();

#endif  // include guard
