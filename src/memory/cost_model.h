// CostModel: how long recomputing and reading chunks takes on this device, measured at startup
// (../shared/spec/LLMS.md §4). The restore plan it implies is memory/restore_plan.h.
#pragma once

#include <cstddef>

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
  // CPU time of checking and copying a read byte (checksum, copy into the chunk): during a
  // pipelined restore the I/O thread spends it beside a pass that already uses every core.
  double verify_seconds_per_byte = 1.0 / 4.0e9;

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

}  // namespace llms
