// Teacher-forced loss over a token stream, by the protocol of ../shared/golden: the stream is cut
// into consecutive windows of (window - 1) tokens, each evaluated as BOS + its tokens, and every
// prediction is scored (including the first token after BOS).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "base/status.h"
#include "engine/engine.h"

namespace llms {

struct LossOptions {
  size_t window = 512;     // tokens per window including BOS
  size_t max_windows = 0;  // 0: every whole window of the stream
  // KV precision: f16 evaluates each window in one pass; a lower level feeds the window chunk
  // by chunk and converts every completed chunk to that level before later tokens attend to it.
  KvLevel kv_level = KvLevel::kF16;
  std::function<void(size_t done, size_t total)> progress;  // after each window
};

struct LossResult {
  double mean_nll = 0;  // nats per scored token
  double perplexity = 0;
  size_t windows = 0;
  size_t scored_tokens = 0;
};

// Errors: InvalidArgument when the stream is shorter than one window; the engine's.
StatusOr<LossResult> EvaluateLoss(Engine* engine, std::span<const int32_t> stream,
                                  const LossOptions& options);

// -log softmax(logits)[target], computed in double.
double NegativeLogLikelihood(std::span<const float> logits, int32_t target);

}  // namespace llms
