// KvManager: what ties contexts to the store. Loading them at Open (a damaged row is kept apart,
// never fatal), making a call's text durable once per call (or returning the context to where
// the call began when that fails), and cutting a context back. A stored chunk copy is trusted
// only while its tokens hash matches the context's current text, so a copy written for an older
// text (before a rollback, say) is never read as the current one.
#include <xxhash.h>

#include <algorithm>
#include <string>

#include "memory/kv_manager.h"
#include "memory/kv_manager_internal.h"

namespace llms {

uint64_t KvManager::ChunkTokensHash(const Context& ctx, size_t index, size_t valid_tokens) const {
  const size_t T = engine_->kv_layout().chunk_tokens;
  // Chained chunk by chunk, so the digest covers the whole prefix the chunk's keys depend on.
  uint64_t h = 0x6c6c6d73;  // "llms"
  for (size_t c = 0; c <= index; ++c) {
    const size_t n = c < index ? T : valid_tokens;
    if (c * T + n > ctx.tokens.size()) return 0;  // not the text's: never matches a stored copy
    h = XXH3_64bits_withSeed(ctx.tokens.data() + c * T, n * sizeof(int32_t), h);
  }
  return h == 0 ? 1 : h;  // 0 marks "unknown" in the store
}

bool KvManager::FlashCopyMatches(const Context& ctx, size_t index, size_t valid_tokens) const {
  const ChunkState& s = ctx.chunks[index];
  return s.on_flash && s.meta.valid_tokens == valid_tokens &&
         s.meta.tokens_hash == ChunkTokensHash(ctx, index, valid_tokens);
}

Status KvManager::CheckUsable(const Context& ctx) const {
  if (ctx.damage.empty()) return Status::Ok();
  return Status::Corruption("context " + std::to_string(ctx.id) + " is damaged (" + ctx.damage +
                            "): it cannot be used; delete it");
}

std::unique_ptr<KvManager::Context> KvManager::ContextFromRecord(ContextRecord r) {
  auto ctx = std::make_unique<Context>();
  ctx->id = r.id;
  ctx->app = r.app;
  ctx->origin = r.origin;
  ctx->last_used_unix_ms = r.updated_unix_ms;
  ctx->damage = std::move(r.damage);
  ctx->cache = engine_->NewCache(this);
  const size_t vocab = engine_->config().vocab_size;
  for (size_t i = 0; i < r.tokens.size() && ctx->damage.empty(); ++i) {
    if (r.tokens[i] < 0 || static_cast<size_t>(r.tokens[i]) >= vocab) {
      ctx->damage = "token " + std::to_string(r.tokens[i]) + " at position " + std::to_string(i) +
                    " is outside the model's vocabulary of " + std::to_string(vocab);
    }
  }
  if (!ctx->damage.empty()) return ctx;
  ctx->tokens = std::move(r.tokens);
  // The rest of the text past kv_tokens is recomputed when needed.
  ctx->cache->set_num_tokens(r.kv_tokens);
  ctx->chunks.resize(ctx->cache->num_chunks());
  const size_t T = engine_->kv_layout().chunk_tokens;
  for (ChunkState& s : ctx->chunks) UnpackStats({}, T, &s.prob_sum, &s.prob_count);
  return ctx;
}

Status KvManager::LoadFromStore() {
  LLMS_ASSIGN_OR_RETURN(std::vector<ContextRecord> records, store_->ListContexts());
  const size_t T = engine_->kv_layout().chunk_tokens;
  for (ContextRecord& r : records) {
    std::unique_ptr<Context> ctx = ContextFromRecord(std::move(r));
    if (ctx->damage.empty()) {
      LLMS_ASSIGN_OR_RETURN(std::vector<ChunkMeta> metas, store_->ListChunks(ctx->id));
      const size_t kv = ctx->cache->num_tokens();
      for (ChunkMeta& m : metas) {
        if (m.chunk_index >= ctx->chunks.size() || m.level >= kNumKvLevels) continue;
        const size_t valid = std::min(T, kv - m.chunk_index * T);
        // A copy of another text (cut off by a crash or a rollback) is left unused.
        if (m.valid_tokens != valid ||
            m.tokens_hash != ChunkTokensHash(*ctx, m.chunk_index, valid)) {
          continue;
        }
        ChunkState& s = ctx->chunks[m.chunk_index];
        s.level = static_cast<KvLevel>(m.level);
        s.on_flash = true;
        s.dirty = false;
        s.density = m.density;
        UnpackStats(m.stats, T, &s.prob_sum, &s.prob_count);
        s.meta = std::move(m);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    contexts_.emplace(ctx->id, std::move(ctx));
  }
  return Status::Ok();
}

void KvManager::TruncateContext(Context* ctx, size_t tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t T = ctx->cache->chunk_tokens();
  tokens = std::min(tokens, ctx->tokens.size());
  ctx->tokens.resize(tokens);
  ctx->cache->Truncate(std::min(tokens, ctx->cache->num_tokens()));
  for (size_t i = ctx->cache->num_chunks(); i < ctx->chunks.size(); ++i) {
    queues_.Remove({ctx->id, static_cast<uint32_t>(i)});
  }
  ctx->chunks.resize(ctx->cache->num_chunks());
  const size_t kv = ctx->cache->num_tokens();
  if (kv % T == 0) return;
  // The last chunk may have been filled past the cut and compressed meanwhile: drop it, to be
  // read again (if its stored copy matches the text) or recomputed.
  const size_t last = kv / T;
  queues_.Remove({ctx->id, static_cast<uint32_t>(last)});
  ctx->cache->TakeChunk(last);
  ChunkState& s = ctx->chunks[last];
  s.dirty = false;
  s.version = ++next_version_;  // pending writes of the old chunk are stale
  if (s.on_flash) s.level = static_cast<KvLevel>(s.meta.level);
}

void KvManager::MakeLastTokenPending(Context* ctx) {
  const size_t n = ctx->tokens.size();
  if (n == 0 || ctx->cache->num_tokens() < n) return;  // something is pending already
  const size_t T = ctx->cache->chunk_tokens();
  const KvChunk* last = ctx->cache->chunk((n - 1) / T);
  // An f16 chunk just gives up its last row; any other is recomputed from its first token.
  const size_t keep = last != nullptr && last->level() == KvLevel::kF16 ? n - 1 : (n - 1) / T * T;
  const std::vector<int32_t> text = ctx->tokens;
  TruncateContext(ctx, keep);
  std::lock_guard<std::mutex> lock(mu_);
  ctx->tokens = text;  // the text stays; only its KV is pending now
}

void KvManager::AfterCall(Context* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = ctx->cache->num_chunks();
  const size_t old_chunks = ctx->chunks.size();
  ctx->chunks.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ChunkState& s = ctx->chunks[i];
    KvChunk* chunk = ctx->cache->chunk(i);
    if (chunk == nullptr) continue;
    s.density = chunk->Density();
    // Chunks that received tokens in this call changed; loaded and recomputed ones did not.
    if (i >= old_chunks || !FlashCopyMatches(*ctx, i, chunk->valid_tokens())) {
      s.version = ++next_version_;
      s.dirty = true;
    }
  }
  Compress(ctx);
  for (size_t i = 0; i < n; ++i) Touch(ctx, i);
}

Status KvManager::Persist(Context* ctx, size_t rollback_tokens) {
  if (store_ != nullptr) {
    Status s = store_->UpdateContext(ctx->id, ctx->tokens, ctx->cache->num_tokens());
    if (!s.ok()) {
      TruncateContext(ctx, rollback_tokens);
      return s.WithContext("context " + std::to_string(ctx->id) +
                           ": the call's text could not be saved, so the context is back where "
                           "the call began");
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ctx->last_used_unix_ms = UnixMillisNow();
  }
  if (store_ == nullptr || !options_.policy.ahead_of_time_swap) return Status::Ok();
  // Global planning re-levels every context's chunks, not only this one's: their new versions
  // must reach flash too (a SIGTERM's Flush waits only for queued writes). Contexts change only
  // in calls, which run one at a time, so none of them changes under this.
  std::vector<Context*> changed = {ctx};
  if (options_.policy.compression == CompressionMode::kToleranceGlobal) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, other] : contexts_) {
      if (other.get() != ctx && other->damage.empty()) changed.push_back(other.get());
    }
  }
  for (Context* c : changed) QueueWrites(c);
  return Status::Ok();
}

Status KvManager::FinishCall(const std::string& app, uint64_t id, size_t call_start_tokens) {
  Context* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    LLMS_ASSIGN_OR_RETURN(ctx, FindLocked(app, id));
    LLMS_RETURN_IF_ERROR(CheckUsable(*ctx));
    if (calling_ != 0) return Status::Unavailable("another call is running");
    calling_ = id;
  }
  Status s = Persist(ctx, call_start_tokens);
  std::lock_guard<std::mutex> lock(mu_);
  calling_ = 0;
  return s;
}

}  // namespace llms
