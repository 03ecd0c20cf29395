// CostModel: how long recomputing and reading chunks takes on this device, measured at startup
// (../shared/spec/LLMS.md §4), and the restore plan it implies: which missing chunks to read and
// which to recompute so that the I/O thread and the compute finish together.
#pragma once

#include <cstddef>
#include <vector>

#include "base/status.h"

namespace llms {

class Engine;
class ChunkStore;

struct CostModel {
  double compute_seconds_per_token = 1e-3;      // matmuls of one row, all layers
  double attend_seconds_per_token_pair = 1e-9;  // attention of one row over one position
  double read_seconds_per_byte = 1.0 / 2.0e9;   // direct reads of layer-sized requests
  double read_seconds_per_request = 50e-6;
  double bulk_read_seconds_per_byte = 1.0 / 2.0e9;  // whole chunks in merged requests

  // Seconds to compute `rows` rows whose positions average `mean_position`.
  double ComputeSeconds(size_t rows, double mean_position) const {
    return static_cast<double>(rows) *
           (compute_seconds_per_token + attend_seconds_per_token_pair * mean_position);
  }
  double ReadSeconds(size_t bytes, size_t requests) const {
    return static_cast<double>(bytes) * read_seconds_per_byte +
           static_cast<double>(requests) * read_seconds_per_request;
  }

  double BulkReadSeconds(size_t bytes) const {
    return static_cast<double>(bytes) * bulk_read_seconds_per_byte;
  }

  // Measures compute on `engine` (two short prefills) and reads on `store`: with
  // `write_scratch`, of a scratch context written and read back, then deleted; without, of
  // chunks the store already holds (nothing is written; `defaults`' read figures stay when it
  // holds none). With a null store only compute is measured.
  static StatusOr<CostModel> Measure(Engine* engine, ChunkStore* store, bool write_scratch,
                                     const CostModel& defaults);
  static StatusOr<CostModel> Measure(Engine* engine, ChunkStore* store);  // with scratch writes
};

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
