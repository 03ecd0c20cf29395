// LlamaModel: the real stories260K file loads with its known hyper-parameters; synthetic files
// load; and files built in memory with one thing broken (architecture, a tensor's presence or
// shape, the tokenizer, a hyper-parameter) give an InvalidArgument/NotFound naming it.
#include "model/llama_model.h"

#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "model/gguf_writer.h"
#include "model/synthetic_model.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

TEST(LlamaModelTest, RealModelConfig) {
  auto model = LlamaModel::Load(Env::Default(), testing::DefaultModelPath());
  ASSERT_OK(model);
  const ModelConfig& c = (*model)->config();
  EXPECT_EQ(c.dim, 64u);
  EXPECT_EQ(c.n_layers, 5u);
  EXPECT_EQ(c.n_heads, 8u);
  EXPECT_EQ(c.n_kv_heads, 4u);
  EXPECT_EQ(c.head_dim, 8u);
  EXPECT_EQ(c.ffn_dim, 172u);
  EXPECT_EQ(c.vocab_size, 512u);
  EXPECT_FLOAT_EQ(c.rope_base, 10000.0f);
  EXPECT_FLOAT_EQ(c.rope_linear_scale, 1.0f);
  EXPECT_GT(c.norm_eps, 0.0f);
  EXPECT_EQ(c.q_width(), 64u);
  EXPECT_EQ(c.kv_width(), 32u);
  EXPECT_GT((*model)->WeightBytes(), 0u);
  EXPECT_EQ((*model)->tokenizer().vocab_size(), 512u);
  EXPECT_EQ((*model)->weights().layers.size(), 5u);
  EXPECT_EQ((*model)->weights().output_norm.size(), 64u);
}

TEST(LlamaModelTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  auto model = LlamaModel::Load(Env::Default(), dir.File("absent.gguf"));
  EXPECT_EQ(model.status().code(), StatusCode::kNotFound) << model.status().ToString();
}

// ---- Models built in memory ----

// A tiny all-F32 Llama: dim 32, 2 layers, 4 heads of 8, 2 KV heads, ffn 48, vocab 300, with
// knobs that break one thing each.
struct TinySpec {
  size_t dim = 32, n_layers = 2, n_heads = 4, n_kv_heads = 2, ffn = 48, vocab = 300;
  std::string architecture = "llama";
  std::string tokenizer_model = "llama";
  size_t tokenizer_tokens = 300;       // tokens in the vocab (normally == vocab)
  bool tie_output = false;             // no output.weight
  std::set<std::string> drop_tensors;  // tensor names left out
  std::set<std::string> drop_keys;     // metadata keys left out
  std::map<std::string, std::vector<uint64_t>> dims_override;  // tensor name -> ggml dims
  std::function<void(GgufWriter*)> extra_keys;                 // more metadata
};

std::vector<std::string> TinyVocab(size_t n, std::vector<int32_t>* types) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  *types = {2, 3, 3};
  for (int b = 0; b < 256 && tokens.size() < n; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof(piece), "<0x%02X>", b);
    tokens.emplace_back(piece);
    types->push_back(6);
  }
  for (size_t i = 0; tokens.size() < n; ++i) {
    tokens.push_back("\xE2\x96\x81t" + std::to_string(i));
    types->push_back(1);
  }
  return tokens;
}

StatusOr<std::unique_ptr<LlamaModel>> BuildTiny(const TinySpec& s) {
  GgufWriter w;
  auto key = [&](const std::string& k) { return s.drop_keys.count(k) == 0; };
  if (key("general.architecture")) w.AddString("general.architecture", s.architecture);
  if (key("llama.context_length")) w.AddUint32("llama.context_length", 128);
  if (key("llama.embedding_length")) w.AddUint32("llama.embedding_length", s.dim);
  if (key("llama.block_count")) w.AddUint32("llama.block_count", s.n_layers);
  if (key("llama.feed_forward_length")) w.AddUint32("llama.feed_forward_length", s.ffn);
  if (key("llama.attention.head_count")) w.AddUint32("llama.attention.head_count", s.n_heads);
  if (key("llama.attention.head_count_kv")) {
    w.AddUint32("llama.attention.head_count_kv", s.n_kv_heads);
  }
  if (key("llama.rope.freq_base")) w.AddFloat32("llama.rope.freq_base", 500000.0f);
  if (s.extra_keys) s.extra_keys(&w);
  std::vector<int32_t> types;
  const std::vector<std::string> tokens = TinyVocab(s.tokenizer_tokens, &types);
  if (key("tokenizer.ggml.model")) w.AddString("tokenizer.ggml.model", s.tokenizer_model);
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddInt32Array("tokenizer.ggml.token_type", types);

  auto tensor = [&](const std::string& name, std::vector<uint64_t> dims) {
    if (s.drop_tensors.count(name)) return;
    if (auto it = s.dims_override.find(name); it != s.dims_override.end()) dims = it->second;
    w.AddTensor(name, WeightType::kF32, dims, [](std::span<uint8_t>) {});  // zeros
  };
  const uint64_t head_dim = s.dim / s.n_heads, q = s.n_heads * head_dim,
                 kv = s.n_kv_heads * head_dim;
  tensor("token_embd.weight", {s.dim, s.vocab});
  for (size_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensor(p + "attn_norm.weight", {s.dim});
    tensor(p + "attn_q.weight", {s.dim, q});
    tensor(p + "attn_k.weight", {s.dim, kv});
    tensor(p + "attn_v.weight", {s.dim, kv});
    tensor(p + "attn_output.weight", {q, s.dim});
    tensor(p + "ffn_norm.weight", {s.dim});
    tensor(p + "ffn_gate.weight", {s.dim, s.ffn});
    tensor(p + "ffn_up.weight", {s.dim, s.ffn});
    tensor(p + "ffn_down.weight", {s.ffn, s.dim});
  }
  tensor("output_norm.weight", {s.dim});
  if (!s.tie_output) tensor("output.weight", {s.dim, s.vocab});

  LLMS_ASSIGN_OR_RETURN(std::string bytes, w.WriteToString());
  LLMS_ASSIGN_OR_RETURN(auto file,
                        GgufFile::FromRegion(NewMemoryRegion(std::move(bytes)), "x.gguf"));
  return LlamaModel::FromGguf(std::move(file));
}

// Expects `r` to fail with `code` and a message containing every string in `parts`.
void ExpectError(const StatusOr<std::unique_ptr<LlamaModel>>& r, StatusCode code,
                 const std::vector<std::string>& parts) {
  ASSERT_FALSE(r.ok()) << "loaded, but expected an error naming " << parts[0];
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  for (const std::string& p : parts) {
    EXPECT_NE(r.status().message().find(p), std::string::npos)
        << "'" << r.status().message() << "' does not mention '" << p << "'";
  }
}

TEST(LlamaModelTest, TinyModelLoads) {
  auto model = BuildTiny(TinySpec{});
  ASSERT_OK(model);
  const LlamaModel& m = **model;
  const ModelConfig& c = m.config();
  EXPECT_EQ(c.dim, 32u);
  EXPECT_EQ(c.n_layers, 2u);
  EXPECT_EQ(c.n_heads, 4u);
  EXPECT_EQ(c.n_kv_heads, 2u);
  EXPECT_EQ(c.head_dim, 8u);
  EXPECT_EQ(c.ffn_dim, 48u);
  EXPECT_EQ(c.vocab_size, 300u);
  EXPECT_EQ(c.context_length, 128u);
  EXPECT_FLOAT_EQ(c.rope_base, 500000.0f);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);  // the default when the key is absent
  // Every matrix once, as F32: output + per layer q, k, v, o, gate, up, down.
  const size_t per_layer = 32 * 32 + 16 * 32 * 2 + 32 * 32 + 48 * 32 * 3;
  EXPECT_EQ(m.WeightBytes(), 4 * (300 * 32 + 2 * per_layer));
  EXPECT_NE(m.weights().output.data, m.weights().token_embd.data);
  EXPECT_EQ(m.weights().layers[1].w_down.rows, 32u);
  EXPECT_EQ(m.weights().layers[1].w_down.cols, 48u);
}

TEST(LlamaModelTest, TiedOutputUsesTheEmbedding) {
  TinySpec s;
  s.tie_output = true;
  auto model = BuildTiny(s);
  ASSERT_OK(model);
  EXPECT_EQ((*model)->weights().output.data, (*model)->weights().token_embd.data);
}

TEST(LlamaModelTest, HeadCountKvDefaultsToHeadCount) {
  TinySpec s;
  s.drop_keys = {"llama.attention.head_count_kv"};
  s.n_kv_heads = s.n_heads;  // the K/V tensors are then as wide as Q
  auto model = BuildTiny(s);
  ASSERT_OK(model);
  EXPECT_EQ((*model)->config().n_kv_heads, 4u);
}

TEST(LlamaModelTest, UnsupportedArchitecture) {
  TinySpec s;
  s.architecture = "gpt2";
  ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"x.gguf", "gpt2", "architecture"});
}

TEST(LlamaModelTest, MissingTensorIsNamed) {
  for (const char* name : {"blk.0.ffn_up.weight", "blk.1.attn_v.weight", "output_norm.weight",
                           "blk.1.ffn_norm.weight"}) {
    TinySpec s;
    s.drop_tensors = {name};
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"x.gguf", name, "missing"});
  }
  TinySpec s;
  s.drop_tensors = {"token_embd.weight"};
  ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"token_embd.weight"});
}

TEST(LlamaModelTest, MisShapedTensorIsNamedWithShapes) {
  {
    TinySpec s;  // K as wide as Q: [32, 32] where [32, 16] belongs
    s.dims_override["blk.1.attn_k.weight"] = {32, 32};
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument,
                {"blk.1.attn_k.weight", "[32, 32]", "[32, 16]"});
  }
  {
    TinySpec s;  // transposed
    s.dims_override["blk.0.ffn_down.weight"] = {32, 48};
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument,
                {"blk.0.ffn_down.weight", "[32, 48]", "[48, 32]"});
  }
  {
    TinySpec s;  // a norm of the wrong length
    s.dims_override["blk.0.attn_norm.weight"] = {16};
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument,
                {"blk.0.attn_norm.weight", "[16]", "[32]"});
  }
  {
    TinySpec s;  // output with a different vocab than the embedding
    s.dims_override["output.weight"] = {32, 200};
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument,
                {"output.weight", "[32, 200]", "[32, 300]"});
  }
  {
    TinySpec s;  // a 3-D matrix
    s.dims_override["blk.0.attn_q.weight"] = {32, 32, 1};
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"blk.0.attn_q.weight", "[32, 32, 1]"});
  }
}

TEST(LlamaModelTest, UnsupportedTokenizer) {
  TinySpec s;
  s.tokenizer_model = "gpt2";
  ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"x.gguf", "gpt2", "tokenizer"});

  TinySpec missing;
  missing.drop_keys = {"tokenizer.ggml.model"};
  ExpectError(BuildTiny(missing), StatusCode::kInvalidArgument, {"tokenizer.ggml.model"});
}

TEST(LlamaModelTest, TokenizerAndEmbeddingMustAgree) {
  TinySpec s;
  s.tokenizer_tokens = 280;
  ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"280", "300", "token_embd.weight"});
}

TEST(LlamaModelTest, BadHyperParameters) {
  {
    TinySpec s;
    s.drop_keys = {"llama.block_count"};
    ExpectError(BuildTiny(s), StatusCode::kNotFound, {"llama.block_count"});
  }
  {
    TinySpec s;  // 3 heads do not divide 32
    s.n_heads = 3;
    s.n_kv_heads = 3;
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"head counts"});
  }
  {
    TinySpec s;  // 4 query heads over 3 KV heads
    s.n_kv_heads = 3;
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"head counts"});
  }
  {
    TinySpec s;
    s.drop_keys = {"llama.embedding_length"};
    s.extra_keys = [](GgufWriter* w) { w->AddUint32("llama.embedding_length", 0); };
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"llama.embedding_length", "range"});
  }
  {
    TinySpec s;
    s.extra_keys = [](GgufWriter* w) { w->AddUint32("llama.rope.dimension_count", 4); };
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"rope.dimension_count"});
  }
  {
    TinySpec s;
    s.extra_keys = [](GgufWriter* w) { w->AddString("llama.rope.scaling.type", "yarn"); };
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"yarn"});
  }
  {
    TinySpec s;
    s.drop_keys = {"llama.rope.freq_base"};
    s.extra_keys = [](GgufWriter* w) { w->AddFloat32("llama.rope.freq_base", -1.0f); };
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"rope base"});
  }
  {
    TinySpec s;
    s.drop_keys = {"llama.rope.freq_base"};
    s.extra_keys = [](GgufWriter* w) { w->AddString("llama.rope.freq_base", "high"); };
    ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"llama.rope.freq_base"});
  }
}

TEST(LlamaModelTest, LinearRopeScaling) {
  TinySpec s;
  s.extra_keys = [](GgufWriter* w) {
    w->AddString("llama.rope.scaling.type", "linear");
    w->AddFloat32("llama.rope.scaling.factor", 4.0f);
  };
  auto model = BuildTiny(s);
  ASSERT_OK(model);
  EXPECT_FLOAT_EQ((*model)->config().rope_linear_scale, 4.0f);
}

// A block_count far beyond the file's tensors is the first missing layer tensor, not an attempt
// to allocate that many layers (gguf_fuzzer's find: 2^32 - 1 layers asked for a terabyte, which
// is std::bad_alloc thrown through the loader, or an ASan abort).
TEST(LlamaModelTest, HugeBlockCountIsAMissingTensorNotAnAllocation) {
  TinySpec s;
  s.drop_keys = {"llama.block_count"};
  s.extra_keys = [](GgufWriter* w) {
    w->AddUint32("llama.block_count", std::numeric_limits<uint32_t>::max());
  };
  ExpectError(BuildTiny(s), StatusCode::kInvalidArgument, {"blk.2.attn_norm.weight", "missing"});
}

// Errors from the GGUF getters already name the file; LlamaModel should not name it twice.
TEST(LlamaModelTest, MissingKeyNamesTheFileOnce) {
  TinySpec s;
  s.drop_keys = {"llama.block_count"};
  auto r = BuildTiny(s);
  ASSERT_FALSE(r.ok());
  const std::string& msg = r.status().message();
  const size_t first = msg.find("x.gguf");
  ASSERT_NE(first, std::string::npos) << msg;
  EXPECT_EQ(msg.find("x.gguf", first + 1), std::string::npos) << msg;
}

TEST(LlamaModelTest, SyntheticSmallModelLoads) {
  const std::optional<SyntheticShape> shape = FindSyntheticShape("small");
  ASSERT_TRUE(shape.has_value());
  testing::TempDir dir;
  const std::string path = dir.File("small.gguf");
  SyntheticOptions options;
  options.type = WeightType::kQ8_0;
  options.threads = 2;
  ASSERT_OK(WriteSyntheticModel(Env::Default(), path, *shape, options));
  auto model = LlamaModel::Load(Env::Default(), path);
  ASSERT_OK(model);
  const ModelConfig& c = (*model)->config();
  EXPECT_EQ(c.dim, shape->dim);
  EXPECT_EQ(c.n_layers, shape->n_layers);
  EXPECT_EQ(c.n_heads, shape->n_heads);
  EXPECT_EQ(c.n_kv_heads, shape->n_kv_heads);
  EXPECT_EQ(c.head_dim, shape->dim / shape->n_heads);
  EXPECT_EQ(c.ffn_dim, shape->ffn_dim);
  EXPECT_EQ(c.vocab_size, shape->vocab_size);
  EXPECT_EQ(c.context_length, shape->context_length);
  EXPECT_EQ((*model)->weights().token_embd.type, WeightType::kQ8_0);
  EXPECT_EQ((*model)->tokenizer().vocab_size(), shape->vocab_size);
  EXPECT_GT((*model)->WeightBytes(), 0u);
}

TEST(LlamaModelTest, SyntheticShapesAreKnown) {
  for (const char* name : {"tinyllama", "llama2-7b", "llama2-7b-8l", "small"}) {
    EXPECT_TRUE(FindSyntheticShape(name).has_value()) << name;
  }
  EXPECT_FALSE(FindSyntheticShape("gpt-5").has_value());
  for (const SyntheticShape& s : SyntheticShapes()) {
    EXPECT_EQ(s.dim % s.n_heads, 0u) << s.name;
    EXPECT_EQ(s.n_heads % s.n_kv_heads, 0u) << s.name;
  }
}

}  // namespace
}  // namespace llms
