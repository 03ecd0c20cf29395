// Sampler: greedy and top-k 1 pick the argmax, seeds reproduce runs, top-p and top-k cut the
// candidates, the repetition penalty moves recent logits away from being picked, option
// validation names the option, and the sampled distribution matches the softmax.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "testutil/testutil.h"

namespace llms {
namespace {

SamplingOptions Opts(float temperature, int top_k, float top_p, uint64_t seed = 0) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  return o;
}

// Draws `n` tokens from fresh copies of `logits` (Sample modifies them).
std::vector<int32_t> Draw(Sampler* sampler, const std::vector<float>& logits, size_t n) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> l = logits;
    out.push_back(sampler->Sample(l, {}));
  }
  return out;
}

TEST(SamplerTest, ArgMax) {
  const std::vector<float> l = {0.5f, -1.0f, 3.0f, 2.9f};
  EXPECT_EQ(ArgMax(l), 2);
  const std::vector<float> ties = {1.0f, 4.0f, 4.0f};
  EXPECT_EQ(ArgMax(ties), 1);  // the first of equal maxima
}

TEST(SamplerTest, TemperatureZeroIsArgMax) {
  const std::vector<float> base = testing::RandomFloats(512, 7, -5.0f, 5.0f);
  const int32_t best = ArgMax(base);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Sampler sampler(Opts(0.0f, 40, 0.95f, seed));
    for (int32_t t : Draw(&sampler, base, 10)) EXPECT_EQ(t, best);
  }
}

TEST(SamplerTest, TopKOneIsArgMaxAtAnyTemperature) {
  const std::vector<float> base = testing::RandomFloats(512, 8, -1.0f, 1.0f);
  const int32_t best = ArgMax(base);
  for (float temperature : {0.1f, 0.8f, 1.0f, 5.0f, 100.0f}) {
    SCOPED_TRACE(temperature);
    for (uint64_t seed = 0; seed < 10; ++seed) {
      Sampler sampler(Opts(temperature, 1, 1.0f, seed));
      for (int32_t t : Draw(&sampler, base, 20)) EXPECT_EQ(t, best);
    }
  }
}

TEST(SamplerTest, SeedReproducesAndDifferentSeedsDiffer) {
  // Near-uniform logits over 256 tokens: every draw is a real choice.
  const std::vector<float> base = testing::RandomFloats(256, 9, -0.1f, 0.1f);
  Sampler a(Opts(1.0f, 0, 1.0f, 123)), b(Opts(1.0f, 0, 1.0f, 123)), c(Opts(1.0f, 0, 1.0f, 124));
  const std::vector<int32_t> sa = Draw(&a, base, 200);
  const std::vector<int32_t> sb = Draw(&b, base, 200);
  const std::vector<int32_t> sc = Draw(&c, base, 200);
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  // And a run does not just repeat one token.
  EXPECT_NE(std::count(sa.begin(), sa.end(), sa[0]), static_cast<std::ptrdiff_t>(sa.size()));
}

TEST(SamplerTest, TinyTopPKeepsOnlyTheBest) {
  const std::vector<float> base = testing::RandomFloats(300, 10, -0.5f, 0.5f);
  const int32_t best = ArgMax(base);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    Sampler sampler(Opts(1.0f, 0, 1e-6f, seed));
    for (int32_t t : Draw(&sampler, base, 50)) EXPECT_EQ(t, best);
  }
}

TEST(SamplerTest, TopKLimitsCandidates) {
  // Logits 0..9: top_k 3 leaves ids 7, 8, 9 only.
  std::vector<float> base(10);
  for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<float>(i) * 0.1f;
  Sampler sampler(Opts(1.0f, 3, 1.0f, 5));
  std::vector<int> counts(base.size());
  for (int32_t t : Draw(&sampler, base, 3000)) ++counts[static_cast<size_t>(t)];
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(counts[i], 0) << "id " << i;
  for (size_t i = 7; i < 10; ++i) EXPECT_GT(counts[i], 0) << "id " << i;
}

TEST(SamplerTest, RepetitionPenaltyScalesRecentLogits) {
  SamplingOptions o = Opts(0.0f, 0, 1.0f);
  o.repeat_penalty = 2.0f;
  o.repeat_last_n = 64;
  Sampler sampler(o);
  std::vector<float> logits = {3.0f, -1.0f, 2.5f, 0.5f, -4.0f};
  // Token 0 appears twice: penalized once. Token 2 is not recent. Out-of-range ids are ignored.
  const std::vector<int32_t> recent = {0, 1, 0, 4, 99, -3};
  const int32_t picked = sampler.Sample(logits, recent);
  EXPECT_FLOAT_EQ(logits[0], 1.5f);   // positive: divided
  EXPECT_FLOAT_EQ(logits[1], -2.0f);  // negative: multiplied (more negative)
  EXPECT_FLOAT_EQ(logits[2], 2.5f);   // untouched
  EXPECT_FLOAT_EQ(logits[3], 0.5f);   // untouched
  EXPECT_FLOAT_EQ(logits[4], -8.0f);
  EXPECT_EQ(picked, 2);  // without the penalty it would be 0
}

TEST(SamplerTest, RepetitionPenaltyOnlyCoversLastN) {
  SamplingOptions o = Opts(0.0f, 0, 1.0f);
  o.repeat_penalty = 4.0f;
  o.repeat_last_n = 2;
  Sampler sampler(o);
  std::vector<float> logits = {2.0f, 2.0f, 2.0f, 2.0f};
  const std::vector<int32_t> recent = {0, 1, 2, 3};  // only 2 and 3 are in the window
  sampler.Sample(logits, recent);
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], 2.0f);
  EXPECT_FLOAT_EQ(logits[2], 0.5f);
  EXPECT_FLOAT_EQ(logits[3], 0.5f);

  // Penalty 1 (off) and repeat_last_n 0 (off) leave the logits alone.
  for (auto [penalty, last_n] : {std::pair{1.0f, 64}, std::pair{3.0f, 0}}) {
    SamplingOptions off = Opts(0.0f, 0, 1.0f);
    off.repeat_penalty = penalty;
    off.repeat_last_n = last_n;
    Sampler s(off);
    std::vector<float> l = {2.0f, -2.0f};
    s.Sample(l, std::vector<int32_t>{0, 1});
    EXPECT_FLOAT_EQ(l[0], 2.0f);
    EXPECT_FLOAT_EQ(l[1], -2.0f);
  }
}

TEST(SamplingOptionsTest, ValidateNamesTheOption) {
  EXPECT_EQ(SamplingOptions{}.Validate(), "");
  EXPECT_EQ(Opts(0.0f, 0, 1.0f).Validate(), "");
  EXPECT_EQ(Opts(100.0f, 1000, 1e-9f).Validate(), "");

  struct Case {
    SamplingOptions options;
    const char* option;
  };
  std::vector<Case> cases;
  cases.push_back({Opts(-0.1f, 40, 0.9f), "temperature"});
  cases.push_back({Opts(101.0f, 40, 0.9f), "temperature"});
  cases.push_back({Opts(NAN, 40, 0.9f), "temperature"});
  cases.push_back({Opts(0.8f, -1, 0.9f), "top_k"});
  cases.push_back({Opts(0.8f, 40, 0.0f), "top_p"});
  cases.push_back({Opts(0.8f, 40, 1.5f), "top_p"});
  cases.push_back({Opts(0.8f, 40, NAN), "top_p"});
  for (float penalty : {0.0f, -1.0f, 101.0f, NAN}) {
    SamplingOptions o;
    o.repeat_penalty = penalty;
    cases.push_back({o, "repeat_penalty"});
  }
  SamplingOptions last_n;
  last_n.repeat_last_n = -1;
  cases.push_back({last_n, "repeat_last_n"});

  for (const Case& c : cases) {
    const std::string why = c.options.Validate();
    EXPECT_NE(why.find(c.option), std::string::npos)
        << "expected a message naming " << c.option << ", got '" << why << "'";
  }
}

// The empirical frequencies of `draws` samples against softmax(logits / temperature).
void ExpectMatchesSoftmax(const std::vector<float>& logits, float temperature, size_t draws) {
  double sum = 0;
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp(logits[i] / temperature);
  for (double& v : p) v /= sum;

  Sampler sampler(Opts(temperature, 0, 1.0f, 2024));
  std::vector<size_t> counts(logits.size());
  for (int32_t t : Draw(&sampler, logits, draws)) ++counts[static_cast<size_t>(t)];
  // The standard deviation of a frequency is sqrt(p(1-p)/n) <= 0.0036 at n = 20000, so 0.02 is
  // more than five of them: only a real error in the distribution fails this.
  for (size_t i = 0; i < logits.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(counts[i]) / static_cast<double>(draws), p[i], 0.02)
        << "token " << i << " at temperature " << temperature;
  }
}

TEST(SamplerTest, DistributionMatchesSoftmax) {
  ExpectMatchesSoftmax({1.0f, 2.0f, 0.5f}, 1.0f, 20000);
  ExpectMatchesSoftmax({1.0f, 2.0f, 0.5f}, 2.0f, 20000);
  ExpectMatchesSoftmax({0.0f, -1.0f, 0.7f}, 0.5f, 20000);
}

}  // namespace
}  // namespace llms
