// Generate and StopMatcher: stop strings split across pieces, held-back prefixes, the stop
// reasons ("stop", "length", "cancelled"), streamed text equal to the result, and a second call
// continuing the same context, on the real stories260K model.
#include "engine/generate.h"

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "testutil/testutil.h"

namespace llms {
namespace {

// Pushes every piece and returns the concatenated output; *stopped_at is the index of the push
// that reported the stop (-1 if none); pushing ends there.
std::string PushAll(StopMatcher* m, const std::vector<std::string>& pieces, int* stopped_at) {
  std::string out;
  *stopped_at = -1;
  for (size_t i = 0; i < pieces.size(); ++i) {
    bool stopped = false;
    out += m->Push(pieces[i], &stopped);
    if (stopped) {
      *stopped_at = static_cast<int>(i);
      return out;
    }
  }
  return out;
}

TEST(StopMatcherTest, StopSplitAcrossPushes) {
  StopMatcher m({"\nUser:"});
  bool stopped = true;
  EXPECT_EQ(m.Push("Hel", &stopped), "Hel");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Push("lo\nUs", &stopped), "lo");  // "\nUs" might begin the stop string
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Push("er:", &stopped), "");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopInsideOnePushCutsBeforeIt) {
  StopMatcher m({"\nUser:"});
  bool stopped = false;
  EXPECT_EQ(m.Push("Hello\nUser: more text", &stopped), "Hello");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcherTest, HeldPrefixReleasedWhenNotAStop) {
  StopMatcher m({"\nUser:"});
  bool stopped = true;
  EXPECT_EQ(m.Push("a\nUs", &stopped), "a");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Push("ually", &stopped), "\nUsually");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Flush(), "");

  // A held prefix at the very end comes out of Flush.
  StopMatcher end({"\nUser:"});
  EXPECT_EQ(end.Push("b\nU", &stopped), "b");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(end.Flush(), "\nU");
  EXPECT_EQ(end.Flush(), "");
}

TEST(StopMatcherTest, HoldsTheLongestPossiblePrefix) {
  // Every tail length is tried, not only the first occurrence of the stop's first byte.
  StopMatcher m({"abab!"});
  bool stopped = true;
  EXPECT_EQ(m.Push("xabab", &stopped), "x");  // "abab" is a prefix of "abab!"
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Push("ab!", &stopped), "ab");  // "ababab!": the stop starts at index 2
  EXPECT_TRUE(stopped);
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  {
    StopMatcher m({"world", "lo"});
    bool stopped = false;
    EXPECT_EQ(m.Push("hello world", &stopped), "hel");
    EXPECT_TRUE(stopped);
  }
  {
    StopMatcher m({"lo", "hell"});  // order in the list does not matter
    bool stopped = false;
    EXPECT_EQ(m.Push("hello", &stopped), "");
    EXPECT_TRUE(stopped);
  }
  {
    // Split across pushes: the held text could start either stop string.
    StopMatcher m({"END", "\n\n"});
    int at = 0;
    EXPECT_EQ(PushAll(&m, {"one\n", "two E", "N", "\n\nD"}, &at), "one\ntwo EN");
    EXPECT_EQ(at, 3);
  }
}

TEST(StopMatcherTest, NoStopStringsPassEverythingThrough) {
  for (const std::vector<std::string>& stops :
       {std::vector<std::string>{}, std::vector<std::string>{""}}) {
    StopMatcher m(stops);
    bool stopped = true;
    for (const char* piece : {"Hello", "\n", "User:", "", " \xE2\x96\x81x"}) {
      EXPECT_EQ(m.Push(piece, &stopped), piece);
      EXPECT_FALSE(stopped);
    }
    EXPECT_EQ(m.Flush(), "");
  }
}

// ---- Generate on the real model ----

// The golden greedy text from BOS (../shared/golden/stories260K.md), 64 tokens.
constexpr std::string_view kGoldenFromBos =
    " Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball. She wanted to play with it, but it was too "
    "high.\nLily";

class GenerateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = LlamaModel::Load(Env::Default(), testing::DefaultModelPath());
    ASSERT_OK(model);
    model_ = std::move(model).value();
  }
  static void TearDownTestSuite() { model_.reset(); }

  void SetUp() override {
    ASSERT_NE(model_, nullptr);
    auto engine = Engine::Create(model_.get(), EngineOptions{2, 16});
    ASSERT_OK(engine);
    engine_ = std::move(engine).value();
    cache_ = engine_->NewCache();
  }

  static GenerateOptions Greedy(size_t max_tokens) {
    GenerateOptions o;
    o.sampling.temperature = 0;
    o.max_tokens = max_tokens;
    return o;
  }

  inline static std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<KvCache> cache_;
  std::vector<int32_t> context_;
  const std::vector<int32_t> bos_ = {1};
};

TEST_F(GenerateTest, StopStringEndsGenerationBeforeIt) {
  GenerateOptions o = Greedy(64);
  o.stop = {"Lily"};
  std::string streamed;
  auto r = Generate(engine_.get(), cache_.get(), &context_, bos_, o, [&](std::string_view t) {
    streamed += t;
    return true;
  });
  ASSERT_OK(r);
  EXPECT_EQ(r->stop_reason, "stop");
  EXPECT_EQ(r->text.find("Lily"), std::string::npos) << r->text;
  EXPECT_EQ(r->text, kGoldenFromBos.substr(0, kGoldenFromBos.find("Lily")));
  EXPECT_EQ(streamed, r->text);
  EXPECT_LT(r->tokens.size(), 64u);
  EXPECT_EQ(context_.size(), 1 + r->tokens.size());
}

TEST_F(GenerateTest, MaxTokensGivesLength) {
  for (size_t max_tokens : {1u, 5u, 20u}) {
    SCOPED_TRACE(max_tokens);
    auto cache = engine_->NewCache();
    std::vector<int32_t> context;
    std::string streamed;
    auto r = Generate(engine_.get(), cache.get(), &context, bos_, Greedy(max_tokens),
                      [&](std::string_view t) {
                        streamed += t;
                        return true;
                      });
    ASSERT_OK(r);
    EXPECT_EQ(r->stop_reason, "length");
    EXPECT_EQ(r->tokens.size(), max_tokens);
    EXPECT_EQ(r->prompt_tokens, 1u);
    EXPECT_EQ(streamed, r->text);
    EXPECT_EQ(r->text, model_->tokenizer().Decode(r->tokens));
    EXPECT_EQ(kGoldenFromBos.substr(0, r->text.size()), r->text);
  }
}

// A generation resumed slice by slice (as the service interleaves calls) samples the same
// tokens, streams the same text and stops at the same stop string as one unsplit Generate.
TEST_F(GenerateTest, ResumedSlicesEqualOneGeneration) {
  for (float temperature : {0.0f, 0.9f}) {
    for (size_t slice : {1u, 3u, 7u}) {
      SCOPED_TRACE(::testing::Message() << "temperature " << temperature << " slice " << slice);
      GenerateOptions o = Greedy(48);
      o.sampling.temperature = temperature;
      o.sampling.seed = 42;
      o.stop = {"Lily"};
      if (temperature > 0) o.stop = {"zzz-never"};
      auto whole_cache = engine_->NewCache();
      std::vector<int32_t> whole_context;
      std::string whole_text;
      auto whole = Generate(engine_.get(), whole_cache.get(), &whole_context, bos_, o,
                            [&](std::string_view t) {
                              whole_text += t;
                              return true;
                            });
      ASSERT_OK(whole);
      auto cache = engine_->NewCache();
      std::vector<int32_t> context;
      std::string text;
      GenerationState state(&model_->tokenizer(), o);
      GenerateOptions sliced = o;
      sliced.state = &state;
      sliced.yield_after = slice;
      std::vector<int32_t> prompt = bos_;
      std::string reason = "yield";
      for (int i = 0; i < 100 && reason == "yield"; ++i) {
        auto r =
            Generate(engine_.get(), cache.get(), &context, prompt, sliced, [&](std::string_view t) {
              text += t;
              return true;
            });
        ASSERT_OK(r);
        EXPECT_LE(r->tokens.size(), slice);
        reason = r->stop_reason;
        prompt.clear();
      }
      EXPECT_EQ(reason, whole->stop_reason);
      EXPECT_EQ(context, whole_context);
      EXPECT_EQ(text, whole_text);
      EXPECT_EQ(state.generated, whole->tokens.size());
    }
  }
}

TEST_F(GenerateTest, ZeroMaxTokensOnlyPrefills) {
  auto r = Generate(engine_.get(), cache_.get(), &context_, bos_, Greedy(0), nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(r->stop_reason, "length");
  EXPECT_TRUE(r->tokens.empty());
  EXPECT_EQ(r->text, "");
  EXPECT_EQ(context_, bos_);
  EXPECT_EQ(cache_->num_tokens(), 1u);  // nothing pending
}

TEST_F(GenerateTest, CallbackReturningFalseCancels) {
  std::string streamed;
  int calls = 0;
  auto r =
      Generate(engine_.get(), cache_.get(), &context_, bos_, Greedy(64), [&](std::string_view t) {
        streamed += t;
        ++calls;
        return calls < 3;
      });
  ASSERT_OK(r);
  EXPECT_EQ(r->stop_reason, "cancelled");
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(streamed, r->text);
  EXPECT_LT(r->tokens.size(), 64u);
  EXPECT_EQ(kGoldenFromBos.substr(0, r->text.size()), r->text);
}

TEST_F(GenerateTest, StreamedPiecesEqualResultText) {
  GenerateOptions o = Greedy(64);
  o.stop = {"red ball"};  // held back over several tokens before it matches
  std::vector<std::string> pieces;
  auto r = Generate(engine_.get(), cache_.get(), &context_, bos_, o, [&](std::string_view t) {
    pieces.emplace_back(t);
    return true;
  });
  ASSERT_OK(r);
  EXPECT_EQ(r->stop_reason, "stop");
  std::string joined;
  for (const std::string& p : pieces) {
    EXPECT_FALSE(p.empty());  // empty pieces are not passed on
    joined += p;
  }
  EXPECT_EQ(joined, r->text);
  EXPECT_EQ(r->text, kGoldenFromBos.substr(0, kGoldenFromBos.find("red ball")));
  EXPECT_GT(pieces.size(), 5u);  // it streamed, rather than emitting everything at the end
}

TEST_F(GenerateTest, SecondCallContinuesTheContext) {
  auto first = Generate(engine_.get(), cache_.get(), &context_, bos_, Greedy(8), nullptr);
  ASSERT_OK(first);
  EXPECT_EQ(first->stop_reason, "length");
  ASSERT_EQ(context_.size(), 9u);
  // The last sampled token's K/V is computed by the next call.
  EXPECT_EQ(cache_->num_tokens(), context_.size() - 1);

  // No new prompt: the pending token alone is prefilled, and greedy decoding goes on as if it
  // had never stopped.
  auto second = Generate(engine_.get(), cache_.get(), &context_, {}, Greedy(8), nullptr);
  ASSERT_OK(second);
  EXPECT_EQ(second->stop_reason, "length");
  EXPECT_EQ(second->prompt_tokens, 1u);
  EXPECT_EQ(context_.size(), 17u);
  EXPECT_EQ(cache_->num_tokens(), context_.size() - 1);
  EXPECT_EQ(first->text + second->text,
            kGoldenFromBos.substr(0, (first->text + second->text).size()));

  // With a prompt: the pending token plus the prompt are prefilled.
  const std::vector<int32_t> more = model_->tokenizer().Encode("The end.", false);
  const size_t before = context_.size();
  auto third = Generate(engine_.get(), cache_.get(), &context_, more, Greedy(4), nullptr);
  ASSERT_OK(third);
  EXPECT_EQ(third->prompt_tokens, 1 + more.size());
  EXPECT_EQ(context_.size(), before + more.size() + 4);
  EXPECT_EQ(cache_->num_tokens(), context_.size() - 1);
}

TEST_F(GenerateTest, ContinuationMatchesOneLongCall) {
  auto long_cache = engine_->NewCache();
  std::vector<int32_t> long_context;
  auto whole = Generate(engine_.get(), long_cache.get(), &long_context, bos_, Greedy(30), nullptr);
  ASSERT_OK(whole);

  std::vector<int32_t> tokens;
  for (size_t step : {7u, 11u, 12u}) {  // crosses chunk boundaries at 16
    auto r =
        Generate(engine_.get(), cache_.get(), &context_,
                 context_.empty() ? std::span<const int32_t>(bos_) : std::span<const int32_t>(),
                 Greedy(step), nullptr);
    ASSERT_OK(r);
    tokens.insert(tokens.end(), r->tokens.begin(), r->tokens.end());
  }
  EXPECT_EQ(tokens, whole->tokens);
  EXPECT_EQ(context_, long_context);
}

TEST_F(GenerateTest, EmptyPromptWithNothingPendingIsAnError) {
  auto r = Generate(engine_.get(), cache_.get(), &context_, {}, Greedy(4), nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(context_.empty());
  EXPECT_EQ(cache_->num_tokens(), 0u);
}

TEST_F(GenerateTest, BadSamplingOptionsAreRejected) {
  GenerateOptions o = Greedy(4);
  o.sampling.top_p = 0;
  auto r = Generate(engine_.get(), cache_.get(), &context_, bos_, o, nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("top_p"), std::string::npos) << r.status().ToString();
  EXPECT_TRUE(context_.empty());
}

TEST_F(GenerateTest, OutOfVocabularyPromptLeavesTheContext) {
  const std::vector<int32_t> bad = {1, 100000};
  auto r = Generate(engine_.get(), cache_.get(), &context_, bad, Greedy(4), nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(context_.empty());
  EXPECT_EQ(cache_->num_tokens(), 0u);
}

}  // namespace
}  // namespace llms
