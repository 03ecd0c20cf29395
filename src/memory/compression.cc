#include "memory/compression.h"

#include "memory/planner.h"

namespace llms {
namespace {

bool Coarser(KvLevel a, KvLevel b) { return KvLevelBits(a) < KvLevelBits(b); }

std::vector<KvLevel> PlanFor(const Policy& p, const std::vector<PlannerChunk>& planned) {
  if (p.compression != CompressionMode::kUniform) {
    PlannerOptions po;
    po.target_bits = p.target_bits;
    return PlanLevels(planned, po);
  }
  std::vector<KvLevel> levels;
  for (const PlannerChunk& c : planned) {
    levels.push_back(c.pinned || !Coarser(p.uniform_level, c.current) ? c.current
                                                                      : p.uniform_level);
  }
  return levels;
}

}  // namespace

void CompressChunks(const Policy& policy, const std::vector<Context*>& contexts,
                    size_t chunk_tokens, uint64_t* next_version, Evictor* evictor) {
  std::vector<std::pair<Context*, size_t>> members;
  std::vector<PlannerChunk> planned;
  for (Context* c : contexts) {
    for (size_t i = 0; i < c->chunks.size(); ++i) {
      const KvChunk* chunk = c->cache->chunk(i);
      const bool partial =
          chunk != nullptr ? !chunk->full() : (i + 1) * chunk_tokens > c->cache->num_tokens();
      members.emplace_back(c, i);
      planned.push_back({c->chunks[i].density, c->chunks[i].level, partial});
    }
  }
  const std::vector<KvLevel> levels = PlanFor(policy, planned);
  for (size_t k = 0; k < members.size(); ++k) {
    auto [c, i] = members[k];
    ChunkState& s = c->chunks[i];
    KvChunk* chunk = c->cache->chunk(i);
    if (chunk == nullptr || chunk->level() == levels[k] || !chunk->ConvertTo(levels[k]).ok()) {
      continue;
    }
    // A recomputed chunk re-quantized to its stored level matches its flash copy.
    const bool same_as_flash =
        s.on_flash && s.meta.level == static_cast<uint8_t>(levels[k]) && !s.dirty;
    if (!same_as_flash) {
      s.version = ++*next_version;
      s.dirty = true;
    }
    s.level = levels[k];
    evictor->SetLevel({c->id, static_cast<uint32_t>(i)}, s.level);
  }
}

}  // namespace llms
