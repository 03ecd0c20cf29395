// Causal attention of one KV head's query group over a context's chunk list, reading every
// chunk at its own precision directly (keys and values are decoded a row at a time into
// registers-sized scratch, never into a dequantized copy of the cache). It also reports the
// attention probability each position received, for the tolerance metric.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/kv_format.h"

namespace llms {

// One chunk's layer slice as attention sees it. Non-owning: `slice` must outlive the call.
struct KvChunkRef {
  KvLevel level = KvLevel::kF16;
  const uint8_t* slice = nullptr;  // layout.LayerBytes(level) bytes
  size_t start_pos = 0;            // position of the chunk's first token
  size_t valid_tokens = 0;         // tokens written so far (<= layout.chunk_tokens)
};

struct AttentionArgs {
  const KvLayout* layout = nullptr;  // must outlive the call
  size_t kv_head = 0;
  size_t n_rep = 1;          // query heads that share this KV head (GQA)
  size_t pos = 0;            // the query's position: it attends to positions [0, pos]
  float scale = 1.0f;        // usually 1 / sqrt(head_dim)
  float prob_weight = 1.0f;  // multiplies the probabilities added to `probs`
};

// Floats of scratch AttendGroup needs for a query at `pos`.
size_t AttentionScratchFloats(const KvLayout& layout, size_t n_rep, size_t pos);

// q: [n_rep][head_dim] queries; out: [n_rep][head_dim]. `chunks` are in position order and
// cover [0, pos]. If `probs` is non-null, probs[j] += prob_weight times the sum over the n_rep
// heads of the probability position j received, for j <= pos.
// REQUIRES: scratch holds AttentionScratchFloats(...) floats.
void AttendGroup(const AttentionArgs& args, std::span<const KvChunkRef> chunks, const float* q,
                 float* out, float* scratch, float* probs);

// Plain reference: the same result from K/V already decoded to floats with DecodeKvSlice.
void AttendGroupRef(const AttentionArgs& args, std::span<const KvChunkRef> chunks, const float* q,
                    float* out, float* probs);

}  // namespace llms
