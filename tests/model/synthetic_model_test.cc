// Synthetic models: the "small" shape written in every weight type loads and runs; quantized
// logits stay close to the F32 model's written from the same seed; a seed writes the same bytes
// whatever the thread count; Q4_K files hold output.weight as Q6_K.
#include "model/synthetic_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "formats/weight_ref.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/llama_model.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string TypeName(WeightType t) { return GetWeightTypeInfo(t)->name; }

class SyntheticModelTest : public ::testing::Test {
 protected:
  static SyntheticShape Small() { return *FindSyntheticShape("small"); }

  std::string Write(WeightType type, uint64_t seed, int threads, const std::string& name) {
    SyntheticOptions o;
    o.type = type;
    o.seed = seed;
    o.threads = threads;
    const std::string path = dir_.File(name);
    EXPECT_OK(WriteSyntheticModel(Env::Default(), path, Small(), o));
    return path;
  }

  // Logits of every position of a 40-token prompt (ids 1, 3, 4, ..., 41), [40 x vocab].
  static std::vector<float> PromptLogits(const std::string& path) {
    auto model = LlamaModel::Load(Env::Default(), path);
    EXPECT_OK(model);
    if (!model.ok()) return {};
    auto engine = Engine::Create(model->get(), EngineOptions{2, 16});
    EXPECT_OK(engine);
    if (!engine.ok()) return {};
    std::vector<int32_t> tokens = {1};
    for (int32_t id = 3; tokens.size() < 40; ++id) tokens.push_back(id);
    auto cache = (*engine)->NewCache();
    ForwardOptions options;
    options.logits = LogitsMode::kAll;
    std::vector<float> logits;
    EXPECT_OK((*engine)->Forward(cache.get(), tokens, options, &logits));
    EXPECT_EQ(logits.size(), 40 * (*model)->config().vocab_size);
    return logits;
  }

  testing::TempDir dir_;
};

// sqrt(mean((a-b)^2)) / sqrt(mean(b^2)): the typical error against the typical logit.
double RmsRelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(err / std::max(ref, 1e-30));
}

// An F32 copy of the GGUF at `path` with every tensor replaced by its dequantized values (same
// metadata, same names and shapes), written to `out`.
Status WriteDequantizedTwin(const std::string& path, const std::string& out) {
  LLMS_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(Env::Default(), path));
  GgufWriter w;
  for (const std::string& key : file->keys()) {
    const GgufValue& v = *file->FindOrNull(key);
    switch (v.type) {
      case GgufType::kString:
        w.AddString(key, v.s);
        break;
      case GgufType::kUint32:
        w.AddUint32(key, static_cast<uint32_t>(v.i));
        break;
      case GgufType::kFloat32:
        w.AddFloat32(key, static_cast<float>(v.f));
        break;
      case GgufType::kArray:
        if (v.elem_type == GgufType::kString) {
          w.AddStringArray(key, std::vector<std::string>(v.strings.begin(), v.strings.end()));
        } else {
          w.AddArray(key, v.elem_type, v.count, v.raw);
        }
        break;
      default:
        return Status::InvalidArgument("twin: key " + key + " has a type this test does not copy");
    }
  }
  for (const GgufTensorInfo& t : file->tensors()) {
    w.AddTensor(t.name, WeightType::kF32, t.dims, [&t](std::span<uint8_t> bytes) {
      const size_t cols = t.dims[0], row_bytes = RowBytes(t.type, cols);
      float* f = reinterpret_cast<float*>(bytes.data());
      for (size_t r = 0; r < t.rows(); ++r) {
        DequantizeRowRef(t.type, t.data + r * row_bytes, f + r * cols, cols);
      }
    });
  }
  return w.Write(Env::Default(), out);
}

TEST_F(SyntheticModelTest, EveryTypeRunsAndQuantizedLogitsTrackF32) {
  const std::vector<float> reference = PromptLogits(Write(WeightType::kF32, 7, 2, "f32.gguf"));
  ASSERT_EQ(reference.size(), 40u * Small().vocab_size);
  size_t non_finite = 0;
  for (float v : reference) non_finite += !std::isfinite(v);
  ASSERT_EQ(non_finite, 0u);
  // Unit-variance random weights give logits of order one, not a degenerate all-zero output.
  double largest = 0;
  for (float v : reference) largest = std::max(largest, std::fabs(static_cast<double>(v)));
  EXPECT_GT(largest, 0.5);

  // Bounds on the logit error against F32, over all 40 x 512 logits of one seed: the RMS error
  // relative to the RMS logit, and the max error relative to the largest logit.
  // Derivation: rounding a weight to a grid of step q adds an error of RMS q/sqrt(12), a
  // relative error e per matrix of about q/(2a) for uniform weights in [-a, a]: F16 2^-12,
  // BF16 2^-9, Q8_0 (q = a/127) 1/254, Q4_0 (q = a/8) 1/16, Q4_K (min/max over 32 values, 15
  // steps) 1/15. Through embedding, 2 layers and output the logits pick up about 4e.
  // Measured on x86 (Release), rms / max: F16 0.00089 / 0.00095, BF16 0.0064 / 0.0074,
  // Q8_0 0.016 / 0.017, Q4_0 0.25 / 0.31, Q4_K 0.23 / 0.27, i.e. 3.3e-4.1e RMS. The bounds are
  // 8e (RMS) and 10e (max): 2x margin. 4-bit weights really do move uniform-random logits by a
  // quarter of their scale; the twin check below is the tight one.
  struct Bound {
    WeightType type;
    double e;  // relative rounding error per matrix
  };
  const Bound bounds[] = {
      {WeightType::kF16, 1.0 / 4096}, {WeightType::kBF16, 1.0 / 512},
      {WeightType::kQ8_0, 1.0 / 254}, {WeightType::kQ4_0, 1.0 / 16},
      {WeightType::kQ4_K, 1.0 / 15},
  };
  for (const Bound& b : bounds) {
    SCOPED_TRACE(TypeName(b.type));
    const std::string path = Write(b.type, 7, 2, TypeName(b.type) + ".gguf");
    const std::vector<float> logits = PromptLogits(path);
    ASSERT_EQ(logits.size(), reference.size());
    non_finite = 0;
    for (float v : logits) non_finite += !std::isfinite(v);
    EXPECT_EQ(non_finite, 0u);
    const double rms = RmsRelativeError(logits, reference);
    const double max = testing::MaxRelativeError(logits.data(), reference.data(), logits.size());
    std::printf("%-5s logit error vs F32: rms %.5f, max %.5f\n", TypeName(b.type).c_str(), rms,
                max);
    EXPECT_LT(rms, 8 * b.e);
    EXPECT_LT(max, 10 * b.e);
    EXPECT_GT(max, 0.0);  // it really is a different encoding

    // The error is all in the weights: an F32 model holding the dequantized weights gives the
    // same logits up to float summation order.
    const std::string twin = dir_.File("twin.gguf");
    ASSERT_OK(WriteDequantizedTwin(path, twin));
    const std::vector<float> twin_logits = PromptLogits(twin);
    ASSERT_EQ(twin_logits.size(), logits.size());
    const double twin_error =
        testing::MaxRelativeError(logits.data(), twin_logits.data(), logits.size());
    std::printf("%-5s vs its dequantized F32 twin: max %.2e\n", TypeName(b.type).c_str(),
                twin_error);
    EXPECT_LT(twin_error, 1e-4);
  }
}

TEST_F(SyntheticModelTest, SameSeedWritesIdenticalBytes) {
  for (WeightType type : {WeightType::kF16, WeightType::kQ4_K}) {
    SCOPED_TRACE(TypeName(type));
    const std::string a = ReadAll(Write(type, 11, 1, "a.gguf"));
    const std::string b = ReadAll(Write(type, 11, 2, "b.gguf"));  // other thread count
    const std::string c = ReadAll(Write(type, 12, 2, "c.gguf"));
    ASSERT_FALSE(a.empty());
    EXPECT_TRUE(a == b) << "same seed, different bytes";
    EXPECT_EQ(a.size(), c.size());
    EXPECT_FALSE(a == c) << "different seeds, same bytes";
  }
}

TEST_F(SyntheticModelTest, TensorTypes) {
  for (WeightType type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16, WeightType::kQ8_0,
                          WeightType::kQ4_0, WeightType::kQ4_K}) {
    SCOPED_TRACE(TypeName(type));
    auto file = GgufFile::Open(Env::Default(), Write(type, 3, 2, "t.gguf"));
    ASSERT_OK(file);
    const WeightType output_type = type == WeightType::kQ4_K ? WeightType::kQ6_K : type;
    const GgufTensorInfo* output = (*file)->FindTensorOrNull("output.weight");
    ASSERT_NE(output, nullptr);
    EXPECT_EQ(output->type, output_type) << "output.weight is " << TypeName(output->type);
    for (const GgufTensorInfo& t : (*file)->tensors()) {
      if (t.name == "output.weight") continue;
      const WeightType want = t.dims.size() == 1 ? WeightType::kF32 : type;  // norms stay F32
      EXPECT_EQ(t.type, want) << t.name << " is " << TypeName(t.type);
    }
    EXPECT_EQ((*file)->tensors().size(), 3 + 9 * Small().n_layers);
  }
}

TEST_F(SyntheticModelTest, ProgressReportsEveryTensor) {
  SyntheticOptions o;
  o.type = WeightType::kQ8_0;
  o.threads = 2;
  std::vector<std::pair<size_t, size_t>> calls;
  o.progress = [&](size_t done, size_t total) { calls.emplace_back(done, total); };
  ASSERT_OK(WriteSyntheticModel(Env::Default(), dir_.File("p.gguf"), Small(), o));
  const size_t total = 3 + 9 * Small().n_layers;
  ASSERT_EQ(calls.size(), total);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].first, i + 1);
    EXPECT_EQ(calls[i].second, total);
  }
}

TEST_F(SyntheticModelTest, ShapeTheTypeCannotHoldIsRejected) {
  SyntheticShape odd = Small();
  odd.name = "odd";
  odd.dim = 96;  // not a multiple of Q4_K's 256-value super-block
  odd.n_heads = 4;
  odd.n_kv_heads = 2;
  SyntheticOptions o;
  o.type = WeightType::kQ4_K;
  const std::string path = dir_.File("odd.gguf");
  Status s = WriteSyntheticModel(Env::Default(), path, odd, o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("Q4_K"), std::string::npos) << s.message();
  EXPECT_FALSE(Env::Default()->FileExists(path));
}

}  // namespace
}  // namespace llms
