// ContextTable: the contexts the memory manager holds. Each has its text, its KV cache and the
// state of each chunk (level, dirty, the stored copy); the table loads them from the store at
// start (a damaged row is set aside, never fatal), commits a context's text and KV length in one
// transaction, and says which stored copies still match the text (by their tokens hash).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/kv_cache.h"
#include "formats/kv_format.h"
#include "store/chunk_store.h"

namespace llms {

struct ContextInfo {
  uint64_t id = 0;
  std::string app;
  std::string origin;  // "native" (an app's explicit context) or "http" (placed by the HTTP API)
  size_t tokens = 0;
  size_t chunks = 0, resident_chunks = 0, flash_chunks = 0;
  size_t resident_bytes = 0;
  std::vector<int> chunks_per_level;  // resident and on flash, by KvLevel
  int64_t last_used_unix_ms = 0;      // created, or the end of its last call
  // Why the context cannot be used (its stored row is damaged), or empty. A damaged context is
  // kept apart: listed to its owner, refused for calls, deletable.
  std::string damage;
};

struct ChunkState {
  KvLevel level = KvLevel::kF16;  // assigned level (of the resident copy, or of the flash copy)
  bool dirty = true;              // the resident copy is newer than the flash copy
  bool on_flash = false;          // `meta` names a stored copy
  ChunkMeta meta;
  uint64_t version = 0;  // changes whenever the resident copy changes; never reused
  float density = 0;
  std::vector<float> prob_sum, prob_count;  // statistics while not resident
};

struct Context {
  uint64_t id = 0;
  std::string app;
  std::string origin;
  int64_t last_used_unix_ms = 0;
  std::string damage;              // non-empty: set aside (see ContextInfo::damage)
  std::vector<int32_t> tokens;     // the text: durable in the store
  std::unique_ptr<KvCache> cache;  // KV of tokens [0, cache->num_tokens())
  std::vector<ChunkState> chunks;  // one per chunk of the cache
  // While a call session holds the context, the session changes `tokens` and `cache` without
  // the manager's mutex; everyone else reads the snapshot taken when the session began, and
  // eviction leaves its chunks alone.
  bool locked = false;
  ContextInfo locked_info;
  std::vector<int32_t> locked_tokens;
};

// Thread safety: none; the memory manager's mutex guards it.
class ContextTable {
 public:
  using CacheFactory = std::function<std::unique_ptr<KvCache>()>;
  // `store` (may be null) must outlive the table; `vocab_size` bounds the token ids a stored
  // text may hold.
  ContextTable(ChunkStore* store, size_t chunk_tokens, size_t vocab_size, CacheFactory new_cache)
      : store_(store),
        chunk_tokens_(chunk_tokens),
        vocab_size_(vocab_size),
        new_cache_(std::move(new_cache)) {}

  // Loads every context of the store (text and chunk table; no KV is read).
  Status Load();
  // A new context (stored first when there is a store).
  StatusOr<Context*> Create(const std::string& app, std::span<const int32_t> prefix,
                            const std::string& origin, int64_t now_ms);
  // NotFound for an unknown id or one owned by another app (the same message either way).
  StatusOr<Context*> Find(const std::string& app, uint64_t id);
  Context* FindById(uint64_t id);
  std::unique_ptr<Context> Remove(uint64_t id);
  std::vector<Context*> All();
  // Corruption naming why, for a damaged context.
  static Status CheckUsable(const Context& ctx);

  ContextInfo Info(const Context& ctx) const;
  // Digest of the text chunk `index` encodes (its whole token prefix), kept with its stored copy.
  uint64_t ChunkTokensHash(const Context& ctx, size_t index, size_t valid_tokens) const;
  // The chunk's stored copy holds exactly the text the context has there now.
  bool FlashCopyMatches(const Context& ctx, size_t index, size_t valid_tokens) const;
  // Commits the context's text and KV length in one transaction.
  Status Persist(const Context& ctx);
  size_t chunk_tokens() const { return chunk_tokens_; }

 private:
  std::unique_ptr<Context> FromRecord(ContextRecord r);
  void AdoptStoredChunks(Context* ctx, std::vector<ChunkMeta> metas);

  ChunkStore* const store_;
  const size_t chunk_tokens_;
  const size_t vocab_size_;
  const CacheFactory new_cache_;
  std::unordered_map<uint64_t, std::unique_ptr<Context>> contexts_;
  uint64_t last_memory_id_ = 0;  // ids when there is no store
};

// Statistics of a chunk packed into ChunkMeta::stats: prob_sum then prob_count, f32 each.
std::vector<uint8_t> PackStats(const std::vector<float>& sum, const std::vector<float>& count);
void UnpackStats(const std::vector<uint8_t>& in, size_t tokens, std::vector<float>* sum,
                 std::vector<float>* count);

inline size_t CeilDiv(size_t a, size_t b) { return (a + b - 1) / b; }

}  // namespace llms
