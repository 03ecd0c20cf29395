// Engine: the Llama forward pass over a context's chunked KV cache. One pass computes a set of
// "rows" (token positions) layer by layer: the call's new tokens, plus any chunks being
// recomputed from their token text at their original positions. Before each layer a hook lets a
// loader make the other chunks' K/V of that layer present, so reading from flash overlaps
// compute (docs/engine.md). Reads top to bottom like the math in llama2.c.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/kv_cache.h"
#include "kernels/attention.h"
#include "model/llama_model.h"

namespace llms {

struct EngineOptions {
  int threads = 0;           // 0: one per core
  size_t chunk_tokens = 16;  // tokens per KV chunk; a multiple of 8 in [8, 256]
};

enum class LogitsMode {
  kLast,  // logits of the last new token only
  kAll,   // logits of every new token, in order
  kNone,  // no logits (restore only)
};

struct ForwardOptions {
  // Chunks to recompute from their tokens. Each must lie before the first new token.
  std::vector<size_t> recompute_chunks;
  // Called before layer l runs; it must leave layer l present in every chunk the pass reads
  // that is not being recomputed. An error aborts the pass.
  std::function<Status(size_t layer)> before_layer;
  LogitsMode logits = LogitsMode::kLast;
  // Accumulate the attention each position receives from the new tokens into chunk statistics.
  bool collect_attention_stats = true;
};

// Where a pass spends its time (cumulative since the last ResetCounters).
struct EngineCounters {
  double forward_seconds = 0;
  double attention_seconds = 0;  // attention over the KV chunks, all layers
  size_t passes = 0;
};

// Thread safety: one pass at a time (it owns the work buffers and the thread pool).
class Engine {
 public:
  // `model` must outlive the engine. Errors: InvalidArgument for options the model cannot use.
  static StatusOr<std::unique_ptr<Engine>> Create(const LlamaModel* model,
                                                  const EngineOptions& options);

  const LlamaModel& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  const KvLayout& kv_layout() const { return layout_; }
  int threads() const { return pool_->num_threads(); }
  ThreadPool* pool() { return pool_.get(); }
  // A cache for a new context; `allocator` (may be null) accounts for its chunks.
  std::unique_ptr<KvCache> NewCache(KvChunkAllocator* allocator = nullptr) const;
  const EngineCounters& counters() const { return counters_; }
  // True while Forward runs (from any thread: tests check that no flash I/O happens then).
  bool forward_running() const { return forward_running_; }
  void ResetCounters() { counters_ = EngineCounters{}; }

  // Runs the pass. `tokens` is the context's whole token text including the new tokens, which
  // are tokens[cache->num_tokens()...]. Afterwards the cache holds every position, new chunks
  // and recomputed chunks at f16, and `logits` holds vocab_size floats per returned row.
  // Errors: InvalidArgument for bad tokens, positions or chunk indices; FailedPrecondition-like
  // Unavailable when a chunk the pass needs is not present; the hook's error.
  Status Forward(KvCache* cache, std::span<const int32_t> tokens, const ForwardOptions& options,
                 std::vector<float>* logits);

 private:
  struct Passkey {};  // only Create constructs engines (it validates the options first)

 public:
  Engine(Passkey, const LlamaModel* model, const KvLayout& layout, int threads);

 private:
  struct Row {
    size_t pos;
    int32_t token;
    bool is_new;
  };
  Status PlanRows(const KvCache& cache, std::span<const int32_t> tokens,
                  const ForwardOptions& options, std::vector<Row>* rows) const;
  Status PrepareChunks(KvCache* cache, const std::vector<Row>& rows, const ForwardOptions& options,
                       size_t total_tokens);
  Status CheckLayerPresent(const KvCache& cache, size_t layer, size_t total_tokens) const;
  void Attention(KvCache* cache, size_t layer, const std::vector<Row>& rows, bool stats);
  void StoreKv(KvCache* cache, size_t layer, const std::vector<Row>& rows);
  void Layer(KvCache* cache, size_t layer, const std::vector<Row>& rows, bool stats);
  void AddStats(KvCache* cache, const std::vector<Row>& rows);
  void Logits(const std::vector<Row>& rows, LogitsMode mode, std::vector<float>* logits);

  const LlamaModel* model_;  // not owned
  KvLayout layout_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<float> rope_freq_;
  EngineCounters counters_;
  std::atomic<bool> forward_running_{false};
  // Work buffers, [rows x width], grown on demand and reused so a decode step allocates nothing.
  std::vector<float> x_, xb_, q_, k_, v_, att_, hb_, hb2_;
  std::vector<std::vector<float>> scratch_;  // per thread
  std::vector<std::vector<float>> probs_;    // per thread, [positions]
  std::vector<KvChunkRef> chunk_refs_;       // the chunks Attention reads, rebuilt per layer
};

}  // namespace llms
