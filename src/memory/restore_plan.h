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
// `mean_position` is half the context's KV length: where recomputed rows sit on average; the
// new rows follow the whole context and attend over all of it.
std::vector<size_t> PlanRecompute(const std::vector<MissingChunk>& missing, size_t new_rows,
                                  double mean_position, const CostModel& cost);

// How a restore runs: either the pipeline (PlanRecompute's split, stored chunks read layer by
// layer while the pass computes), or a bulk read (every stored chunk read whole in large merged
// requests before the pass; only chunks not on flash are recomputed), whichever the cost model
// says finishes first. Large requests reach the device's bandwidth, layer slices do not, so a
// short prompt reads in bulk; a long prompt on slow flash hides the reads behind its prefill.
struct RestorePlan {
  std::vector<size_t> recompute;  // chunk indices rebuilt from text, ascending
  bool bulk_read = false;
};
// Which way stored chunks are read: the cost model's choice, or pinned (a benchmark measuring
// both paths, a test that must not depend on what a loaded machine measured).
enum class ReadPath { kPlanned, kBulk, kPipelined };
RestorePlan PlanRestore(const std::vector<MissingChunk>& missing, size_t new_rows,
                        double mean_position, const CostModel& cost,
                        ReadPath path = ReadPath::kPlanned);

// The cost model's seconds for a pipelined pass whose reads take `read` in `groups` layer groups
// and whose compute (with the reads' CPU work) takes `compute`.
double PipelinedSeconds(double read, size_t groups, double compute);

}  // namespace llms
