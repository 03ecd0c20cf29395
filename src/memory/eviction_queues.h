// EvictionQueues: which resident chunk to evict next. LCTRU keeps one LRU queue per precision
// level and takes from the heaviest level (least compressed: least compression-tolerable and
// largest) first; LRU keeps one queue. Chunks of a running call are skipped by the caller's
// predicate (they are locked).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "formats/kv_format.h"  // KvLevel
#include "memory/policy.h"

namespace llms {

struct ChunkId {
  uint64_t context = 0;
  uint32_t chunk = 0;
  bool operator==(const ChunkId& o) const { return context == o.context && chunk == o.chunk; }
  bool operator<(const ChunkId& o) const {
    return std::tie(context, chunk) < std::tie(o.context, o.chunk);
  }
};

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const {
    return std::hash<uint64_t>()(id.context * 0x9E3779B97F4A7C15ull ^ id.chunk);
  }
};

// Thread safety: none; guarded by the memory manager's mutex.
class EvictionQueues {
 public:
  explicit EvictionQueues(EvictionOrder order) : order_(order) {}

  // Inserts the chunk, or moves it to the tail of its level's queue, as used at `tick`.
  void Touch(ChunkId id, KvLevel level, uint64_t tick);
  // Keeps its recency, moves it to another level's queue.
  void SetLevel(ChunkId id, KvLevel level);
  void Remove(ChunkId id);
  size_t size() const { return where_.size(); }

  // The first chunk in eviction order for which `skip` is false, or nullopt.
  std::optional<ChunkId> Victim(const std::function<bool(ChunkId)>& skip) const;

 private:
  // (level rank: 0 first, last-use tick, id): the map's order is the eviction order.
  using Key = std::tuple<int, uint64_t, ChunkId>;
  int Rank(KvLevel level) const;

  EvictionOrder order_;
  std::map<Key, ChunkId> queue_;
  std::unordered_map<ChunkId, Key, ChunkIdHash> where_;
};

}  // namespace llms
