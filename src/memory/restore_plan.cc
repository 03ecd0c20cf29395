#include "memory/restore_plan.h"

#include <algorithm>

namespace llms {

std::vector<size_t> PlanRecompute(const std::vector<MissingChunk>& missing, size_t new_rows,
                                  double mean_position, const CostModel& cost) {
  std::vector<size_t> recompute, readable;
  size_t read_bytes = 0, read_requests = 0, compute_rows = new_rows;
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
    return std::max(cost.ReadSeconds(bytes, requests), cost.ComputeSeconds(rows, mean_position));
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

RestorePlan PlanRestore(const std::vector<MissingChunk>& missing, size_t new_rows,
                        double mean_position, const CostModel& cost) {
  RestorePlan plan;
  plan.recompute = PlanRecompute(missing, new_rows, mean_position, cost);
  size_t layer_bytes = 0, layer_requests = 0, pipelined_rows = new_rows;
  size_t all_bytes = 0, bulk_rows = new_rows;
  std::vector<size_t> forced;
  for (const MissingChunk& m : missing) {
    all_bytes += m.read_bytes;
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
  // Without stored chunks to recompute, the pipeline only hides reads behind the new rows, and
  // on a phone-sized CPU the I/O thread's completions then compete with a pass that uses every
  // core: measured on 2 cores, a 2k-token restore's first token came 2.7x later pipelined (78 ms)
  // than read in bulk first (29 ms). Bulk it is.
  if (plan.recompute.size() == forced.size()) {
    plan.bulk_read = true;
    return plan;
  }
  const double pipelined = std::max(cost.ReadSeconds(layer_bytes, layer_requests),
                                    cost.ComputeSeconds(pipelined_rows, mean_position));
  const double bulk =
      cost.BulkReadSeconds(all_bytes) + cost.ComputeSeconds(bulk_rows, mean_position);
  if (bulk <= pipelined) {
    plan.recompute = std::move(forced);
    plan.bulk_read = true;
  }
  return plan;
}

}  // namespace llms
