#include "memory/eviction_queues.h"

namespace llms {

int EvictionQueues::Rank(KvLevel level) const {
  // kF16 = 0 ... kInt2 = 3: the heaviest level comes first.
  return order_ == EvictionOrder::kLctru ? static_cast<int>(level) : 0;
}

void EvictionQueues::Touch(ChunkId id, KvLevel level, uint64_t tick) {
  Remove(id);
  const Key key{Rank(level), tick, id};
  queue_.emplace(key, id);
  where_.emplace(id, key);
}

void EvictionQueues::SetLevel(ChunkId id, KvLevel level) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  const uint64_t tick = std::get<1>(it->second);
  Touch(id, level, tick);
}

void EvictionQueues::Remove(ChunkId id) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  queue_.erase(it->second);
  where_.erase(it);
}

std::optional<ChunkId> EvictionQueues::Victim(const std::function<bool(ChunkId)>& skip) const {
  for (const auto& [key, id] : queue_) {
    if (!skip(id)) return id;
  }
  return std::nullopt;
}

}  // namespace llms
