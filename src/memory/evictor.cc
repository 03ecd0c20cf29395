#include "memory/evictor.h"

#include <algorithm>
#include <set>

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

std::vector<ChunkId> Evictor::ContextChunks(uint64_t context) const {
  std::vector<ChunkId> all;  // in chunk order
  for (const auto& [id, key] : where_) {
    if (id.context == context) all.push_back(id);
  }
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<ChunkId> Evictor::NextVictims(
    const std::function<bool(uint64_t context)>& locked) const {
  for (const auto& [key, id] : queue_) {
    if (locked(id.context)) continue;
    if (unit_ == EvictionUnit::kChunk) return {id};
    return ContextChunks(id.context);
  }
  return {};
}

std::vector<ChunkId> Evictor::VictimsFor(size_t bytes,
                                         const std::function<bool(uint64_t context)>& locked,
                                         const std::function<size_t(ChunkId)>& bytes_of) const {
  std::vector<ChunkId> victims;
  std::set<uint64_t> whole;  // contexts taken whole (the context unit)
  size_t freed = 0;
  for (const auto& [key, id] : queue_) {
    if (freed >= bytes) break;
    if (locked(id.context)) continue;
    if (unit_ == EvictionUnit::kChunk) {
      victims.push_back(id);
      freed += bytes_of(id);
      continue;
    }
    if (!whole.insert(id.context).second) continue;
    for (const ChunkId& c : ContextChunks(id.context)) {
      victims.push_back(c);
      freed += bytes_of(c);
    }
  }
  return victims;
}

}  // namespace llms
