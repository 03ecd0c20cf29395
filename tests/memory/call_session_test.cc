// CallSession on the real stories260K model and a flash store: a call in steps plans its restore
// once and commits its text once; the budget forces evictions of dirty chunks during calls, and
// none of their writes or syncs happens while a forward pass runs (observed through the Env).
#include "memory/call_session.h"

#include <atomic>
#include <fstream>

#include "env/fault_env.h"
#include "memory/kv_manager.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

constexpr char kApp[] = "app";

class CallSessionTest : public testing::DefaultEngineTest {
 protected:
  void Open(const Policy& policy, size_t budget, Env* env = Env::Default(),
            const Clock* clock = Clock::Real()) {
    manager_.reset();
    store_.reset();
    auto store = ChunkStore::Open(env, dir_.path(), ChunkStore::Options{});
    ASSERT_OK(store);
    store_ = std::move(store).value();
    KvManagerOptions o;
    o.policy = policy;
    o.budget_bytes = budget;
    o.background_writer = false;
    o.measure_cost = false;
    o.clock = clock;
    auto manager = KvManager::Open(engine_.get(), store_.get(), o);
    ASSERT_OK(manager);
    manager_ = std::move(manager).value();
  }
  std::vector<int32_t> Story(size_t n) {
    std::ifstream in(testing::SharedPath("data/tinystories-valid.txt"));
    std::string text(20000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    std::vector<int32_t> t = model_->tokenizer().Encode(text, true);
    t.resize(n);
    return t;
  }
  size_t ChunkBytes() const {
    return engine_->kv_layout().LayerBytes(KvLevel::kF16) * model_->config().n_layers;
  }

  testing::TempDir dir_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<KvManager> manager_;
};

GenerateOptions Greedy(size_t max_tokens) {
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.max_tokens = max_tokens;
  g.stop_at_eos = false;
  return g;
}

// A call of 1,000 prompt tokens and 200 generated ones, in the service's steps (256 prompt rows,
// 16 tokens), on a context whose chunks were evicted: one restore plan, one commit of the text.
TEST_F(CallSessionTest, ASlicedCallPlansItsRestoreOnceAndCommitsItsTextOnce) {
  ASSERT_NO_FATAL_FAILURE(Open(Policy::Llms(), size_t{64} << 20));
  auto id = manager_->CreateContext(kApp, {});
  ASSERT_OK(id);
  ASSERT_OK(manager_->Call(kApp, *id, Story(100), Greedy(8), nullptr));
  ASSERT_OK(manager_->EvictAll());
  const uint64_t plans = manager_->restore_plans();
  const uint64_t commits = store_->stats().context_updates;
  const std::vector<int32_t> prompt = Story(1000);
  auto session = manager_->BeginCall(kApp, *id, {prompt.begin() + 100, prompt.end()}, Greedy(200),
                                     StepLimits{256, 16});
  ASSERT_OK(session);
  size_t steps = 0;
  while (!(*session)->finished()) {
    ASSERT_OK((*session)->Step(nullptr));
    ++steps;
  }
  auto result = (*session)->End();
  ASSERT_OK(result);
  EXPECT_EQ(result->generation.tokens.size(), 200u);
  EXPECT_GT(result->stats.chunks_loaded + result->stats.chunks_recomputed, 0u);
  EXPECT_EQ(steps, 4u + 12u);  // 900 prompt rows in 256s; 200 tokens in 16s (the first with them)
  EXPECT_EQ(manager_->restore_plans() - plans, 1u);
  EXPECT_EQ(store_->stats().context_updates - commits, 1u);
  EXPECT_EQ(manager_->ContextTokens(kApp, *id)->size(), 1008u + 200);
  ASSERT_OK(manager_->CheckInvariants());
}

// Contexts left dirty (no ahead-of-time writes) under a budget of a few contexts: each call has
// to evict and write dirty chunks of the others, and every write and sync of the store happens
// outside the forward passes.
TEST_F(CallSessionTest, NoFlashIoRunsInsideAForwardPass) {
  FaultEnv env(Env::Default());
  std::atomic<int> in_pass{0}, outside{0};
  env.SetObserver([&](const std::string& op, const std::string& what) {
    (engine_->forward_running() ? in_pass : outside)++;
  });
  ASSERT_NO_FATAL_FAILURE(Open(Policy::NoLifecycle(), 12 * ChunkBytes(), &env));
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(*manager_->CreateContext(kApp, {}));
  const std::vector<int32_t> story = Story(400);
  for (int turn = 0; turn < 3; ++turn) {
    for (uint64_t id : ids) {
      const std::vector<int32_t> prompt(story.begin() + turn * 40, story.begin() + turn * 40 + 40);
      auto r = manager_->Call(kApp, id, prompt, Greedy(8), nullptr);
      ASSERT_OK(r);
      ASSERT_OK(manager_->CheckInvariants());
    }
  }
  std::printf("store I/O: %d writes/syncs outside passes, %d inside; %llu chunk writes\n",
              outside.load(), in_pass.load(),
              static_cast<unsigned long long>(store_->stats().writes));
  EXPECT_GT(store_->stats().writes, 0u);  // dirty victims were written during calls
  EXPECT_GT(outside.load(), 0);
  EXPECT_EQ(in_pass.load(), 0);
}

// A session dropped without End (a failure, a service giving up) leaves the context as it was.
TEST_F(CallSessionTest, ASessionDroppedWithoutEndPutsTheContextBack) {
  ASSERT_NO_FATAL_FAILURE(Open(Policy::Llms(), size_t{64} << 20));
  auto id = manager_->CreateContext(kApp, {});
  ASSERT_OK(id);
  ASSERT_OK(manager_->Call(kApp, *id, Story(40), Greedy(4), nullptr));
  const std::vector<int32_t> before = *manager_->ContextTokens(kApp, *id);
  {
    auto session = manager_->BeginCall(kApp, *id, Story(60), Greedy(20), StepLimits{30, 5});
    ASSERT_OK(session);
    ASSERT_OK((*session)->Step(nullptr));
    ASSERT_OK((*session)->Step(nullptr));
    // While it runs, others see the context as it was and cannot start a call on it.
    EXPECT_EQ(*manager_->ContextTokens(kApp, *id), before);
    EXPECT_EQ(manager_->BeginCall(kApp, *id, {1}, Greedy(1)).status().code(),
              StatusCode::kUnavailable);
  }
  EXPECT_EQ(*manager_->ContextTokens(kApp, *id), before);
  const std::vector<int32_t> more = {2};
  auto again = manager_->Call(kApp, *id, more, Greedy(3), nullptr);
  ASSERT_OK(again);
  ASSERT_OK(manager_->CheckInvariants());
}

// The manager's clock dates contexts and times calls: a ManualClock makes both deterministic
// (the setup before a pass, on a clock that does not move, takes no time).
TEST_F(CallSessionTest, TheClockIsTheManagers) {
  ManualClock clock;
  clock.Advance(10);
  ASSERT_NO_FATAL_FAILURE(Open(Policy::Llms(), size_t{64} << 20, Env::Default(), &clock));
  auto id = manager_->CreateContext(kApp, {});
  ASSERT_OK(id);
  EXPECT_EQ(manager_->GetContextInfo(kApp, *id)->last_used_unix_ms, clock.UnixMillis());
  clock.Advance(5);
  auto r = manager_->Call(kApp, *id, Story(30), Greedy(2), nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(manager_->GetContextInfo(kApp, *id)->last_used_unix_ms, clock.UnixMillis());
  EXPECT_EQ(r->stats.first_token_seconds, r->generation.prefill_seconds);  // no setup time
}

// Without ahead-of-time writes (vLLM-S), the dirty chunks that a call must evict are written as
// one batch before they are dropped: one data sync for the set, not one per chunk.
TEST_F(CallSessionTest, DirtyVictimsAreWrittenAsOneBatch) {
  ASSERT_NO_FATAL_FAILURE(Open(Policy::VllmS(), 12 * ChunkBytes()));
  const uint64_t a = *manager_->CreateContext(kApp, {});
  const uint64_t b = *manager_->CreateContext(kApp, {});
  const std::vector<int32_t> story = Story(300);
  ASSERT_OK(manager_->Call(kApp, a, {story.begin(), story.begin() + 170}, Greedy(4), nullptr));
  const StoreStats before = store_->stats();
  EXPECT_EQ(before.writes, 0u);  // vLLM-S writes nothing until it evicts
  ASSERT_OK(
      manager_->Call(kApp, b, {story.begin() + 170, story.begin() + 250}, Greedy(4), nullptr));
  const StoreStats after = store_->stats();
  std::printf("evicting for the second call: %llu chunks written, %llu syncs\n",
              static_cast<unsigned long long>(after.writes - before.writes),
              static_cast<unsigned long long>(after.syncs - before.syncs));
  EXPECT_GE(after.writes - before.writes, 4u);
  EXPECT_EQ(after.syncs - before.syncs, 1u);
  ASSERT_OK(manager_->CheckInvariants());
}

}  // namespace
}  // namespace llms
