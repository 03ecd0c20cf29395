#include "memory/context_table.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace llms {

std::vector<uint8_t> PackStats(const std::vector<float>& sum, const std::vector<float>& count) {
  std::vector<uint8_t> out((sum.size() + count.size()) * sizeof(float));
  std::memcpy(out.data(), sum.data(), sum.size() * sizeof(float));
  std::memcpy(out.data() + sum.size() * sizeof(float), count.data(), count.size() * sizeof(float));
  return out;
}

void UnpackStats(const std::vector<uint8_t>& in, size_t tokens, std::vector<float>* sum,
                 std::vector<float>* count) {
  sum->assign(tokens, 0.0f);
  count->assign(tokens, 0.0f);
  if (in.size() != 2 * tokens * sizeof(float)) return;  // unknown layout: start learning anew
  std::memcpy(sum->data(), in.data(), tokens * sizeof(float));
  std::memcpy(count->data(), in.data() + tokens * sizeof(float), tokens * sizeof(float));
}

Status ContextTable::CheckUsable(const Context& ctx) {
  if (ctx.damage.empty()) return Status::Ok();
  return Status::Corruption("context " + std::to_string(ctx.id) + " is damaged (" + ctx.damage +
                            "): it cannot be used; delete it");
}

uint64_t ContextTable::ChunkTokensHash(const Context& ctx, size_t index,
                                       size_t valid_tokens) const {
  const size_t T = chunk_tokens_;
  // Chained chunk by chunk, so the digest covers the whole prefix the chunk's keys depend on.
  uint64_t h = 0x6c6c6d73;  // "llms"
  for (size_t c = 0; c <= index; ++c) {
    const size_t n = c < index ? T : valid_tokens;
    if (c * T + n > ctx.tokens.size()) return 0;  // not the text's: never matches a stored copy
    h = XXH3_64bits_withSeed(ctx.tokens.data() + c * T, n * sizeof(int32_t), h);
  }
  return h == 0 ? 1 : h;  // 0 marks "unknown" in the store
}

bool ContextTable::FlashCopyMatches(const Context& ctx, size_t index, size_t valid_tokens) const {
  const ChunkState& s = ctx.chunks[index];
  return s.on_flash && s.meta.valid_tokens == valid_tokens &&
         s.meta.tokens_hash == ChunkTokensHash(ctx, index, valid_tokens);
}

std::unique_ptr<Context> ContextTable::FromRecord(ContextRecord r) {
  auto ctx = std::make_unique<Context>();
  ctx->id = r.id;
  ctx->app = r.app;
  ctx->origin = r.origin;
  ctx->last_used_unix_ms = r.updated_unix_ms;
  ctx->damage = std::move(r.damage);
  ctx->cache = new_cache_();
  for (size_t i = 0; i < r.tokens.size() && ctx->damage.empty(); ++i) {
    if (r.tokens[i] < 0 || static_cast<size_t>(r.tokens[i]) >= vocab_size_) {
      ctx->damage = "token " + std::to_string(r.tokens[i]) + " at position " + std::to_string(i) +
                    " is outside the model's vocabulary of " + std::to_string(vocab_size_);
    }
  }
  if (!ctx->damage.empty()) return ctx;
  ctx->tokens = std::move(r.tokens);
  // The rest of the text past kv_tokens is recomputed when needed.
  ctx->cache->set_num_tokens(r.kv_tokens);
  ctx->chunks.resize(ctx->cache->num_chunks());
  for (ChunkState& s : ctx->chunks) UnpackStats({}, chunk_tokens_, &s.prob_sum, &s.prob_count);
  return ctx;
}

// Takes the stored copies that hold this text; a copy of another text (cut off by a crash or a
// rollback) is left unused.
void ContextTable::AdoptStoredChunks(Context* ctx, std::vector<ChunkMeta> metas) {
  const size_t T = chunk_tokens_, kv = ctx->cache->num_tokens();
  for (ChunkMeta& m : metas) {
    if (m.chunk_index >= ctx->chunks.size() || m.level >= kNumKvLevels) continue;
    const size_t valid = std::min(T, kv - m.chunk_index * T);
    if (m.valid_tokens != valid || m.tokens_hash != ChunkTokensHash(*ctx, m.chunk_index, valid)) {
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

Status ContextTable::Load() {
  if (store_ == nullptr) return Status::Ok();
  LLMS_ASSIGN_OR_RETURN(std::vector<ContextRecord> records, store_->ListContexts());
  for (ContextRecord& r : records) {
    std::unique_ptr<Context> ctx = FromRecord(std::move(r));
    if (ctx->damage.empty()) {
      LLMS_ASSIGN_OR_RETURN(std::vector<ChunkMeta> metas, store_->ListChunks(ctx->id));
      AdoptStoredChunks(ctx.get(), std::move(metas));
    }
    contexts_.emplace(ctx->id, std::move(ctx));
  }
  return Status::Ok();
}

StatusOr<Context*> ContextTable::Create(const std::string& app, std::span<const int32_t> prefix,
                                        const std::string& origin, int64_t now_ms) {
  for (int32_t t : prefix) {
    if (t < 0 || static_cast<size_t>(t) >= vocab_size_) {
      return Status::InvalidArgument("token " + std::to_string(t) + " is outside the vocabulary");
    }
  }
  auto ctx = std::make_unique<Context>();
  if (store_ != nullptr) {
    LLMS_ASSIGN_OR_RETURN(ctx->id, store_->CreateContext(app, prefix, origin));
  } else {
    ctx->id = ++last_memory_id_;
  }
  ctx->app = app;
  ctx->origin = origin;
  ctx->last_used_unix_ms = now_ms;
  ctx->tokens.assign(prefix.begin(), prefix.end());
  ctx->cache = new_cache_();
  Context* raw = ctx.get();
  contexts_.emplace(raw->id, std::move(ctx));
  return raw;
}

StatusOr<Context*> ContextTable::Find(const std::string& app, uint64_t id) {
  auto it = contexts_.find(id);
  if (it == contexts_.end() || it->second->app != app) {
    return Status::NotFound("context " + std::to_string(id) + " not found");
  }
  return it->second.get();
}

Context* ContextTable::FindById(uint64_t id) {
  auto it = contexts_.find(id);
  return it == contexts_.end() ? nullptr : it->second.get();
}

std::unique_ptr<Context> ContextTable::Remove(uint64_t id) {
  auto it = contexts_.find(id);
  if (it == contexts_.end()) return nullptr;
  std::unique_ptr<Context> out = std::move(it->second);
  contexts_.erase(it);
  return out;
}

std::vector<Context*> ContextTable::All() {
  std::vector<Context*> out;
  for (auto& [id, ctx] : contexts_) out.push_back(ctx.get());
  std::sort(out.begin(), out.end(),
            [](const Context* a, const Context* b) { return a->id < b->id; });
  return out;
}

ContextInfo ContextTable::Info(const Context& ctx) const {
  if (ctx.locked) return ctx.locked_info;
  ContextInfo info;
  info.id = ctx.id;
  info.app = ctx.app;
  info.origin = ctx.origin;
  info.last_used_unix_ms = ctx.last_used_unix_ms;
  info.damage = ctx.damage;
  info.tokens = ctx.tokens.size();
  info.chunks = ctx.chunks.size();
  info.chunks_per_level.assign(kNumKvLevels, 0);
  for (size_t i = 0; i < ctx.chunks.size(); ++i) {
    const KvChunk* chunk = ctx.cache->chunk(i);
    const ChunkState& s = ctx.chunks[i];
    info.resident_chunks += chunk != nullptr;
    // A copy counts once it is current: a resident chunk changed since is not on flash yet.
    info.flash_chunks += s.on_flash && !(chunk != nullptr && s.dirty);
    info.resident_bytes += chunk != nullptr ? chunk->bytes() : 0;
    if (chunk != nullptr || s.on_flash) ++info.chunks_per_level[static_cast<int>(s.level)];
  }
  return info;
}

Status ContextTable::Persist(const Context& ctx) {
  if (store_ == nullptr) return Status::Ok();
  return store_->UpdateContext(ctx.id, ctx.tokens, ctx.cache->num_tokens());
}

}  // namespace llms
