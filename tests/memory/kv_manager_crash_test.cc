// Crash consistency of the memory manager: a child process runs calls with the background writer
// (ahead-of-time swap-out and commits in flight) and is killed with SIGKILL at random moments.
// After each kill the parent reopens the store: every context is there with its text, and its
// next call gives the same logits as recomputing the whole text (compression off, so exact).
// The random moment is counted from the child's first completed call, not from the fork, so
// that how fast the machine is cannot leave a round (or every round) with nothing to check.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "memory/kv_manager.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

Policy Uncompressed() {
  Policy p = Policy::Llms();
  p.compression = CompressionMode::kUniform;
  p.uniform_level = KvLevel::kF16;
  p.restore = RestoreMode::kLoadThenRun;  // read every stored chunk: exercises what was written
  return p;
}

struct Stack {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<ChunkStore> store;
  std::unique_ptr<KvManager> manager;
};

// Threads are created only after fork, in whichever process uses them.
StatusOr<Stack> OpenStack(const std::string& dir, bool background, size_t budget) {
  Stack s;
  LLMS_ASSIGN_OR_RETURN(s.model, LlamaModel::Load(Env::Default(), testing::DefaultModelPath()));
  LLMS_ASSIGN_OR_RETURN(s.engine, Engine::Create(s.model.get(), EngineOptions{1, 16}));
  LLMS_ASSIGN_OR_RETURN(s.store, ChunkStore::Open(Env::Default(), dir, ChunkStore::Options{}));
  KvManagerOptions o;
  o.policy = Uncompressed();
  o.budget_bytes = budget;
  o.background_writer = background;
  o.measure_cost = false;
  LLMS_ASSIGN_OR_RETURN(s.manager, KvManager::Open(s.engine.get(), s.store.get(), o));
  return s;
}

// Writes one byte to `ready_fd` when its first call has returned, then calls until killed.
[[noreturn]] void ChildWorkload(const std::string& dir, uint32_t seed, int ready_fd) {
  auto stack = OpenStack(dir, /*background=*/true, size_t{1} << 20);  // small: evictions too
  if (!stack.ok()) _exit(3);
  bool told = false;
  KvManager& m = *stack->manager;
  std::mt19937 rng(seed);
  const std::vector<int32_t> bos = {1};
  for (;;) {
    auto contexts = m.ListContexts("app");
    uint64_t id;
    if (contexts.size() < 4 || rng() % 8 == 0) {
      auto created = m.CreateContext("app", bos);
      if (!created.ok()) _exit(4);
      id = *created;
    } else {
      id = contexts[rng() % contexts.size()].id;
    }
    std::vector<int32_t> prompt(5 + rng() % 40);
    for (int32_t& t : prompt) t = static_cast<int32_t>(3 + rng() % 500);
    GenerateOptions g;
    g.sampling.temperature = 0;
    g.max_tokens = 1 + rng() % 4;
    auto r = m.Call("app", id, prompt, g, nullptr);
    if (!r.ok() && r.status().code() != StatusCode::kResourceExhausted) _exit(5);
    if (r.ok() && !told) {
      const char byte = 1;
      if (write(ready_fd, &byte, 1) != 1) _exit(6);
      told = true;
    }
  }
}

// The logits after appending `next` to `text`, from one full prefill.
std::vector<float> Recomputed(Engine* engine, std::vector<int32_t> text, int32_t next) {
  text.push_back(next);
  auto cache = engine->NewCache();
  std::vector<float> logits;
  EXPECT_OK(engine->Forward(cache.get(), text, {}, &logits));
  return logits;
}

TEST(KvManagerCrashTest, EveryCommittedContextSurvivesSigkill) {
  testing::TempDir dir;
  std::mt19937 rng(2024);
  size_t verified = 0, loaded = 0;
  for (int round = 0; round < 6; ++round) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ChildWorkload(dir.path(), static_cast<uint32_t>(round), ready[1]);
    close(ready[1]);
    // Generous: a child on a loaded machine (or under sanitizers) still gets there in seconds.
    pollfd first_call{ready[0], POLLIN, 0};
    const bool called = poll(&first_call, 1, 60000) == 1;
    char byte = 0;
    const bool told = called && read(ready[0], &byte, 1) == 1;
    if (told) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 600));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    close(ready[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);
    ASSERT_TRUE(told) << "round " << round << ": the child completed no call within 60 s";

    auto stack = OpenStack(dir.path(), /*background=*/false, size_t{64} << 20);
    ASSERT_OK(stack);
    for (const ContextInfo& info : stack->manager->ListContexts("app")) {
      auto text = stack->manager->ContextTokens("app", info.id);
      ASSERT_OK(text);
      const std::vector<int32_t> next = {7};
      GenerateOptions g;
      g.max_tokens = 0;
      g.return_prompt_logits = true;
      auto r = stack->manager->Call("app", info.id, next, g, nullptr);
      ASSERT_OK(r);
      const size_t vocab = stack->model->config().vocab_size;
      const std::vector<float> got(r->generation.prompt_logits.end() - vocab,
                                   r->generation.prompt_logits.end());
      const auto want = Recomputed(stack->engine.get(), *text, 7);
      ASSERT_LT(testing::MaxRelativeError(got.data(), want.data(), vocab), 1e-4)
          << "round " << round << " context " << info.id;
      ++verified;
      loaded += r->stats.chunks_loaded;
    }
  }
  std::printf("verified %zu contexts after 6 kills; %zu chunks came back from flash\n", verified,
              loaded);
  EXPECT_GT(verified, 0u);
  EXPECT_GT(loaded, 0u);
}

}  // namespace
}  // namespace llms
