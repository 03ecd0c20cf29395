// LlamaModel: a GGUF file of the Llama family (Llama 2/3, Mistral, TinyLlama) mapped and checked:
// hyper-parameters, every tensor's presence, shape and type, and the tokenizer. Weights stay in
// the mapping; only the small norm vectors are copied out as floats.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "env/env.h"
#include "formats/weight_types.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

namespace llms {

struct ModelConfig {
  size_t dim = 0;  // embedding width
  size_t n_layers = 0;
  size_t n_heads = 0;     // query heads
  size_t n_kv_heads = 0;  // key/value heads (GQA: n_heads is a multiple)
  size_t head_dim = 0;
  size_t ffn_dim = 0;
  size_t vocab_size = 0;
  size_t context_length = 0;  // as the file declares it
  float norm_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_linear_scale = 1.0f;  // positions are divided by this (linear RoPE scaling)
  std::string chat_template;       // tokenizer.chat_template (Jinja), empty when absent

  size_t q_width() const { return n_heads * head_dim; }
  size_t kv_width() const { return n_kv_heads * head_dim; }
};

struct LayerWeights {
  std::vector<float> attn_norm;  // [dim]
  std::vector<float> ffn_norm;   // [dim]
  WeightMatrix wq;               // [q_width x dim]
  WeightMatrix wk;               // [kv_width x dim]
  WeightMatrix wv;               // [kv_width x dim]
  WeightMatrix wo;               // [dim x q_width]
  WeightMatrix w_gate;           // [ffn_dim x dim]
  WeightMatrix w_up;             // [ffn_dim x dim]
  WeightMatrix w_down;           // [dim x ffn_dim]
};

struct LlamaWeights {
  WeightMatrix token_embd;         // [vocab x dim]
  WeightMatrix output;             // [vocab x dim]; the embedding when the file ties them
  std::vector<float> output_norm;  // [dim]
  std::vector<LayerWeights> layers;
};

// Thread safety: immutable after Load; safe to share across threads.
class LlamaModel {
 public:
  // Errors: the file's (NotFound, IOError, Corruption), and InvalidArgument naming an unsupported
  // architecture, tokenizer, tensor type, or a missing or mis-shaped tensor.
  static StatusOr<std::unique_ptr<LlamaModel>> Load(Env* env, const std::string& path);
  static StatusOr<std::unique_ptr<LlamaModel>> FromGguf(std::unique_ptr<GgufFile> file);

  const ModelConfig& config() const { return config_; }
  const LlamaWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return *file_; }
  // Bytes of weights one decode step reads (every matrix once).
  size_t WeightBytes() const;

  LlamaModel() = default;  // use Load or FromGguf

 private:
  Status ReadConfig();
  Status BindWeights();

  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  LlamaWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace llms
