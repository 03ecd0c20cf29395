// Evictor: which resident chunks to evict next. LCTRU (the paper's) keeps one LRU queue per
// precision level and takes from the heaviest level (least compressed: least compression-
// tolerable and largest) first; the baselines keep one LRU queue, and Swap evicts a whole
// context at once. Chunks of locked contexts (a call holds them) are passed over.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <vector>

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
class Evictor {
 public:
  Evictor(EvictionOrder order, EvictionUnit unit) : order_(order), unit_(unit) {}
  // The chunk was used now: it goes to the tail of its level's queue.
  void Touch(ChunkId id, KvLevel level);
  // Keeps its recency, moves it to another level's queue.
  void SetLevel(ChunkId id, KvLevel level);
  void Remove(ChunkId id);
  size_t size() const { return where_.size(); }
  // The chunks to evict next: the first chunk in eviction order whose context `locked` does not
  // name, or every resident chunk of its context when the unit is the context. Empty when none.
  std::vector<ChunkId> NextVictims(const std::function<bool(uint64_t context)>& locked) const;
  // The victims, in eviction order, whose bytes (`bytes_of`) add up to at least `bytes`: a set
  // written out in one batch before it is dropped. Fewer when not enough is evictable.
  std::vector<ChunkId> VictimsFor(size_t bytes, const std::function<bool(uint64_t context)>& locked,
                                  const std::function<size_t(ChunkId)>& bytes_of) const;

 private:
  // (level rank: 0 first, last-use tick, id): the map's order is the eviction order.
  using Key = std::tuple<int, uint64_t, ChunkId>;
  int Rank(KvLevel level) const;
  std::vector<ChunkId> ContextChunks(uint64_t context) const;
  void Insert(ChunkId id, KvLevel level, uint64_t tick);

  const EvictionOrder order_;
  const EvictionUnit unit_;
  uint64_t tick_ = 0;
  std::map<Key, ChunkId> queue_;
  std::unordered_map<ChunkId, Key, ChunkIdHash> where_;
};

}  // namespace llms
