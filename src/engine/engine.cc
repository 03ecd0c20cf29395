#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/clock.h"
#include "formats/kv_quant.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace llms {
namespace {

template <typename T>
void Grow(std::vector<T>* v, size_t n) {
  if (v->size() < n) v->resize(n);
}

}  // namespace

StatusOr<std::unique_ptr<Engine>> Engine::Create(const LlamaModel* model,
                                                 const EngineOptions& options) {
  const ModelConfig& c = model->config();
  KvLayout layout{c.n_kv_heads, c.head_dim, options.chunk_tokens};
  if (std::string_view why = layout.Validate(); !why.empty()) {
    return Status::InvalidArgument("KV layout: " + std::string(why) + " (head_dim " +
                                   std::to_string(c.head_dim) + ", chunk_tokens " +
                                   std::to_string(options.chunk_tokens) + ")");
  }
  if (options.threads < 0 || options.threads > 1024) {
    return Status::InvalidArgument("threads must be between 0 (all cores) and 1024");
  }
  return std::make_unique<Engine>(Passkey{}, model, layout, options.threads);
}

Engine::Engine(Passkey, const LlamaModel* model, const KvLayout& layout, int threads)
    : model_(model), layout_(layout), pool_(std::make_unique<ThreadPool>(threads)) {
  const ModelConfig& c = model_->config();
  rope_freq_.resize(c.head_dim / 2);
  RopeFrequencies(c.head_dim, c.rope_base, c.rope_linear_scale, rope_freq_.data());
  scratch_.resize(static_cast<size_t>(pool_->num_threads()));
  probs_.resize(static_cast<size_t>(pool_->num_threads()));
}

std::unique_ptr<KvCache> Engine::NewCache(KvChunkAllocator* allocator) const {
  return std::make_unique<KvCache>(layout_, config().n_layers, allocator);
}

Status Engine::PlanRows(const KvCache& cache, std::span<const int32_t> tokens,
                        const ForwardOptions& options, std::vector<Row>* rows) const {
  const size_t first_new = cache.num_tokens(), T = layout_.chunk_tokens;
  if (tokens.size() < first_new) {
    return Status::InvalidArgument("the context has " + std::to_string(first_new) +
                                   " cached tokens but only " + std::to_string(tokens.size()) +
                                   " tokens of text");
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= config().vocab_size) {
      return Status::InvalidArgument("token " + std::to_string(tokens[i]) + " at position " +
                                     std::to_string(i) + " is outside the vocabulary");
    }
  }
  std::vector<size_t> chunks = options.recompute_chunks;
  std::sort(chunks.begin(), chunks.end());
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  rows->clear();
  for (size_t c : chunks) {
    if (c * T >= first_new) {
      return Status::InvalidArgument("chunk " + std::to_string(c) +
                                     " cannot be recomputed: it holds no cached tokens");
    }
    for (size_t p = c * T; p < std::min((c + 1) * T, first_new); ++p) {
      rows->push_back({p, tokens[p], false});
    }
  }
  for (size_t p = first_new; p < tokens.size(); ++p) rows->push_back({p, tokens[p], true});
  return Status::Ok();
}

Status Engine::PrepareChunks(KvCache* cache, const std::vector<Row>& rows,
                             const ForwardOptions& options, size_t total_tokens) {
  const size_t T = layout_.chunk_tokens;
  for (size_t c : options.recompute_chunks) {
    LLMS_ASSIGN_OR_RETURN(auto fresh, cache->NewChunk(KvLevel::kF16));
    if (const KvChunk* old = cache->chunk(c)) {  // keep what attention learned about it
      fresh->prob_sum() = old->prob_sum();
      fresh->prob_count() = old->prob_count();
    }
    // Every layer of it is written by this pass before attention reads it.
    fresh->SetAllLayersPresent(true);
    cache->PutChunk(c, std::move(fresh));
  }
  const size_t old_tokens = cache->num_tokens();
  cache->set_num_tokens(total_tokens);
  for (const Row& r : rows) {
    if (!r.is_new) continue;
    const size_t c = r.pos / T;
    KvChunk* chunk = cache->chunk(c);
    if (chunk == nullptr) {
      if (r.pos % T != 0 && r.pos == old_tokens) {
        return Status::Unavailable("chunk " + std::to_string(c) +
                                   " (partly filled) must be resident or recomputed to extend it");
      }
      LLMS_ASSIGN_OR_RETURN(auto fresh, cache->NewChunk(KvLevel::kF16));
      fresh->SetAllLayersPresent(true);
      cache->PutChunk(c, std::move(fresh));
    } else if (chunk->level() != KvLevel::kF16) {
      // The newest chunk is kept at full precision.
      LLMS_RETURN_IF_ERROR(chunk->ConvertTo(KvLevel::kF16));
    }
  }
  return Status::Ok();
}

Status Engine::CheckLayerPresent(const KvCache& cache, size_t layer, size_t total_tokens) const {
  const size_t n = (total_tokens + layout_.chunk_tokens - 1) / layout_.chunk_tokens;
  for (size_t c = 0; c < n; ++c) {
    const KvChunk* chunk = cache.chunk(c);
    if (chunk == nullptr || !chunk->layer_present(layer)) {
      return Status::Unavailable("KV chunk " + std::to_string(c) + " layer " +
                                 std::to_string(layer) +
                                 " is not resident; load or recompute it first");
    }
  }
  return Status::Ok();
}

Status Engine::Forward(KvCache* cache, std::span<const int32_t> tokens,
                       const ForwardOptions& options, std::vector<float>* logits) {
  struct Running {
    explicit Running(std::atomic<bool>* f) : flag(f) { flag->store(true); }
    ~Running() { flag->store(false); }
    std::atomic<bool>* flag;
  } running(&forward_running_);
  const Stopwatch pass;
  std::vector<Row> rows;
  LLMS_RETURN_IF_ERROR(PlanRows(*cache, tokens, options, &rows));
  if (rows.empty()) return Status::InvalidArgument("nothing to compute: no new tokens");
  const ModelConfig& c = config();
  const size_t n = rows.size(), saved_tokens = cache->num_tokens();
  // On failure the context is left as it was: new positions dropped, and half-computed chunks
  // (which would hold garbage in later layers) dropped.
  auto abandon = [&](const Status& s) {
    for (size_t chunk : options.recompute_chunks) cache->TakeChunk(chunk);
    cache->Truncate(saved_tokens);
    return s;
  };
  if (Status s = PrepareChunks(cache, rows, options, tokens.size()); !s.ok()) return abandon(s);

  Grow(&x_, n * c.dim);
  Grow(&xb_, n * c.dim);
  Grow(&q_, n * c.q_width());
  Grow(&k_, n * c.kv_width());
  Grow(&v_, n * c.kv_width());
  Grow(&att_, n * c.q_width());
  Grow(&hb_, n * c.ffn_dim);
  Grow(&hb2_, n * c.ffn_dim);
  const LlamaWeights& w = model_->weights();
  for (size_t i = 0; i < n; ++i)
    DequantizeRow(w.token_embd, static_cast<size_t>(rows[i].token), &x_[i * c.dim]);

  const bool stats = options.collect_attention_stats;
  for (auto& p : probs_) {
    if (stats) p.assign(tokens.size(), 0.0f);
  }
  for (size_t l = 0; l < c.n_layers; ++l) {
    Status s = options.before_layer ? options.before_layer(l) : Status::Ok();
    if (s.ok()) s = CheckLayerPresent(*cache, l, tokens.size());
    if (!s.ok()) return abandon(s);
    Layer(cache, l, rows, stats);
  }
  if (stats) AddStats(cache, rows);
  Logits(rows, options.logits, logits);
  counters_.forward_seconds += pass.Seconds();
  ++counters_.passes;
  return Status::Ok();
}

void Engine::Layer(KvCache* cache, size_t l, const std::vector<Row>& rows, bool stats) {
  const ModelConfig& c = config();
  const LayerWeights& w = model_->weights().layers[l];
  const size_t n = rows.size();
  ThreadPool* pool = pool_.get();

  // Attention block: x += Wo * attention(rope(Wq xb), rope(Wk xb), Wv xb), xb = rmsnorm(x).
  for (size_t i = 0; i < n; ++i) {
    RMSNorm(&x_[i * c.dim], w.attn_norm.data(), c.dim, c.norm_eps, &xb_[i * c.dim]);
  }
  MatMul(w.wq, xb_.data(), n, q_.data(), pool);
  MatMul(w.wk, xb_.data(), n, k_.data(), pool);
  MatMul(w.wv, xb_.data(), n, v_.data(), pool);
  for (size_t i = 0; i < n; ++i) {
    const float pos = static_cast<float>(rows[i].pos);
    Rope(&q_[i * c.q_width()], c.n_heads, c.head_dim, pos, rope_freq_.data());
    Rope(&k_[i * c.kv_width()], c.n_kv_heads, c.head_dim, pos, rope_freq_.data());
  }
  StoreKv(cache, l, rows);
  const Stopwatch attention;
  Attention(cache, l, rows, stats);
  counters_.attention_seconds += attention.Seconds();
  MatMul(w.wo, att_.data(), n, xb_.data(), pool);
  for (size_t i = 0; i < n * c.dim; ++i) x_[i] += xb_[i];

  // Feed-forward block: x += Wdown * (silu(Wgate xb) * (Wup xb)), xb = rmsnorm(x).
  for (size_t i = 0; i < n; ++i) {
    RMSNorm(&x_[i * c.dim], w.ffn_norm.data(), c.dim, c.norm_eps, &xb_[i * c.dim]);
  }
  MatMul(w.w_gate, xb_.data(), n, hb_.data(), pool);
  MatMul(w.w_up, xb_.data(), n, hb2_.data(), pool);
  SwiGLU(hb_.data(), hb2_.data(), n * c.ffn_dim);
  MatMul(w.w_down, hb_.data(), n, xb_.data(), pool);
  for (size_t i = 0; i < n * c.dim; ++i) x_[i] += xb_[i];
}

void Engine::StoreKv(KvCache* cache, size_t l, const std::vector<Row>& rows) {
  const ModelConfig& c = config();
  const size_t T = layout_.chunk_tokens;
  for (size_t i = 0; i < rows.size(); ++i) {
    KvChunk* chunk = cache->chunk(rows[i].pos / T);
    const size_t slot = rows[i].pos % T;
    WriteTokenF16(layout_, chunk->layer(l), slot, &k_[i * c.kv_width()], &v_[i * c.kv_width()]);
    chunk->set_valid_tokens(std::max(chunk->valid_tokens(), slot + 1));
  }
}

void Engine::Attention(KvCache* cache, size_t l, const std::vector<Row>& rows, bool stats) {
  const ModelConfig& c = config();
  const size_t n_chunks = cache->num_chunks(), kv_heads = c.n_kv_heads;
  const size_t n_rep = c.n_heads / kv_heads;
  std::vector<KvChunkRef>& refs = chunk_refs_;  // reused: a decode step allocates nothing
  refs.resize(n_chunks);
  for (size_t i = 0; i < n_chunks; ++i) {
    const KvChunk* chunk = cache->chunk(i);
    refs[i] = {chunk->level(), chunk->layer(l), i * layout_.chunk_tokens, chunk->valid_tokens()};
  }
  const size_t max_pos = rows.back().pos;  // rows are in increasing position order
  const size_t items = rows.size() * kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // Below ~64K multiply-adds a job is cheaper than waking a worker (tiny models, short contexts).
  const bool inline_run = items * (max_pos + 1) * c.head_dim * n_rep < (size_t{1} << 16);
  auto task = [&](size_t item, int thread) {
    const size_t ti = static_cast<size_t>(thread);
    std::vector<float>& scratch = scratch_[ti];
    Grow(&scratch, AttentionScratchFloats(layout_, n_rep, max_pos));
    const size_t i = item / kv_heads, g = item % kv_heads;
    // Probabilities are recorded relative to uniform attention over the visible positions, so
    // a token's density does not depend on how long the context was when it was seen.
    const AttentionArgs args{&layout_,    g,     n_rep,
                             rows[i].pos, scale, static_cast<float>(rows[i].pos + 1)};
    const size_t q_off = i * c.q_width() + g * n_rep * c.head_dim;
    float* probs = stats && rows[i].is_new ? probs_[ti].data() : nullptr;
    AttendGroup(args, refs, &q_[q_off], &att_[q_off], scratch.data(), probs);
  };
  if (inline_run) {
    for (size_t item = 0; item < items; ++item) task(item, 0);
  } else {
    pool_->Run(items, task);
  }
}

void Engine::AddStats(KvCache* cache, const std::vector<Row>& rows) {
  const ModelConfig& c = config();
  const size_t T = layout_.chunk_tokens, total = cache->num_tokens();
  // Every new row at position p is seen by n_heads heads in each layer for positions <= p.
  std::vector<float> seen(total + 1, 0.0f);
  for (const Row& r : rows) {
    if (r.is_new) seen[r.pos] += static_cast<float>(c.n_heads * c.n_layers);
  }
  float running = 0;
  for (size_t p = total; p-- > 0;) {
    running += seen[p];
    KvChunk* chunk = cache->chunk(p / T);
    float sum = 0;
    for (const auto& probs : probs_) sum += probs[p];
    chunk->prob_sum()[p % T] += sum;
    chunk->prob_count()[p % T] += running;
  }
}

void Engine::Logits(const std::vector<Row>& rows, LogitsMode mode, std::vector<float>* logits) {
  const ModelConfig& c = config();
  if (mode == LogitsMode::kNone || logits == nullptr) return;
  std::vector<size_t> picked;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].is_new && (mode == LogitsMode::kAll || i + 1 == rows.size())) picked.push_back(i);
  }
  const LlamaWeights& w = model_->weights();
  for (size_t j = 0; j < picked.size(); ++j) {
    RMSNorm(&x_[picked[j] * c.dim], w.output_norm.data(), c.dim, c.norm_eps, &xb_[j * c.dim]);
  }
  logits->resize(picked.size() * c.vocab_size);
  MatMul(w.output, xb_.data(), picked.size(), logits->data(), pool_.get());
}

}  // namespace llms
