// KvManager on the real stories260K model and a real flash store in a temporary directory:
// lossless restore under random eviction, the budget, persistence across reopen, corruption
// fallback, and the baselines' policies.
#include "memory/kv_manager.h"

#include <cstdio>
#include <fstream>
#include <random>

#include "engine/perplexity.h"
#include "memory/call_session.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

constexpr char kApp[] = "com.example.notes";
const std::vector<int32_t> kBos = {1};

class KvManagerTest : public testing::DefaultEngineTest {
 protected:
  void OpenManager(Policy policy, size_t budget, bool background = false,
                   CostModel cost = CostModel{}) {
    manager_.reset();
    if (!store_) {
      auto store = ChunkStore::Open(Env::Default(), dir_.path(), ChunkStore::Options{});
      ASSERT_OK(store);
      store_ = std::move(store).value();
    }
    KvManagerOptions options;
    options.policy = policy;
    options.budget_bytes = budget;
    options.background_writer = background;
    options.measure_cost = false;
    options.cost = cost;
    auto manager = KvManager::Open(engine_.get(), store_.get(), options);
    ASSERT_OK(manager);
    manager_ = std::move(manager).value();
  }
  void Reopen(Policy policy, size_t budget) {
    manager_.reset();
    store_.reset();
    OpenManager(policy, budget);
  }

  std::vector<int32_t> Story(size_t begin, size_t n) {
    static const std::vector<int32_t> all = [] {
      std::ifstream in(testing::SharedPath("data/tinystories-valid.txt"));
      std::string text(40000, '\0');
      in.read(text.data(), static_cast<std::streamsize>(text.size()));
      text.resize(static_cast<size_t>(in.gcount()));
      return model_->tokenizer().Encode(text, false);
    }();
    return {all.begin() + static_cast<std::ptrdiff_t>(begin),
            all.begin() + static_cast<std::ptrdiff_t>(begin + n)};
  }

  // Greedy call returning the prefill's last logits.
  StatusOr<CallResult> CallFor(uint64_t id, const std::vector<int32_t>& prompt, size_t max_tokens) {
    GenerateOptions options;
    options.sampling.temperature = 0;
    options.max_tokens = max_tokens;
    options.return_prompt_logits = true;
    return manager_->Call(kApp, id, prompt, options, nullptr);
  }
  static std::vector<float> LastLogits(const CallResult& r) {
    const size_t vocab = model_->config().vocab_size;
    const auto& l = r.generation.prompt_logits;
    return {l.end() - static_cast<std::ptrdiff_t>(vocab), l.end()};
  }
  size_t ChunkBytes(KvLevel level) {
    return engine_->kv_layout().LayerBytes(level) * model_->config().n_layers;
  }

  testing::TempDir dir_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<KvManager> manager_;
};

Policy Uncompressed(RestoreMode restore) {
  Policy p = Policy::Llms();
  p.compression = CompressionMode::kUniform;
  p.uniform_level = KvLevel::kF16;
  p.restore = restore;
  return p;
}

TEST_F(KvManagerTest, RestoreIsLosslessUnderRandomEviction) {
  // A read of a chunk costs about as much as recomputing it, so the pipelined plan mixes both.
  CostModel balanced;
  balanced.compute_seconds_per_token = 1e-3;
  balanced.read_seconds_per_byte = 16e-3 / static_cast<double>(ChunkBytes(KvLevel::kF16));
  balanced.bulk_read_seconds_per_byte = balanced.read_seconds_per_byte;  // no bulk advantage
  for (RestoreMode mode :
       {RestoreMode::kPipelined, RestoreMode::kLoadThenRun, RestoreMode::kRecomputeOnly}) {
    OpenManager(Uncompressed(mode), size_t{64} << 20, false, balanced);
    auto kept = manager_->CreateContext(kApp, {});
    auto evicted = manager_->CreateContext(kApp, {});
    ASSERT_OK(kept);
    ASSERT_OK(evicted);
    std::mt19937 rng(static_cast<uint32_t>(mode) + 1);
    size_t offset = 0, loaded = 0, recomputed = 0;
    for (int turn = 0; turn < 6; ++turn) {
      auto prompt = Story(offset, 20 + rng() % 40);
      if (turn == 0) prompt.insert(prompt.begin(), 1);
      offset += prompt.size();
      auto a = CallFor(*kept, prompt, 3);
      auto b = CallFor(*evicted, prompt, 3);
      ASSERT_OK(a);
      ASSERT_OK(b);
      const auto want = LastLogits(*a);
      const auto got = LastLogits(*b);
      EXPECT_LT(testing::MaxRelativeError(got.data(), want.data(), want.size()), 1e-4)
          << "mode " << static_cast<int>(mode) << " turn " << turn;
      EXPECT_EQ(a->generation.tokens, b->generation.tokens);
      loaded += b->stats.chunks_loaded;
      recomputed += b->stats.chunks_recomputed;
      // Evict a random subset of the second context's chunks.
      auto info = manager_->GetContextInfo(kApp, *evicted);
      ASSERT_OK(info);
      std::vector<size_t> victims;
      for (size_t c = 0; c < info->chunks; ++c) {
        if (rng() % 2) victims.push_back(c);
      }
      ASSERT_OK(manager_->TEST_EvictChunks(*evicted, victims));
      ASSERT_OK(manager_->CheckInvariants());
    }
    // Every mode brought chunks back, by its own means.
    EXPECT_GT(loaded + recomputed, 5u) << "mode " << static_cast<int>(mode);
    if (mode == RestoreMode::kLoadThenRun) {
      EXPECT_EQ(recomputed, 0u);
    }
    if (mode == RestoreMode::kRecomputeOnly) {
      EXPECT_EQ(loaded, 0u);
    }
    if (mode == RestoreMode::kPipelined) {
      EXPECT_GT(loaded, 0u);
      EXPECT_GT(recomputed, 0u);
    }
    std::printf("restore mode %d: %zu chunks loaded, %zu recomputed\n", static_cast<int>(mode),
                loaded, recomputed);
  }
}

// A context adopted from a resident cache continues exactly as that cache does, after the budget
// made the manager evict and write it and read it back; a KV that does not fit the text is
// refused.
TEST_F(KvManagerTest, AnAdoptedContextContinuesAsItsSourceWould) {
  std::vector<int32_t> history = Story(0, 150);
  history.insert(history.begin(), 1);
  std::unique_ptr<KvCache> source = engine_->NewCache(nullptr);
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.max_tokens = 0;
  std::vector<int32_t> source_tokens;
  ASSERT_OK(Generate(engine_.get(), source.get(), &source_tokens, history, g, nullptr));
  // Room for about one history at f16: adopting the second evicts the first.
  const size_t chunks = CeilDiv(history.size(), engine_->kv_layout().chunk_tokens);
  OpenManager(Uncompressed(RestoreMode::kLoadThenRun), (chunks + 2) * ChunkBytes(KvLevel::kF16));
  auto first = manager_->AdoptContext(kApp, history, *source);
  auto second = manager_->AdoptContext(kApp, history, *source);
  ASSERT_OK(first);
  ASSERT_OK(second);
  ASSERT_OK(manager_->CheckInvariants());
  auto info = manager_->GetContextInfo(kApp, *first);
  ASSERT_OK(info);
  EXPECT_EQ(info->tokens, history.size());
  EXPECT_LT(info->resident_chunks, info->chunks);
  EXPECT_EQ(info->flash_chunks, info->chunks);

  const std::vector<int32_t> prompt = Story(150, 20);
  g.max_tokens = 4;
  g.return_prompt_logits = true;
  auto want = Generate(engine_.get(), source.get(), &source_tokens, prompt, g, nullptr);
  ASSERT_OK(want);
  auto got = CallFor(*first, prompt, 4);
  ASSERT_OK(got);
  EXPECT_GT(got->stats.chunks_loaded, 0u);
  EXPECT_EQ(got->generation.tokens, want->tokens);
  const size_t vocab = model_->config().vocab_size;
  EXPECT_LT(testing::MaxRelativeError(
                LastLogits(*got).data(),
                want->prompt_logits.data() + want->prompt_logits.size() - vocab, vocab),
            1e-4);

  const std::vector<int32_t> shorter(history.begin(), history.end() - 1);
  EXPECT_EQ(manager_->AdoptContext(kApp, shorter, *source).status().code(),
            StatusCode::kInvalidArgument);
  // KV of another layout (chunks of 32 tokens) is refused, not read with this model's.
  auto other = Engine::Create(model_.get(), EngineOptions{1, 32});
  ASSERT_OK(other);
  std::unique_ptr<KvCache> wide = (*other)->NewCache(nullptr);
  std::vector<int32_t> wide_tokens;
  g.max_tokens = 0;
  ASSERT_OK(Generate(other->get(), wide.get(), &wide_tokens, history, g, nullptr));
  auto refused = manager_->AdoptContext(kApp, history, *wide);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("chunks of 32"), std::string::npos)
      << refused.status().ToString();
}

TEST_F(KvManagerTest, BudgetIsNeverExceeded) {
  const size_t budget = 10 * ChunkBytes(KvLevel::kF16);
  OpenManager(Policy::Llms(), budget);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) {
    auto id = manager_->CreateContext(kApp, kBos);
    ASSERT_OK(id);
    ids.push_back(*id);
  }
  std::mt19937 rng(3);
  size_t offset = 0;
  for (int call = 0; call < 24; ++call) {
    const uint64_t id = ids[rng() % ids.size()];
    auto prompt = Story(offset, 10 + rng() % 30);
    offset += prompt.size();
    auto r = CallFor(id, prompt, 4);
    ASSERT_OK(r);
    ASSERT_OK(manager_->CheckInvariants());
    EXPECT_LE(manager_->budget().peak(), budget);
  }
  EXPECT_GT(manager_->budget().used(), 0u);
  // The budget was the binding constraint: something had to be evicted.
  EXPECT_GT(manager_->budget().peak(), budget - ChunkBytes(KvLevel::kF16));
}

TEST_F(KvManagerTest, ContextLargerThanTheBudgetIsAClearError) {
  OpenManager(Policy::Llms(), 2 * ChunkBytes(KvLevel::kF16));
  auto id = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  auto r = CallFor(*id, Story(0, 80), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("budget"), std::string::npos) << r.status().ToString();
  ASSERT_OK(manager_->CheckInvariants());
  // The context is intact and usable for a smaller prompt.
  auto tokens = manager_->ContextTokens(kApp, *id);
  ASSERT_OK(tokens);
  EXPECT_EQ(tokens->size(), 1u);
  EXPECT_OK(CallFor(*id, Story(0, 8), 1));
}

// A prompt whose new chunks need more than the budget at f16, but whose context fits once
// compressed, is computed in pieces with the finished chunks compressed in between; its
// predictions stay close to an unconstrained run's, and an uncompressed policy still refuses.
TEST_F(KvManagerTest, LongPromptFitsTheBudgetOnceCompressed) {
  const auto prompt = Story(0, 100);  // 101 positions with BOS: 7 chunks, 6 of them full
  const size_t budget = 4 * ChunkBytes(KvLevel::kF16);
  auto mean_nll = [&](const CallResult& r) {
    const size_t vocab = model_->config().vocab_size;
    double nll = 0;
    for (size_t j = 0; j < prompt.size(); ++j) {  // row 0 is the pending BOS
      nll += NegativeLogLikelihood(std::span(r.generation.prompt_logits).subspan(j * vocab, vocab),
                                   prompt[j]);
    }
    return nll / static_cast<double>(prompt.size());
  };
  OpenManager(Uncompressed(RestoreMode::kPipelined), size_t{64} << 20);
  auto id = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  auto unconstrained = CallFor(*id, prompt, 4);
  ASSERT_OK(unconstrained);

  OpenManager(Uncompressed(RestoreMode::kPipelined), budget);
  id = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  auto refused = CallFor(*id, prompt, 4);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);

  OpenManager(Policy::Llms(), budget);
  id = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  auto pieces = CallFor(*id, prompt, 4);
  ASSERT_OK(pieces);
  ASSERT_OK(manager_->CheckInvariants());
  EXPECT_LE(manager_->budget().peak(), budget);
  EXPECT_EQ(pieces->generation.prompt_tokens, prompt.size() + 1);
  EXPECT_EQ(pieces->generation.tokens.size(), 4u);
  auto tokens = manager_->ContextTokens(kApp, *id);
  ASSERT_OK(tokens);
  EXPECT_EQ(tokens->size(), 1 + prompt.size() + 4);
  const double f16 = mean_nll(*unconstrained), compressed = mean_nll(*pieces);
  std::printf("prompt loss: f16 unconstrained %.6f, in pieces under %zu bytes %.6f\n", f16, budget,
              compressed);
  EXPECT_LT(compressed, f16 * 1.02);
  // A prompt that cannot fit even compressed fails after some pieces ran: the context is left
  // as it was (its partly filled last chunk, compressed meanwhile, is dropped and recomputed).
  auto too_long = CallFor(*id, Story(100, 400), 1);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kResourceExhausted);
  ASSERT_OK(manager_->CheckInvariants());
  auto after = manager_->ContextTokens(kApp, *id);
  ASSERT_OK(after);
  EXPECT_EQ(*after, *tokens);
  auto next = CallFor(*id, Story(100, 20), 2);
  ASSERT_OK(next);
  ASSERT_OK(manager_->CheckInvariants());
  // The 20 new tokens: the pending token's KV, computed by the failed call, belongs to text
  // the context kept, so it stayed.
  EXPECT_EQ(next->generation.prompt_tokens, 20u);
}

// Issue 11: a call whose text cannot be made durable (a full disk) says so, and the context is
// left where the call began, in memory and after a reopen; once there is room, calls go on.
TEST_F(KvManagerTest, ACallThatCannotBeSavedFailsAndLeavesTheContextAsItWas) {
  OpenManager(Uncompressed(RestoreMode::kPipelined), size_t{64} << 20);
  auto id = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  ASSERT_OK(CallFor(*id, Story(0, 40), 4));
  const std::vector<int32_t> saved = *manager_->ContextTokens(kApp, *id);
  store_->TEST_FailContextUpdates(true);
  auto lost = CallFor(*id, Story(40, 30), 4);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(lost.status().message().find("context " + std::to_string(*id)), std::string::npos)
      << lost.status().ToString();
  EXPECT_NE(lost.status().message().find("is full"), std::string::npos);
  EXPECT_EQ(*manager_->ContextTokens(kApp, *id), saved);
  ASSERT_OK(manager_->CheckInvariants());
  // A call run in steps by a service (prompt, then a yielding generation) that fails at its end
  // goes back to where its first step began.
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.max_tokens = 6;
  auto session = manager_->BeginCall(kApp, *id, Story(40, 30), g, StepLimits{20, 3});
  ASSERT_OK(session);
  for (int step = 0; step < 3; ++step) {
    auto r = (*session)->Step(nullptr);
    ASSERT_OK(r);
    EXPECT_EQ(r->stop_reason, step < 2 ? "yield" : "length");
  }
  EXPECT_TRUE((*session)->finished());
  auto end = (*session)->End();
  EXPECT_EQ(end.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(*manager_->ContextTokens(kApp, *id), saved);
  store_->TEST_FailContextUpdates(false);
  auto next = CallFor(*id, Story(40, 30), 4);
  ASSERT_OK(next);
  const std::vector<int32_t> after = *manager_->ContextTokens(kApp, *id);
  EXPECT_EQ(after.size(), saved.size() + 30 + 4);
  Reopen(Uncompressed(RestoreMode::kPipelined), size_t{64} << 20);
  EXPECT_EQ(*manager_->ContextTokens(kApp, *id), after);
}

// Issue 11: a context with nothing pending (a reply of zero tokens) can be called with an empty
// prompt: its last token is computed again, and the generation is that of a normal call.
TEST_F(KvManagerTest, AnEmptyPromptContinuesAContextWithNothingPending) {
  OpenManager(Uncompressed(RestoreMode::kPipelined), size_t{64} << 20);
  auto a = manager_->CreateContext(kApp, kBos), b = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_OK(CallFor(*a, Story(0, 37), 0));  // everything computed, nothing generated
  auto again = CallFor(*a, {}, 6);
  ASSERT_OK(again);
  EXPECT_EQ(again->generation.tokens.size(), 6u);
  auto reference = CallFor(*b, Story(0, 37), 6);
  ASSERT_OK(reference);
  EXPECT_EQ(again->generation.tokens, reference->generation.tokens);
  ASSERT_OK(manager_->CheckInvariants());
  // When the last token's chunk is full and compressed, that chunk is recomputed.
  OpenManager(Policy::Llms(), size_t{64} << 20);
  auto c = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(c);
  ASSERT_OK(CallFor(*c, Story(0, 47), 0));  // 48 tokens: three full chunks
  auto full = CallFor(*c, {}, 6);
  ASSERT_OK(full);
  EXPECT_EQ(full->generation.tokens.size(), 6u);
  EXPECT_EQ(full->generation.prompt_tokens, engine_->kv_layout().chunk_tokens);
  ASSERT_OK(manager_->CheckInvariants());
}

TEST_F(KvManagerTest, ContextsSurviveReopenAndContinueFromFlash) {
  OpenManager(Uncompressed(RestoreMode::kPipelined), size_t{64} << 20);
  auto id = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  auto first = CallFor(*id, Story(0, 100), 5);
  ASSERT_OK(first);
  auto tokens_before = manager_->ContextTokens(kApp, *id);
  ASSERT_OK(tokens_before);
  // Reference: the same next call on a context that never left memory.
  auto twin = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(twin);
  ASSERT_OK(CallFor(*twin, Story(0, 100), 5));
  auto want = CallFor(*twin, Story(100, 10), 2);
  ASSERT_OK(want);

  Reopen(Uncompressed(RestoreMode::kLoadThenRun), size_t{64} << 20);
  auto tokens_after = manager_->ContextTokens(kApp, *id);
  ASSERT_OK(tokens_after);
  EXPECT_EQ(*tokens_after, *tokens_before);
  auto next = CallFor(*id, Story(100, 10), 2);
  ASSERT_OK(next);
  EXPECT_GT(next->stats.chunks_loaded, 0u);
  EXPECT_EQ(next->stats.chunks_recomputed, 0u);
  const auto a = LastLogits(*want);
  const auto b = LastLogits(*next);
  EXPECT_LT(testing::MaxRelativeError(b.data(), a.data(), a.size()), 1e-4);
}

TEST_F(KvManagerTest, CorruptExtentFallsBackToRecompute) {
  OpenManager(Uncompressed(RestoreMode::kLoadThenRun), size_t{64} << 20);
  auto id = manager_->CreateContext(kApp, kBos);
  auto twin = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  ASSERT_OK(twin);
  ASSERT_OK(CallFor(*id, Story(0, 60), 1));
  ASSERT_OK(CallFor(*twin, Story(0, 60), 1));
  ASSERT_OK(manager_->TEST_EvictChunks(*id, {0, 1, 2}));
  // Flip bytes all over the data file: every stored extent of the evicted chunks is damaged.
  {
    std::fstream f(dir_.path() + "/chunks.dat", std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good());
    f.seekg(0, std::ios::end);
    const auto size = static_cast<size_t>(f.tellg());
    for (size_t off = 100; off < size; off += 1000) {
      f.seekp(static_cast<std::streamoff>(off));
      f.put('\x7f');
    }
  }
  auto want = CallFor(*twin, Story(60, 10), 1);
  auto got = CallFor(*id, Story(60, 10), 1);
  ASSERT_OK(want);
  ASSERT_OK(got);
  EXPECT_GT(got->stats.chunks_recomputed, 0u);
  const auto a = LastLogits(*want);
  const auto b = LastLogits(*got);
  EXPECT_LT(testing::MaxRelativeError(b.data(), a.data(), a.size()), 1e-4);
}

TEST_F(KvManagerTest, AppsAreIsolated) {
  OpenManager(Policy::Llms(), size_t{8} << 20);
  auto id = manager_->CreateContext(kApp, kBos);
  ASSERT_OK(id);
  EXPECT_EQ(manager_->GetContextInfo("com.other", *id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->DeleteContext("com.other", *id).code(), StatusCode::kNotFound);
  GenerateOptions options;
  EXPECT_EQ(manager_->Call("com.other", *id, Story(0, 4), options, nullptr).status().code(),
            StatusCode::kNotFound);
  EXPECT_TRUE(manager_->ListContexts("com.other").empty());
  EXPECT_EQ(manager_->ListContexts(kApp).size(), 1u);
  EXPECT_OK(manager_->DeleteContext(kApp, *id));
  EXPECT_TRUE(manager_->ListContexts(kApp).empty());
}

TEST_F(KvManagerTest, EveryPolicyServesCallsWithinTheBudget) {
  for (const std::string& name : Policy::Names()) {
    SCOPED_TRACE(name);
    const size_t budget = 12 * ChunkBytes(KvLevel::kF16);
    OpenManager(*Policy::ByName(name), budget, /*background=*/true);
    std::vector<uint64_t> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(*manager_->CreateContext(kApp, kBos));
    size_t offset = 0;
    for (int call = 0; call < 9; ++call) {
      auto prompt = Story(offset, 40);
      offset += 40;
      auto r = CallFor(ids[static_cast<size_t>(call) % 3], prompt, 2);
      ASSERT_OK(r);
      ASSERT_OK(manager_->CheckInvariants());
    }
    ASSERT_OK(manager_->Flush());
    for (uint64_t id : ids) ASSERT_OK(manager_->DeleteContext(kApp, id));
  }
}

}  // namespace
}  // namespace llms
