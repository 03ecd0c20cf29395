// Sampler: picks the next token from logits. Greedy at temperature 0; otherwise repetition
// penalty, temperature, top-k, then top-p (nucleus) over a seeded generator, in llama.cpp's
// order, so a seed reproduces a run.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace llms {

struct SamplingOptions {
  float temperature = 0.8f;     // 0: greedy (argmax)
  int top_k = 40;               // 0: off
  float top_p = 0.95f;          // 1: off
  float repeat_penalty = 1.0f;  // 1: off; > 1 discourages the last `repeat_last_n` tokens
  int repeat_last_n = 64;
  uint64_t seed = 0;

  // Empty when valid; otherwise what is wrong, naming the option.
  std::string Validate() const;
};

// Thread safety: none (it owns the random generator).
class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // `recent`: the context's tokens so far (for the repetition penalty). `logits` is modified.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> recent);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

int32_t ArgMax(std::span<const float> logits);

}  // namespace llms
