#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "formats/kv_quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/attention-inl.h"

#if HWY_ONCE
namespace llms {

HWY_EXPORT(AttendGroupImpl);

size_t AttentionScratchFloats(const KvLayout& layout, size_t n_rep, size_t pos) {
  // Scores of every position, then one chunk's widened quantization params: its K params for
  // one head's channels or all its V params.
  return n_rep * (pos + 1) +
         2 * std::max(layout.head_dim, layout.chunk_tokens * (layout.width() / layout.v_group()));
}

void AttendGroup(const AttentionArgs& args, std::span<const KvChunkRef> chunks, const float* q,
                 float* out, float* scratch, float* probs) {
  HWY_DYNAMIC_DISPATCH(AttendGroupImpl)(args, chunks, q, out, scratch, probs);
}

void AttendGroupRef(const AttentionArgs& a, std::span<const KvChunkRef> chunks, const float* q,
                    float* out, float* probs) {
  const KvLayout& L = *a.layout;
  const size_t T = L.chunk_tokens, D = L.head_dim, W = L.width(), n_pos = a.pos + 1;
  std::vector<float> keys(n_pos * D), values(n_pos * D), k(W * T), v(T * W);
  for (const KvChunkRef& c : chunks) {
    if (c.start_pos > a.pos) break;
    DecodeKvSlice(L, c.level, c.slice, k.data(), v.data());
    const size_t valid = std::min(c.valid_tokens, n_pos - c.start_pos);
    for (size_t t = 0; t < valid; ++t) {
      for (size_t d = 0; d < D; ++d) {
        keys[(c.start_pos + t) * D + d] = k[(a.kv_head * D + d) * T + t];
        values[(c.start_pos + t) * D + d] = v[t * W + a.kv_head * D + d];
      }
    }
  }
  for (size_t r = 0; r < a.n_rep; ++r) {
    std::vector<double> p(n_pos);
    double maxv = -1e300, sum = 0;
    for (size_t j = 0; j < n_pos; ++j) {
      double s = 0;
      for (size_t d = 0; d < D; ++d) s += static_cast<double>(q[r * D + d]) * keys[j * D + d];
      p[j] = s * a.scale;
      maxv = std::max(maxv, p[j]);
    }
    for (double& x : p) sum += (x = std::exp(x - maxv));
    for (size_t d = 0; d < D; ++d) {
      double o = 0;
      for (size_t j = 0; j < n_pos; ++j) o += p[j] / sum * values[j * D + d];
      out[r * D + d] = static_cast<float>(o);
    }
    if (probs != nullptr) {
      for (size_t j = 0; j < n_pos; ++j) {
        probs[j] += a.prob_weight * static_cast<float>(p[j] / sum);
      }
    }
  }
}

}  // namespace llms
#endif  // HWY_ONCE
