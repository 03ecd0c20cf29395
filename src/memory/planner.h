// CompressionPlanner: chooses each chunk's precision level from its information density so that
// the chunks as a whole meet an average bit target, keeping the dense (attention-heavy) chunks
// precise (../shared/spec/LLMS.md §3). Pure computation: no memory, no I/O.
//
// Objective: minimise sum_i D_i * err(level_i) subject to sum_i bits(level_i) <= target * n,
// where err(level) is the measured loss increase of uniform quantization at that level.
// Solved greedily: every chunk starts at the coarsest allowed level and the upgrade with the
// largest error reduction per extra bit is taken while the target allows. Because err is convex
// in bits, this ranks chunks by density into bands, as the paper's threshold search does.
#pragma once

#include <cstddef>
#include <vector>

#include "formats/kv_format.h"  // KvLevel

namespace llms {

struct PlannerChunk {
  float density = 0;                // information density (engine statistics)
  KvLevel current = KvLevel::kF16;  // precision it has now: the plan never goes above it
  bool pinned = false;              // keep as is (the newest, partly filled chunk)
};

struct PlannerOptions {
  // Average nominal bits per value over the planned chunks: 4 is half of int8 (the default).
  double target_bits = 4.0;
  KvLevel finest = KvLevel::kInt8;  // the most precise level the plan hands out
  KvLevel coarsest = KvLevel::kInt2;
};

// Returns one level per chunk. Pinned chunks keep their level and are outside the target (as
// the newest chunk is outside uniform compression too).
std::vector<KvLevel> PlanLevels(const std::vector<PlannerChunk>& chunks,
                                const PlannerOptions& options);

// Relative loss increase of a level (0 for f16, 1 for int2).
double LevelError(KvLevel level);

}  // namespace llms
