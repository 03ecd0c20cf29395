// Accuracy under KV compression (../shared/spec/LLMS.md §3, §7): multi-turn contexts fed turn by
// turn through the memory manager, each turn scored teacher-forced against the context's
// compressed KV; loss, perplexity, KL divergence from f16 KV and next-token agreement per mode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "memory/policy.h"
#include "model/tokenizer.h"

namespace llms {

struct AccuracyOptions {
  size_t stories = 12;      // contexts, one story each
  size_t turns = 8;         // calls per context; the first is not scored (no compressed KV yet)
  size_t turn_tokens = 40;  // prompt tokens per call
  std::function<void(size_t done, size_t total)> progress;  // after each call
};

// A compression mode as a policy of the memory manager.
struct CompressionCase {
  std::string name;
  Policy policy;
};
// f16, int8, int4 and int2 everywhere, and tolerance-aware at 50% and 25% of int8 (4 and 2 bits
// per value on average).
std::vector<CompressionCase> CompressionCases();

struct AccuracyRow {
  std::string mode;
  double loss = 0;        // mean negative log-likelihood, nats per scored token
  double perplexity = 0;  // exp(loss)
  double kl_vs_f16 = 0;   // mean KL(p_f16 || p_mode), nats per scored token
  double agreement = 0;   // share of positions whose argmax equals f16's
  double bits = 0;        // mean nominal bits per value of the completed chunks
  size_t scored = 0;
};

// The first `options.stories` stories of `text` (separated by blank lines) that have at least
// turns x turn_tokens tokens, cut to that length. Errors: InvalidArgument when there are fewer.
StatusOr<std::vector<std::vector<int32_t>>> SelectStories(const Tokenizer& tokenizer,
                                                          const std::string& text,
                                                          const AccuracyOptions& options);

// One row per case, in order; the first case must be f16 (the reference of KL and agreement).
// Deterministic: the same stories give the same numbers. Errors: the manager's.
StatusOr<std::vector<AccuracyRow>> EvaluateAccuracy(
    Engine* engine, const std::vector<std::vector<int32_t>>& stories,
    const std::vector<CompressionCase>& cases, const AccuracyOptions& options);

}  // namespace llms
