// Metrics: llmsd's counters and histograms in the Prometheus text format (GET /metrics): switch
// latency, time to ready, bytes read and written, chunks per level and location, budget use,
// tokens and generation time (for tokens per second), queue depth, calls by outcome.
// Thread safety: Record* and Render may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>

#include "memory/kv_manager.h"

namespace llms {

class Metrics {
 public:
  // One finished call: its first slice's switch statistics, bytes over all slices, tokens,
  // decode seconds, and outcome ("ok", "error", "cancelled").
  void RecordCall(const CallStats& stats, size_t prompt_tokens, size_t completion_tokens,
                  double decode_seconds, const std::string& outcome);
  std::string Render(KvManager* manager, size_t queue_depth) const;

 private:
  struct Histogram {
    static constexpr std::array<double, 12> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,   0.25,   0.5,   1,    2.5,   10};
    std::array<uint64_t, kBounds.size()> counts{};  // cumulative per bound is rendered
    uint64_t count = 0;
    double sum = 0;
    void Observe(double v);
    std::string Render(const std::string& name, const std::string& help) const;
  };

  mutable Mutex mu_;
  Histogram switch_latency_, ready_;
  uint64_t calls_ok_ = 0, calls_error_ = 0, calls_cancelled_ = 0;
  uint64_t bytes_read_ = 0, bytes_written_ = 0;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  uint64_t chunks_loaded_ = 0, chunks_recomputed_ = 0, chunks_damaged_ = 0;
  double decode_seconds_ = 0;
};

}  // namespace llms
