#include "memory/planner.h"

#include <cmath>
#include <queue>

namespace llms {
namespace {

// Levels from coarse to fine.
constexpr KvLevel kFinerOf[] = {KvLevel::kF16, KvLevel::kF16, KvLevel::kInt8, KvLevel::kInt4};

bool Finer(KvLevel a, KvLevel b) { return KvLevelBits(a) > KvLevelBits(b); }

KvLevel OneFiner(KvLevel level) { return kFinerOf[static_cast<int>(level)]; }

struct Upgrade {
  double gain_per_bit;
  size_t chunk;
  bool operator<(const Upgrade& o) const {
    if (gain_per_bit != o.gain_per_bit) return gain_per_bit < o.gain_per_bit;
    return chunk > o.chunk;  // ties: earlier chunks first
  }
};

}  // namespace

double LevelError(KvLevel level) {
  return level == KvLevel::kF16 ? 0.0 : std::pow(4.0, -KvLevelBits(level));
}

std::vector<KvLevel> PlanLevels(const std::vector<PlannerChunk>& chunks,
                                const PlannerOptions& options) {
  std::vector<KvLevel> plan(chunks.size());
  double budget = options.target_bits * static_cast<double>(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const PlannerChunk& c = chunks[i];
    KvLevel start = options.coarsest;
    if (c.pinned || Finer(start, c.current)) start = c.current;
    plan[i] = start;
    budget -= KvLevelBits(start);
  }
  std::priority_queue<Upgrade> heap;
  auto push = [&](size_t i) {
    const PlannerChunk& c = chunks[i];
    if (c.pinned || plan[i] == options.finest || plan[i] == c.current) return;
    if (!Finer(options.finest, plan[i])) return;
    const KvLevel next = OneFiner(plan[i]);
    const double bits = KvLevelBits(next) - KvLevelBits(plan[i]);
    const double gain = static_cast<double>(c.density) * (LevelError(plan[i]) - LevelError(next));
    heap.push({gain / bits, i});
  };
  for (size_t i = 0; i < chunks.size(); ++i) push(i);
  while (!heap.empty()) {
    const Upgrade u = heap.top();
    heap.pop();
    const KvLevel next = OneFiner(plan[u.chunk]);
    const double bits = KvLevelBits(next) - KvLevelBits(plan[u.chunk]);
    if (bits > budget) continue;  // a cheaper upgrade of another chunk may still fit
    budget -= bits;
    plan[u.chunk] = next;
    push(u.chunk);
  }
  return plan;
}

}  // namespace llms
