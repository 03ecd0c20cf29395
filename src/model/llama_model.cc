#include "model/llama_model.h"

#include <string>

#include "formats/weight_ref.h"

namespace llms {
namespace {

StatusOr<size_t> GetPositive(const GgufFile& f, const std::string& key) {
  auto v = f.GetInt(key);
  if (!v.ok()) return v.status();  // already names the file
  if (*v <= 0 || *v > (int64_t{1} << 32)) {
    return Status::InvalidArgument(f.name() + ": " + key + " = " + std::to_string(*v) +
                                   " is out of range");
  }
  return static_cast<size_t>(*v);
}

StatusOr<float> GetFloatOr(const GgufFile& f, const std::string& key, float fallback) {
  if (!f.Has(key)) return fallback;
  auto v = f.GetFloat(key);
  if (!v.ok()) return v.status();  // already names the file
  return static_cast<float>(*v);
}

std::string DimsString(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Binds a 2-D weight of `rows` x `cols` (GGUF dims {cols, rows}).
StatusOr<WeightMatrix> BindMatrix(const GgufFile& f, const std::string& name, size_t rows,
                                  size_t cols) {
  const GgufTensorInfo* t = f.FindTensorOrNull(name);
  if (t == nullptr) return Status::InvalidArgument(f.name() + ": tensor " + name + " is missing");
  if (t->dims.size() != 2 || t->dims[0] != cols || t->dims[1] != rows) {
    return Status::InvalidArgument(f.name() + ": tensor " + name + " has shape " +
                                   DimsString(t->dims) + ", expected [" + std::to_string(cols) +
                                   ", " + std::to_string(rows) + "]");
  }
  return WeightMatrix{t->type, rows, cols, t->data};
}

// Copies a 1-D weight of `n` values out as floats, whatever its storage type.
StatusOr<std::vector<float>> BindVector(const GgufFile& f, const std::string& name, size_t n) {
  const GgufTensorInfo* t = f.FindTensorOrNull(name);
  if (t == nullptr) return Status::InvalidArgument(f.name() + ": tensor " + name + " is missing");
  if (t->dims.size() != 1 || t->dims[0] != n) {
    return Status::InvalidArgument(f.name() + ": tensor " + name + " has shape " +
                                   DimsString(t->dims) + ", expected [" + std::to_string(n) + "]");
  }
  std::vector<float> out(n);
  DequantizeRowRef(t->type, t->data, out.data(), n);  // small: the plain decoder is enough
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(Env* env, const std::string& path) {
  LLMS_ASSIGN_OR_RETURN(auto file, GgufFile::Open(env, path));
  return FromGguf(std::move(file));
}

StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::FromGguf(std::unique_ptr<GgufFile> file) {
  auto model = std::make_unique<LlamaModel>();
  model->file_ = std::move(file);
  LLMS_RETURN_IF_ERROR(model->ReadConfig());
  LLMS_RETURN_IF_ERROR(model->BindWeights());
  LLMS_ASSIGN_OR_RETURN(model->tokenizer_, Tokenizer::FromGguf(*model->file_));
  if (model->tokenizer_->vocab_size() != model->config_.vocab_size) {
    return Status::InvalidArgument(model->file_->name() + ": tokenizer has " +
                                   std::to_string(model->tokenizer_->vocab_size()) +
                                   " tokens but token_embd.weight has " +
                                   std::to_string(model->config_.vocab_size) + " rows");
  }
  return model;
}

Status LlamaModel::ReadConfig() {
  const GgufFile& f = *file_;
  LLMS_ASSIGN_OR_RETURN(std::string_view arch, f.GetString("general.architecture"));
  if (arch != "llama") {
    return Status::InvalidArgument(f.name() + ": architecture '" + std::string(arch) +
                                   "' is not supported (supported: llama)");
  }
  ModelConfig& c = config_;
  LLMS_ASSIGN_OR_RETURN(c.dim, GetPositive(f, "llama.embedding_length"));
  LLMS_ASSIGN_OR_RETURN(c.n_layers, GetPositive(f, "llama.block_count"));
  LLMS_ASSIGN_OR_RETURN(c.n_heads, GetPositive(f, "llama.attention.head_count"));
  c.n_kv_heads = c.n_heads;
  if (f.Has("llama.attention.head_count_kv")) {
    LLMS_ASSIGN_OR_RETURN(c.n_kv_heads, GetPositive(f, "llama.attention.head_count_kv"));
  }
  LLMS_ASSIGN_OR_RETURN(c.ffn_dim, GetPositive(f, "llama.feed_forward_length"));
  c.context_length = 2048;
  if (f.Has("llama.context_length")) {
    LLMS_ASSIGN_OR_RETURN(c.context_length, GetPositive(f, "llama.context_length"));
  }
  if (f.Has("tokenizer.chat_template")) {
    LLMS_ASSIGN_OR_RETURN(std::string_view chat, f.GetString("tokenizer.chat_template"));
    c.chat_template = std::string(chat);
  }
  if (c.n_heads % c.n_kv_heads != 0 || c.dim % c.n_heads != 0) {
    return Status::InvalidArgument(f.name() + ": head counts " + std::to_string(c.n_heads) + "/" +
                                   std::to_string(c.n_kv_heads) + " do not divide width " +
                                   std::to_string(c.dim));
  }
  c.head_dim = c.dim / c.n_heads;
  if (f.Has("llama.rope.dimension_count")) {
    LLMS_ASSIGN_OR_RETURN(size_t rope_dims, GetPositive(f, "llama.rope.dimension_count"));
    if (rope_dims != c.head_dim) {
      return Status::InvalidArgument(f.name() + ": partial RoPE (rope.dimension_count " +
                                     std::to_string(rope_dims) + " != head size) is not supported");
    }
  }
  LLMS_ASSIGN_OR_RETURN(c.norm_eps, GetFloatOr(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
  LLMS_ASSIGN_OR_RETURN(c.rope_base, GetFloatOr(f, "llama.rope.freq_base", 10000.0f));
  LLMS_ASSIGN_OR_RETURN(c.rope_linear_scale, GetFloatOr(f, "llama.rope.scale_linear", 1.0f));
  if (f.Has("llama.rope.scaling.type")) {
    LLMS_ASSIGN_OR_RETURN(std::string_view type, f.GetString("llama.rope.scaling.type"));
    if (type == "linear") {
      LLMS_ASSIGN_OR_RETURN(c.rope_linear_scale, GetFloatOr(f, "llama.rope.scaling.factor", 1.0f));
    } else if (type != "none") {
      return Status::InvalidArgument(f.name() + ": rope scaling '" + std::string(type) +
                                     "' is not supported (supported: none, linear)");
    }
  }
  if (!(c.rope_linear_scale > 0) || !(c.rope_base > 0) || !(c.norm_eps > 0)) {
    return Status::InvalidArgument(f.name() + ": rope base, rope scale and norm eps must be > 0");
  }
  const GgufTensorInfo* embd = f.FindTensorOrNull("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return Status::InvalidArgument(f.name() + ": tensor token_embd.weight is missing or not 2-D");
  }
  c.vocab_size = embd->dims[1];
  return Status::Ok();
}

Status LlamaModel::BindWeights() {
  const GgufFile& f = *file_;
  const ModelConfig& c = config_;
  LlamaWeights& w = weights_;
  LLMS_ASSIGN_OR_RETURN(w.token_embd, BindMatrix(f, "token_embd.weight", c.vocab_size, c.dim));
  w.output = w.token_embd;
  if (f.FindTensorOrNull("output.weight") != nullptr) {
    LLMS_ASSIGN_OR_RETURN(w.output, BindMatrix(f, "output.weight", c.vocab_size, c.dim));
  }
  LLMS_ASSIGN_OR_RETURN(w.output_norm, BindVector(f, "output_norm.weight", c.dim));
  // Layers are added as they bind, not sized up front: block_count comes from the file, and a
  // count far beyond its tensors (up to 2^32) must fail at the first missing tensor rather than
  // allocate that many layers.
  w.layers.clear();
  for (size_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = w.layers.emplace_back();
    LLMS_ASSIGN_OR_RETURN(l.attn_norm, BindVector(f, p + "attn_norm.weight", c.dim));
    LLMS_ASSIGN_OR_RETURN(l.ffn_norm, BindVector(f, p + "ffn_norm.weight", c.dim));
    LLMS_ASSIGN_OR_RETURN(l.wq, BindMatrix(f, p + "attn_q.weight", c.q_width(), c.dim));
    LLMS_ASSIGN_OR_RETURN(l.wk, BindMatrix(f, p + "attn_k.weight", c.kv_width(), c.dim));
    LLMS_ASSIGN_OR_RETURN(l.wv, BindMatrix(f, p + "attn_v.weight", c.kv_width(), c.dim));
    LLMS_ASSIGN_OR_RETURN(l.wo, BindMatrix(f, p + "attn_output.weight", c.dim, c.q_width()));
    LLMS_ASSIGN_OR_RETURN(l.w_gate, BindMatrix(f, p + "ffn_gate.weight", c.ffn_dim, c.dim));
    LLMS_ASSIGN_OR_RETURN(l.w_up, BindMatrix(f, p + "ffn_up.weight", c.ffn_dim, c.dim));
    LLMS_ASSIGN_OR_RETURN(l.w_down, BindMatrix(f, p + "ffn_down.weight", c.dim, c.ffn_dim));
  }
  return Status::Ok();
}

size_t LlamaModel::WeightBytes() const {
  auto bytes = [](const WeightMatrix& m) { return m.rows * RowBytes(m.type, m.cols); };
  size_t total = bytes(weights_.output);
  for (const LayerWeights& l : weights_.layers) {
    total += bytes(l.wq) + bytes(l.wk) + bytes(l.wv) + bytes(l.wo) + bytes(l.w_gate) +
             bytes(l.w_up) + bytes(l.w_down);
  }
  return total;
}

}  // namespace llms
