// The forward pass on the real stories260K model: golden greedy outputs and losses from
// ../shared/golden/stories260K.md, recompute of any chunk subset equal to one full prefill,
// layer-by-layer loading through the hook, and attention statistics.
#include "engine/engine.h"

#include <fstream>
#include <random>
#include <sstream>

#include "engine/generate.h"
#include "engine/perplexity.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

std::vector<int32_t> ParseIds(const std::string& text) {
  std::istringstream in(text);
  std::vector<int32_t> ids;
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

// Golden ids from ../shared/golden/stories260K.md (copied here as the test's expectation).
const char* kGreedyFromBos =
    "403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 "
    "292 411 322 265 282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 426 338 391 "
    "266 267 337 335 312 432 398 312 286 267 414 270 333 415 426 13 438 310";
const char* kGreedyFromOnce =
    "432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 "
    "282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 426 338 391 266 267 337 335 "
    "312 432 398 312 286 267 414 270 333 415 426 13 438 310 439 419 357 336";

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = LlamaModel::Load(Env::Default(), testing::DefaultModelPath());
    ASSERT_OK(model);
    owned_ = std::move(model).value();
    model_ = owned_.get();
  }
  static void TearDownTestSuite() {
    model_ = nullptr;
    owned_.reset();
  }
  std::unique_ptr<Engine> MakeEngine(int threads = 2, size_t chunk = 16) {
    auto engine = Engine::Create(model_, EngineOptions{threads, chunk});
    EXPECT_OK(engine);
    return std::move(engine).value();
  }
  std::vector<int32_t> StoryTokens(size_t n) {
    std::ifstream in(testing::SharedPath("data/tinystories-valid.txt"));
    std::string text(20000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    auto ids = model_->tokenizer().Encode(text, true);
    ids.resize(n);
    return ids;
  }
  inline static std::unique_ptr<LlamaModel> owned_;
  inline static LlamaModel* model_ = nullptr;
};

TEST_F(EngineTest, GreedyMatchesGolden) {
  for (int threads : {1, 2}) {
    auto engine = MakeEngine(threads);
    const std::pair<const char*, const char*> cases[] = {{"", kGreedyFromBos},
                                                         {"Once upon a time", kGreedyFromOnce}};
    for (const auto& [prompt, golden] : cases) {
      auto cache = engine->NewCache();
      std::vector<int32_t> context;
      GenerateOptions options;
      options.sampling.temperature = 0;
      options.max_tokens = 64;
      auto result = Generate(engine.get(), cache.get(), &context,
                             model_->tokenizer().Encode(prompt, true), options, nullptr);
      ASSERT_OK(result);
      EXPECT_EQ(result->tokens, ParseIds(golden)) << "prompt '" << prompt << "'";
    }
  }
}

TEST_F(EngineTest, GreedyTextMatchesGolden) {
  auto engine = MakeEngine();
  auto cache = engine->NewCache();
  std::vector<int32_t> context;
  GenerateOptions options;
  options.sampling.temperature = 0;
  options.max_tokens = 64;
  const std::vector<int32_t> bos = {1};
  auto result = Generate(engine.get(), cache.get(), &context, bos, options, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->text,
            " Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day, she saw a big, red ball. She wanted to play with it, but it was "
            "too high.\nLily");
}

TEST_F(EngineTest, LossMatchesGolden) {
  const auto stream =
      model_->tokenizer().Encode(testing::ReadSharedText("data/tinystories-valid.txt"), false);
  auto engine = MakeEngine();
  LossOptions options;
  options.window = 512;
  options.max_windows = 1;
  auto one = EvaluateLoss(engine.get(), stream, options);
  ASSERT_OK(one);
  EXPECT_NEAR(one->mean_nll, 1.3112, 1e-3);
  options.max_windows = 8;
  auto eight = EvaluateLoss(engine.get(), stream, options);
  ASSERT_OK(eight);
  EXPECT_EQ(eight->scored_tokens, 4088u);
  EXPECT_NEAR(eight->mean_nll, 1.3871, 1e-3);
}

// Prefills `tokens` minus the last one, then appends the last; returns the final logits.
std::vector<float> FullPrefillLogits(Engine* engine, const std::vector<int32_t>& tokens,
                                     std::unique_ptr<KvCache>* cache_out) {
  auto cache = engine->NewCache();
  std::vector<float> logits;
  const std::span<const int32_t> all(tokens);
  EXPECT_OK(engine->Forward(cache.get(), all.first(tokens.size() - 1), {}, &logits));
  EXPECT_OK(engine->Forward(cache.get(), all, {}, &logits));
  if (cache_out) *cache_out = std::move(cache);
  return logits;
}

TEST_F(EngineTest, RecomputeOfRandomChunkSubsetsEqualsFullPrefill) {
  auto engine = MakeEngine();
  std::mt19937 rng(7);
  for (size_t length : {40u, 100u, 257u}) {
    const auto tokens = StoryTokens(length);
    std::unique_ptr<KvCache> reference_cache;
    const auto want = FullPrefillLogits(engine.get(), tokens, &reference_cache);
    for (int trial = 0; trial < 6; ++trial) {
      auto cache = engine->NewCache();
      std::vector<float> logits;
      const std::span<const int32_t> all(tokens);
      ASSERT_OK(engine->Forward(cache.get(), all.first(length - 1), {}, &logits));
      ForwardOptions options;
      for (size_t c = 0; c < cache->num_chunks(); ++c) {
        if (rng() % 2 == 0 || trial == 0) {
          cache->TakeChunk(c);  // evicted: only its tokens remain
          options.recompute_chunks.push_back(c);
        }
      }
      ASSERT_OK(engine->Forward(cache.get(), all, options, &logits));
      EXPECT_LT(testing::MaxRelativeError(logits.data(), want.data(), want.size()), 1e-4)
          << "length " << length << " trial " << trial;
    }
  }
}

TEST_F(EngineTest, HookLoadsLayersJustInTime) {
  auto engine = MakeEngine();
  const auto tokens = StoryTokens(70);
  std::unique_ptr<KvCache> saved;
  const auto want = FullPrefillLogits(engine.get(), tokens, &saved);

  auto cache = engine->NewCache();
  std::vector<float> logits;
  const std::span<const int32_t> all(tokens);
  ASSERT_OK(engine->Forward(cache.get(), all.first(69), {}, &logits));
  // Chunks 0 and 2 come back layer by layer from a copy ("flash"); chunk 1 is recomputed.
  std::vector<std::unique_ptr<KvChunk>> flash(cache->num_chunks());
  for (size_t c : {0u, 2u}) {
    flash[c] = cache->TakeChunk(c);
    auto empty = std::move(cache->NewChunk(flash[c]->level())).value();
    empty->set_valid_tokens(flash[c]->valid_tokens());
    cache->PutChunk(c, std::move(empty));
  }
  cache->TakeChunk(1);
  ForwardOptions options;
  options.recompute_chunks = {1};
  std::vector<size_t> hooked;
  options.before_layer = [&](size_t layer) {
    hooked.push_back(layer);
    for (size_t c : {0u, 2u}) {
      KvChunk* chunk = cache->chunk(c);
      std::copy_n(flash[c]->layer(layer), chunk->layer_bytes(), chunk->layer(layer));
      chunk->set_layer_present(layer, true);
    }
    return Status::Ok();
  };
  ASSERT_OK(engine->Forward(cache.get(), all, options, &logits));
  EXPECT_EQ(hooked, (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_LT(testing::MaxRelativeError(logits.data(), want.data(), want.size()), 1e-4);
}

TEST_F(EngineTest, MissingLayerIsAClearErrorAndLeavesTheContext) {
  auto engine = MakeEngine();
  const auto tokens = StoryTokens(40);
  auto cache = engine->NewCache();
  std::vector<float> logits;
  const std::span<const int32_t> all(tokens);
  ASSERT_OK(engine->Forward(cache.get(), all.first(39), {}, &logits));
  cache->TakeChunk(0);
  Status s = engine->Forward(cache.get(), all, {}, &logits);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("chunk 0 layer 0"), std::string::npos) << s.ToString();
  EXPECT_EQ(cache->num_tokens(), 39u);
}

TEST_F(EngineTest, BadTokensAreRejected) {
  auto engine = MakeEngine();
  auto cache = engine->NewCache();
  std::vector<float> logits;
  const std::vector<int32_t> bad = {1, 99999};
  EXPECT_EQ(engine->Forward(cache.get(), bad, {}, &logits).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->num_tokens(), 0u);
}

TEST_F(EngineTest, AttentionStatisticsAccumulate) {
  auto engine = MakeEngine();
  const auto tokens = StoryTokens(48);
  auto cache = engine->NewCache();
  std::vector<float> logits;
  ASSERT_OK(engine->Forward(cache.get(), tokens, {}, &logits));
  const ModelConfig& c = model_->config();
  double total = 0;
  for (size_t i = 0; i < cache->num_chunks(); ++i) {
    const KvChunk* chunk = cache->chunk(i);
    for (float p : chunk->prob_sum()) total += p;
    EXPECT_GT(chunk->Density(), 0.0f);
  }
  // Each (query, head, layer) distributes probability 1 over what it sees, recorded relative to
  // uniform: weighted by the p + 1 positions a query at p sees.
  const double weights = 48.0 * 49.0 / 2.0;
  EXPECT_NEAR(total / (weights * c.n_heads * c.n_layers), 1.0, 1e-4);
  // Position 0 is seen by every query of every head and layer.
  EXPECT_FLOAT_EQ(cache->chunk(0)->prob_count()[0], 48.0f * c.n_heads * c.n_layers);
  // The BOS attention sink receives more than the other tokens of its chunk on average.
  const KvChunk& first = *cache->chunk(0);
  const float bos = first.prob_sum()[0] / first.prob_count()[0];
  float others = 0;
  for (size_t t = 1; t < 16; ++t) others += first.prob_sum()[t] / first.prob_count()[t] / 15;
  EXPECT_GT(bos, others);
}

TEST_F(EngineTest, QuantizedKvStaysClose) {
  auto engine = MakeEngine();
  const auto tokens = StoryTokens(100);
  const auto want = FullPrefillLogits(engine.get(), tokens, nullptr);
  for (KvLevel level : {KvLevel::kInt8, KvLevel::kInt4}) {
    auto cache = engine->NewCache();
    std::vector<float> logits;
    const std::span<const int32_t> all(tokens);
    ASSERT_OK(engine->Forward(cache.get(), all.first(99), {}, &logits));
    for (size_t c = 0; c + 1 < cache->num_chunks(); ++c) {
      ASSERT_OK(cache->chunk(c)->ConvertTo(level));
    }
    ASSERT_OK(engine->Forward(cache.get(), all, {}, &logits));
    EXPECT_EQ(ArgMax(logits), ArgMax(want)) << KvLevelName(level);
  }
}

}  // namespace
}  // namespace llms
