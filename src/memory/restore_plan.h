// Restore planning: which missing chunks of a context to read from flash and which to recompute,
// and whether to read them in bulk before the pass or layer by layer during it, so that the call
// is ready as early as the cost model predicts (../shared/spec/LLMS.md §4).
#pragma once

#include <cstddef>
#include <vector>

#include "memory/cost_model.h"

namespace llms {

// A missing chunk as the restore planner sees it.
struct MissingChunk {
  size_t index = 0;       // chunk index in its context
  size_t tokens = 0;      // positions it covers
  size_t read_bytes = 0;  // its stored size (0: not on flash, must be recomputed)
  size_t layers = 0;      // read requests of the pipeline (one per group of layers)
};

// Chooses the chunks to recompute (indices into `missing`, by chunk index) so that the time to
// read the rest and the time to compute the recomputed rows plus `new_rows` are as balanced as
// the chunk granularity allows, minimising their maximum. Chunks not on flash are always
// recomputed. Prefers recomputing the chunks that are most expensive to read per token.
std::vector<size_t> PlanRecompute(const std::vector<MissingChunk>& missing, size_t new_rows,
                                  double mean_position, const CostModel& cost);

// How a restore runs: either the pipeline (PlanRecompute's split, stored chunks read layer by
// layer while the pass computes), or a bulk read (every stored chunk read whole in large merged
// requests before the pass; only chunks not on flash are recomputed), whichever the cost model
// says finishes first. Large requests reach the device's bandwidth, layer slices do not.
struct RestorePlan {
  std::vector<size_t> recompute;  // chunk indices rebuilt from text, ascending
  bool bulk_read = false;
};
RestorePlan PlanRestore(const std::vector<MissingChunk>& missing, size_t new_rows,
                        double mean_position, const CostModel& cost);

}  // namespace llms
