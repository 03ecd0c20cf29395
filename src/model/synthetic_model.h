// Synthetic models: random-weight GGUF files of real Llama shapes, so speed and memory can be
// measured at real scale where no real weights can be downloaded. Their text is meaningless;
// their cost is real. The tokenizer is a valid llama vocab (specials, 256 byte tokens, filler).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "env/env.h"
#include "formats/weight_types.h"

namespace llms {

struct SyntheticShape {
  std::string name;
  size_t dim, n_layers, n_heads, n_kv_heads, ffn_dim, vocab_size, context_length;
};

// "tinyllama" (TinyLlama-1.1B), "llama2-7b" (Llama-2-7B), "llama2-7b-8l" (8 layers of its
// shape) and "small" (a quick test shape).
const std::vector<SyntheticShape>& SyntheticShapes();
std::optional<SyntheticShape> FindSyntheticShape(std::string_view name);

struct SyntheticOptions {
  WeightType type = WeightType::kQ8_0;  // of every matrix (F32, F16, BF16, Q8_0, Q4_0, Q4_K)
  uint64_t seed = 1;
  int threads = 0;                                          // for quantizing; 0: one per core
  std::function<void(size_t done, size_t total)> progress;  // tensors written
};

// Writes the model to `path` (atomically, through a temporary file). With Q4_K the output
// matrix is Q6_K, as in the common Q4_K_M files. Errors: InvalidArgument for a shape the type
// cannot hold; the Env's write errors.
Status WriteSyntheticModel(Env* env, const std::string& path, const SyntheticShape& shape,
                           const SyntheticOptions& options);

}  // namespace llms
