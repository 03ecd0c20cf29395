#include "model/synthetic_model.h"

#include <cmath>
#include <cstring>

#include "base/thread_pool.h"
#include "formats/weight_ref.h"
#include "model/gguf_writer.h"

namespace llms {
namespace {

// splitmix64: a fast, well-mixed generator; seeding it per row makes the bytes independent of
// the thread count.
uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [-amp, amp].
void RandomRow(uint64_t seed, float amp, float* out, size_t n) {
  uint64_t state = seed;
  for (size_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(SplitMix(&state) >> 11) * (1.0 / 9007199254740992.0);
    out[i] = static_cast<float>((2.0 * u - 1.0) * amp);
  }
}

std::vector<std::string> SyntheticVocab(size_t n, std::vector<float>* scores,
                                        std::vector<int32_t>* types) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  *types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof(piece), "<0x%02X>", b);
    tokens.emplace_back(piece);
    types->push_back(6);
  }
  // Filler pieces: "\u2581" followed by a base-26 name, all distinct.
  for (size_t i = 0; tokens.size() < n; ++i) {
    std::string piece = "\xE2\x96\x81";
    for (size_t v = i;; v = v / 26 - 1) {
      piece += static_cast<char>('a' + v % 26);
      if (v < 26) break;
    }
    tokens.push_back(piece);
    types->push_back(1);
  }
  tokens.resize(n);
  types->resize(n);
  scores->assign(n, 0.0f);
  for (size_t i = 0; i < n; ++i) (*scores)[i] = -static_cast<float>(i);
  return tokens;
}

void AddMetadata(GgufWriter* w, const SyntheticShape& s) {
  w->AddString("general.architecture", "llama");
  w->AddString("general.name", "llms synthetic " + s.name);
  w->AddUint32("llama.context_length", static_cast<uint32_t>(s.context_length));
  w->AddUint32("llama.embedding_length", static_cast<uint32_t>(s.dim));
  w->AddUint32("llama.block_count", static_cast<uint32_t>(s.n_layers));
  w->AddUint32("llama.feed_forward_length", static_cast<uint32_t>(s.ffn_dim));
  w->AddUint32("llama.attention.head_count", static_cast<uint32_t>(s.n_heads));
  w->AddUint32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  w->AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w->AddFloat32("llama.rope.freq_base", 10000.0f);
  std::vector<float> scores;
  std::vector<int32_t> types;
  w->AddString("tokenizer.ggml.model", "llama");
  w->AddStringArray("tokenizer.ggml.tokens", SyntheticVocab(s.vocab_size, &scores, &types));
  w->AddFloat32Array("tokenizer.ggml.scores", scores);
  w->AddInt32Array("tokenizer.ggml.token_type", types);
  w->AddUint32("tokenizer.ggml.bos_token_id", 1);
  w->AddUint32("tokenizer.ggml.eos_token_id", 2);
  w->AddUint32("tokenizer.ggml.unknown_token_id", 0);
}

}  // namespace

const std::vector<SyntheticShape>& SyntheticShapes() {
  static const std::vector<SyntheticShape> shapes = {
      {"tinyllama", 2048, 22, 32, 4, 5632, 32000, 2048},
      {"llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096},
      // Llama-2-7B cut to 8 of its 32 layers, every per-layer size kept: the KV bytes per unit
      // of compute are the full model's, at a quarter of the time per token.
      {"llama2-7b-8l", 4096, 8, 32, 32, 11008, 32000, 4096},
      // Cut to 2 layers for the report's wide matrix of runs (2 cores prefill it at ~4x 8l).
      {"llama2-7b-2l", 4096, 2, 32, 32, 11008, 32000, 4096},
      {"small", 256, 2, 4, 2, 768, 512, 1024},
  };
  return shapes;
}

std::optional<SyntheticShape> FindSyntheticShape(std::string_view name) {
  for (const SyntheticShape& s : SyntheticShapes()) {
    if (s.name == name) return s;
  }
  return std::nullopt;
}

Status WriteSyntheticModel(Env* env, const std::string& path, const SyntheticShape& s,
                           const SyntheticOptions& options) {
  if (RowBytes(options.type, s.dim) == 0 || RowBytes(options.type, s.ffn_dim) == 0) {
    return Status::InvalidArgument("shape " + s.name + " has rows that are not whole blocks of " +
                                   GetWeightTypeInfo(options.type)->name);
  }
  auto pool = std::make_shared<ThreadPool>(options.threads);
  GgufWriter w;
  AddMetadata(&w, s);
  size_t tensor_index = 0;
  const size_t total = 3 + 9 * s.n_layers;
  auto done = std::make_shared<size_t>(0);
  auto report = [done, total, progress = options.progress] {
    ++*done;
    if (progress) progress(*done, total);
  };
  auto matrix = [&](const std::string& name, WeightType type, size_t rows, size_t cols) {
    const uint64_t seed = options.seed * 1000003u + tensor_index++;
    const float amp = std::sqrt(3.0f / static_cast<float>(cols));  // unit-variance outputs
    w.AddTensor(name, type, {cols, rows}, [=](std::span<uint8_t> out) {
      const size_t row_bytes = RowBytes(type, cols);
      pool->ParallelFor(rows, 16, [&](size_t begin, size_t end) {
        std::vector<float> row(cols);
        for (size_t r = begin; r < end; ++r) {
          RandomRow(seed * 0x100000001B3ull + r, amp, row.data(), cols);
          QuantizeRowRef(type, row.data(), out.data() + r * row_bytes, cols);
        }
      });
      report();
    });
  };
  auto ones = [&](const std::string& name, size_t n) {
    ++tensor_index;
    w.AddTensor(name, WeightType::kF32, {n}, [n, report](std::span<uint8_t> out) {
      const float one = 1.0f;
      for (size_t i = 0; i < n; ++i) std::memcpy(out.data() + 4 * i, &one, 4);
      report();
    });
  };
  const WeightType t = options.type;
  const size_t head_dim = s.dim / s.n_heads;
  matrix("token_embd.weight", t, s.vocab_size, s.dim);
  for (size_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    ones(p + "attn_norm.weight", s.dim);
    matrix(p + "attn_q.weight", t, s.n_heads * head_dim, s.dim);
    matrix(p + "attn_k.weight", t, s.n_kv_heads * head_dim, s.dim);
    matrix(p + "attn_v.weight", t, s.n_kv_heads * head_dim, s.dim);
    matrix(p + "attn_output.weight", t, s.dim, s.n_heads * head_dim);
    ones(p + "ffn_norm.weight", s.dim);
    matrix(p + "ffn_gate.weight", t, s.ffn_dim, s.dim);
    matrix(p + "ffn_up.weight", t, s.ffn_dim, s.dim);
    matrix(p + "ffn_down.weight", t, s.dim, s.ffn_dim);
  }
  ones("output_norm.weight", s.dim);
  matrix("output.weight", t == WeightType::kQ4_K ? WeightType::kQ6_K : t, s.vocab_size, s.dim);
  return w.Write(env, path);
}

}  // namespace llms
