#include "memory/restore_plan.h"

#include <algorithm>

namespace llms {

namespace {

// Seconds to compute the new rows, which follow the context's old tokens (2 * mean_position of
// them) and so attend over all of them, plus `recomputed` rows of old chunks, which sit at
// `mean_position` on average.
double RowsSeconds(const CostModel& cost, size_t new_rows, size_t recomputed,
                   double mean_position) {
  const double new_position = 2 * mean_position + static_cast<double>(new_rows) / 2;
  return cost.ComputeSeconds(new_rows, new_position) +
         cost.ComputeSeconds(recomputed, mean_position);
}

}  // namespace

std::vector<size_t> PlanRecompute(const std::vector<MissingChunk>& missing, size_t new_rows,
                                  double mean_position, const CostModel& cost) {
  std::vector<size_t> recompute, readable;
  size_t read_bytes = 0, read_requests = 0, compute_rows = 0;  // recomputed rows
  for (size_t i = 0; i < missing.size(); ++i) {
    if (missing[i].read_bytes == 0) {
      recompute.push_back(missing[i].index);
      compute_rows += missing[i].tokens;
    } else {
      readable.push_back(i);
      read_bytes += missing[i].read_bytes;
      read_requests += missing[i].layers;
    }
  }
  // Most expensive to read per token first: those are the best to recompute instead.
  std::sort(readable.begin(), readable.end(), [&](size_t a, size_t b) {
    const double ra = static_cast<double>(missing[a].read_bytes) / missing[a].tokens;
    const double rb = static_cast<double>(missing[b].read_bytes) / missing[b].tokens;
    return ra != rb ? ra > rb : missing[a].index < missing[b].index;
  });
  auto makespan = [&](size_t bytes, size_t requests, size_t rows) {
    return std::max(cost.ReadSeconds(bytes, requests),
                    RowsSeconds(cost, new_rows, rows, mean_position));
  };
  for (size_t i : readable) {
    const MissingChunk& m = missing[i];
    const double now = makespan(read_bytes, read_requests, compute_rows);
    const double moved =
        makespan(read_bytes - m.read_bytes, read_requests - m.layers, compute_rows + m.tokens);
    if (moved >= now) break;
    read_bytes -= m.read_bytes;
    read_requests -= m.layers;
    compute_rows += m.tokens;
    recompute.push_back(m.index);
  }
  std::sort(recompute.begin(), recompute.end());
  return recompute;
}

// The pipelined pass: the first group of layers is read before any layer can compute; after it,
// reads and compute overlap, and the last group computes after its read. `compute` includes the
// I/O thread's CPU work, which competes with a pass that uses every core (measured on 2 cores:
// a 2k-token restore behind a 1-token prompt took 78 ms pipelined, 29 ms read in bulk first).
double PipelinedSeconds(double read, size_t groups, double compute) {
  const double g = static_cast<double>(std::max<size_t>(groups, 1));
  return std::max(read + compute / g, read / g + compute);
}

RestorePlan PlanRestore(const std::vector<MissingChunk>& missing, size_t new_rows,
                        double mean_position, const CostModel& cost, ReadPath path) {
  RestorePlan plan;
  plan.recompute = PlanRecompute(missing, new_rows, mean_position, cost);
  size_t layer_bytes = 0, layer_requests = 0, pipelined_rows = 0;  // recomputed rows
  size_t all_bytes = 0, bulk_rows = 0, groups = 1;
  std::vector<size_t> forced;
  for (const MissingChunk& m : missing) {
    all_bytes += m.read_bytes;
    groups = std::max(groups, m.layers);
    if (m.read_bytes == 0) {
      forced.push_back(m.index);
      bulk_rows += m.tokens;
    }
    if (std::binary_search(plan.recompute.begin(), plan.recompute.end(), m.index)) {
      pipelined_rows += m.tokens;
    } else {
      layer_bytes += m.read_bytes;
      layer_requests += m.layers;
    }
  }
  if (all_bytes == 0) return plan;
  const double pipelined =
      PipelinedSeconds(cost.ReadSeconds(layer_bytes, layer_requests), groups,
                       RowsSeconds(cost, new_rows, pipelined_rows, mean_position) +
                           cost.verify_seconds_per_byte * static_cast<double>(layer_bytes));
  const double bulk =
      cost.BulkReadSeconds(all_bytes) + RowsSeconds(cost, new_rows, bulk_rows, mean_position);
  if (path == ReadPath::kBulk || (path == ReadPath::kPlanned && bulk <= pipelined)) {
    plan.recompute = std::move(forced);
    plan.bulk_read = true;
  }
  return plan;
}

}  // namespace llms
