// Traces: the same seed gives the same trace, files read back as written, the switching
// patterns have the shape they claim, and the StudentLife source filters what is not an app.
#include "eval/trace.h"

#include <map>
#include <set>

#include "testutil/testutil.h"

namespace llms {
namespace {

TraceOptions Options(SwitchPattern p, uint64_t seed) {
  TraceOptions o;
  o.pattern = p;
  o.contexts = 6;
  o.calls = 400;
  o.seed = seed;
  o.dataset = "sst2";
  o.warmup_tokens = 20;
  return o;
}

bool SameTrace(const Trace& a, const Trace& b) {
  if (a.name != b.name || a.pattern != b.pattern || a.seed != b.seed || a.contexts != b.contexts ||
      a.context_names != b.context_names || a.calls.size() != b.calls.size()) {
    return false;
  }
  for (size_t i = 0; i < a.calls.size(); ++i) {
    const TraceCall &x = a.calls[i], &y = b.calls[i];
    if (x.arrival_seconds != y.arrival_seconds || x.context != y.context || x.warmup != y.warmup ||
        x.max_tokens != y.max_tokens || x.prompt != y.prompt) {
      return false;
    }
  }
  return true;
}

TEST(TraceTest, SameSeedSameTraceOtherSeedOtherTrace) {
  for (SwitchPattern p :
       {SwitchPattern::kRandom, SwitchPattern::kMarkov, SwitchPattern::kGaussian}) {
    auto a = GenerateTrace(Options(p, 7), {}, 32000);
    auto b = GenerateTrace(Options(p, 7), {}, 32000);
    auto c = GenerateTrace(Options(p, 8), {}, 32000);
    ASSERT_OK(a);
    ASSERT_OK(b);
    ASSERT_OK(c);
    EXPECT_TRUE(SameTrace(*a, *b)) << SwitchPatternName(p);
    EXPECT_FALSE(SameTrace(*a, *c)) << SwitchPatternName(p);
  }
}

TEST(TraceTest, ShapeOfTheTrace) {
  auto t = GenerateTrace(Options(SwitchPattern::kRandom, 3), {}, 100);
  ASSERT_OK(t);
  ASSERT_EQ(t->calls.size(), 6u + 400u);
  double last = -1, gaps = 0;
  for (size_t i = 0; i < t->calls.size(); ++i) {
    const TraceCall& c = t->calls[i];
    EXPECT_EQ(c.warmup, i < 6);
    EXPECT_GE(c.arrival_seconds, last);
    if (i >= 6) {
      gaps += c.arrival_seconds - last;
      EXPECT_GE(c.prompt.size(), 10u);  // the SST-2 profile
      EXPECT_LE(c.prompt.size(), 100u);
    }
    last = c.arrival_seconds;
    for (int32_t id : c.prompt) {
      EXPECT_GE(id, 3);
      EXPECT_LT(id, 100);
    }
  }
  // Poisson arrivals with a 300 s mean: 400 gaps average within 15% of it.
  EXPECT_NEAR(gaps / 400, 300, 45);
}

// Histories of drawn lengths (the paper's contexts of 500 to 2,000 tokens and more), the same for
// every pattern of one seed, so that one set of histories serves them all.
TEST(TraceTest, HistoryLengthsAreDrawnAndSharedAcrossPatterns) {
  TraceOptions o = Options(SwitchPattern::kMarkov, 5);
  o.warmup_tokens = 500;
  o.history_max_tokens = 2500;
  auto markov = GenerateTrace(o, {}, 32000);
  o.pattern = SwitchPattern::kRandom;
  auto random = GenerateTrace(o, {}, 32000);
  ASSERT_OK(markov);
  ASSERT_OK(random);
  std::set<size_t> lengths;
  for (size_t c = 0; c < 6; ++c) {
    const TraceCall& h = markov->calls[c];
    ASSERT_TRUE(h.warmup);
    EXPECT_GE(h.prompt.size(), 500u);
    EXPECT_LE(h.prompt.size(), 2500u);
    lengths.insert(h.prompt.size());
    EXPECT_EQ(h.prompt, random->calls[c].prompt);
  }
  EXPECT_GT(lengths.size(), 1u);
}

TEST(TraceTest, MarkovFavoursRecentContextsGaussianFavoursTheMiddle) {
  auto markov = GenerateTrace(Options(SwitchPattern::kMarkov, 5), {}, 100);
  auto random = GenerateTrace(Options(SwitchPattern::kRandom, 5), {}, 100);
  auto gauss = GenerateTrace(Options(SwitchPattern::kGaussian, 5), {}, 100);
  ASSERT_OK(markov);
  ASSERT_OK(random);
  ASSERT_OK(gauss);
  const auto repeats = [](const Trace& t) {
    size_t n = 0;
    for (size_t i = 7; i < t.calls.size(); ++i) n += t.calls[i].context == t.calls[i - 1].context;
    return n;
  };
  // Markov calls the last context again with probability 0.4 (decay 0.6, 6 contexts); random
  // with 1/6.
  EXPECT_GT(repeats(*markov), repeats(*random) * 3 / 2);
  std::map<uint32_t, size_t> uses;
  for (const TraceCall& c : gauss->calls) uses[c.context] += c.warmup ? 0 : 1;
  EXPECT_GT(uses[2] + uses[3], uses[0] + uses[5]);
}

TEST(TraceTest, PromptsComeFromTheCorpusInOrder) {
  std::vector<int32_t> corpus(1000);
  for (size_t i = 0; i < corpus.size(); ++i) corpus[i] = static_cast<int32_t>(i);
  TraceOptions o = Options(SwitchPattern::kRandom, 1);
  o.calls = 20;
  auto t = GenerateTrace(o, corpus, 2000);
  ASSERT_OK(t);
  // A context's prompts continue one another: its history is a coherent run of the corpus.
  std::map<uint32_t, int32_t> next;
  for (const TraceCall& c : t->calls) {
    if (next.count(c.context) && next[c.context] < 1000 && c.prompt[0] != 0) {
      EXPECT_EQ(c.prompt[0], next[c.context]);
    }
    next[c.context] = c.prompt.back() + 1;
  }
}

TEST(TraceTest, FileRoundTrip) {
  testing::TempDir dir;
  auto t = GenerateTrace(Options(SwitchPattern::kMarkov, 11), {}, 32000);
  ASSERT_OK(t);
  ASSERT_OK(WriteTrace(Env::Default(), dir.File("a.trace"), *t));
  auto back = ReadTrace(Env::Default(), dir.File("a.trace"));
  ASSERT_OK(back);
  EXPECT_TRUE(SameTrace(*t, *back));
}

TEST(TraceTest, DamagedFilesAreCorruption) {
  testing::TempDir dir;
  auto t = GenerateTrace(Options(SwitchPattern::kMarkov, 11), {}, 32000);
  ASSERT_OK(t);
  const std::string path = dir.File("a.trace");
  ASSERT_OK(WriteTrace(Env::Default(), path, *t));
  auto region = Env::Default()->MapFile(path);
  ASSERT_OK(region);
  const std::string text(reinterpret_cast<const char*>((*region)->bytes().data()),
                         (*region)->bytes().size());
  const auto write = [&](const std::string& s) {
    auto f = Env::Default()->NewWritableFile(path);
    ASSERT_OK(f);
    ASSERT_OK((*f)->Append({reinterpret_cast<const uint8_t*>(s.data()), s.size()}));
    ASSERT_OK((*f)->Close());
  };
  write(text.substr(0, text.size() / 2));  // torn: no end line
  auto torn = ReadTrace(Env::Default(), path);
  EXPECT_EQ(torn.status().code(), StatusCode::kCorruption);
  std::string bad = text;
  bad.replace(bad.find("call "), 5, "cull ");
  write(bad);
  auto unknown = ReadTrace(Env::Default(), path);
  EXPECT_EQ(unknown.status().code(), StatusCode::kCorruption);
  EXPECT_NE(unknown.status().message().find(":12:"), std::string::npos)
      << unknown.status().message();  // names the line
}

TEST(TraceTest, BadOptionsAreInvalidArgument) {
  TraceOptions o = Options(SwitchPattern::kRandom, 1);
  o.dataset = "imdb";
  EXPECT_EQ(GenerateTrace(o, {}, 100).status().code(), StatusCode::kInvalidArgument);
  o = Options(SwitchPattern::kRandom, 1);
  o.contexts = 0;
  EXPECT_EQ(GenerateTrace(o, {}, 100).status().code(), StatusCode::kInvalidArgument);
}

TEST(TraceTest, StudentLifeFiltersNonAppsAndKeepsRealOrder) {
  auto switches = ReadStudentLifeSwitches(
      Env::Default(), testing::SharedPath("data/studentlife-foreground-switches.csv"));
  ASSERT_OK(switches);
  ASSERT_GT(switches->size(), 1000u);
  for (const AppSwitch& s : *switches) EXPECT_FALSE(IsFilteredApp(s.app)) << s.app;
  TraceOptions o = Options(SwitchPattern::kStudentLife, 1);
  o.calls = 50;
  auto t = StudentLifeTrace(o, *switches, "u02", {}, 32000);
  ASSERT_OK(t);
  ASSERT_EQ(t->calls.size(), 56u);
  // The measured calls follow the user's rows of its top apps, in order, with real gaps.
  std::vector<const AppSwitch*> rows;
  for (const AppSwitch& s : *switches) {
    for (size_t c = 0; c < t->contexts; ++c) {
      if (s.user == "u02" && s.app == t->context_names[c]) rows.push_back(&s);
    }
  }
  ASSERT_GE(rows.size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(t->context_names[t->calls[6 + i].context], rows[i]->app);
    EXPECT_DOUBLE_EQ(t->calls[6 + i].arrival_seconds - t->calls[6].arrival_seconds,
                     static_cast<double>(rows[i]->unix_seconds - rows[0]->unix_seconds));
  }
  o.calls = 100000;
  EXPECT_EQ(StudentLifeTrace(o, *switches, "u02", {}, 32000).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llms
