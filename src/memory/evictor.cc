#include "memory/evictor.h"

#include <algorithm>

namespace llms {

int Evictor::Rank(KvLevel level) const {
  // kF16 = 0 ... kInt2 = 3: the heaviest level comes first.
  return order_ == EvictionOrder::kLctru ? static_cast<int>(level) : 0;
}

void Evictor::Insert(ChunkId id, KvLevel level, uint64_t tick) {
  Remove(id);
  const Key key{Rank(level), tick, id};
  queue_.emplace(key, id);
  where_.emplace(id, key);
}

void Evictor::Touch(ChunkId id, KvLevel level) { Insert(id, level, ++tick_); }

void Evictor::SetLevel(ChunkId id, KvLevel level) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  Insert(id, level, std::get<1>(it->second));
}

void Evictor::Remove(ChunkId id) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  queue_.erase(it->second);
  where_.erase(it);
}

std::vector<ChunkId> Evictor::NextVictims(
    const std::function<bool(uint64_t context)>& locked) const {
  for (const auto& [key, id] : queue_) {
    if (locked(id.context)) continue;
    if (unit_ == EvictionUnit::kChunk) return {id};
    std::vector<ChunkId> all;  // the whole context, in chunk order
    for (const auto& [other, where] : where_) {
      if (other.context == id.context) all.push_back(other);
    }
    std::sort(all.begin(), all.end());
    return all;
  }
  return {};
}

}  // namespace llms
