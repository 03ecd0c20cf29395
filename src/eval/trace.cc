#include "eval/trace.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numbers>
#include <random>
#include <sstream>

namespace llms {
namespace {

// Seeded draws written out by hand: std::*_distribution differ between standard libraries, and
// the same seed must give the same trace on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double Uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }  // [0, 1)
  size_t Below(size_t n) { return static_cast<size_t>(Uniform() * static_cast<double>(n)); }
  size_t Between(size_t lo, size_t hi) { return lo + Below(hi - lo + 1); }  // inclusive
  double Exponential(double mean) { return -mean * std::log1p(-Uniform()); }
  double Normal() {  // Box-Muller
    const double u1 = 1.0 - Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 gen_;  // its output sequence is fixed by the standard
};

// Draws prompts: lengths from the dataset profile, text from the corpus (each context reads on
// from where its last prompt ended) or random ids.
class PromptDrawer {
 public:
  PromptDrawer(const TraceOptions& o, const std::vector<int32_t>& corpus, size_t vocab,
               size_t contexts, Rng* rng)
      : o_(o), corpus_(corpus), vocab_(vocab), rng_(rng), cursor_(contexts) {
    for (size_t& c : cursor_) c = corpus.empty() ? 0 : rng->Below(corpus.size());
  }

  size_t DrawLength() {
    const auto& profiles = DatasetProfiles();
    const DatasetProfile* p = nullptr;
    if (o_.dataset == "mix") {
      p = &profiles[rng_->Below(profiles.size())];
    } else {
      for (const DatasetProfile& q : profiles) {
        if (q.name == o_.dataset) p = &q;
      }
    }
    const auto scaled = [&](size_t n) {
      return std::max<size_t>(1, static_cast<size_t>(std::lround(n * o_.length_scale)));
    };
    return rng_->Between(scaled(p->min_tokens), scaled(p->max_tokens));
  }

  std::vector<int32_t> Draw(uint32_t context, size_t n) {
    std::vector<int32_t> out(n);
    for (size_t i = 0; i < n; ++i) {
      if (corpus_.empty()) {
        out[i] = static_cast<int32_t>(3 + rng_->Below(vocab_ - 3));
      } else {
        size_t& at = cursor_[context];
        if (at >= corpus_.size()) at = 0;
        out[i] = corpus_[at++];
      }
    }
    return out;
  }

 private:
  const TraceOptions& o_;
  const std::vector<int32_t>& corpus_;
  size_t vocab_;
  Rng* rng_;
  std::vector<size_t> cursor_;  // per context: next corpus position
};

Status CheckOptions(const TraceOptions& o, const std::vector<int32_t>& corpus, size_t vocab) {
  if (o.contexts == 0 || o.contexts > 4096) {
    return Status::InvalidArgument("trace: contexts must be in [1, 4096], got " +
                                   std::to_string(o.contexts));
  }
  if (o.dataset != "mix") {
    bool known = false;
    for (const DatasetProfile& p : DatasetProfiles()) known |= p.name == o.dataset;
    if (!known) {
      return Status::InvalidArgument("trace: unknown dataset '" + o.dataset +
                                     "' (agnews, xsum, samsum, cnndm, wmt17, sst2 or mix)");
    }
  }
  if (!(o.length_scale > 0) || !(o.mean_gap_seconds >= 0) || !(o.markov_decay > 0)) {
    return Status::InvalidArgument(
        "trace: length_scale and markov_decay must be > 0, mean_gap_seconds >= 0");
  }
  if (corpus.empty() && vocab <= 3) {
    return Status::InvalidArgument("trace: no corpus and a vocabulary of " + std::to_string(vocab) +
                                   " ids leaves nothing to draw");
  }
  return Status::Ok();
}

// One warm-up call per context, a second apart, before the measured calls.
void AddWarmup(const TraceOptions& o, PromptDrawer* prompts, Rng* rng, Trace* t) {
  for (uint32_t c = 0; c < t->contexts; ++c) {
    TraceCall call;
    call.arrival_seconds = c;
    call.context = c;
    call.warmup = true;
    const size_t tokens = o.history_max_tokens > o.warmup_tokens
                              ? rng->Between(o.warmup_tokens, o.history_max_tokens)
                              : o.warmup_tokens;
    call.prompt = prompts->Draw(c, std::max<size_t>(1, tokens));
    t->calls.push_back(std::move(call));
  }
}

}  // namespace

std::string_view SwitchPatternName(SwitchPattern p) {
  switch (p) {
    case SwitchPattern::kRandom:
      return "random";
    case SwitchPattern::kMarkov:
      return "markov";
    case SwitchPattern::kGaussian:
      return "gaussian";
    case SwitchPattern::kStudentLife:
      return "studentlife";
  }
  return "?";
}

StatusOr<SwitchPattern> ParseSwitchPattern(std::string_view name) {
  for (SwitchPattern p : {SwitchPattern::kRandom, SwitchPattern::kMarkov, SwitchPattern::kGaussian,
                          SwitchPattern::kStudentLife}) {
    if (SwitchPatternName(p) == name) return p;
  }
  return Status::InvalidArgument("unknown switching pattern '" + std::string(name) +
                                 "' (random, markov, gaussian or studentlife)");
}

const std::vector<DatasetProfile>& DatasetProfiles() {
  static const std::vector<DatasetProfile> profiles = {
      {"agnews", 200, 500}, {"xsum", 1000, 2000}, {"samsum", 100, 300},
      {"cnndm", 500, 1000}, {"wmt17", 100, 500},  {"sst2", 10, 100},
  };
  return profiles;
}

StatusOr<Trace> GenerateTrace(const TraceOptions& o, const std::vector<int32_t>& corpus,
                              size_t vocab_size) {
  LLMS_RETURN_IF_ERROR(CheckOptions(o, corpus, vocab_size));
  if (o.pattern == SwitchPattern::kStudentLife) {
    return Status::InvalidArgument("trace: studentlife traces come from StudentLifeTrace");
  }
  Rng rng(o.seed);
  Trace t;
  t.pattern = o.pattern;
  t.seed = o.seed;
  t.contexts = o.contexts;
  t.name = std::string(SwitchPatternName(o.pattern)) + "-" + std::to_string(o.contexts);
  for (size_t c = 0; c < o.contexts; ++c) t.context_names.push_back("ctx" + std::to_string(c));
  PromptDrawer prompts(o, corpus, vocab_size, o.contexts, &rng);
  AddWarmup(o, &prompts, &rng, &t);

  std::vector<uint32_t> recency;  // most recent first
  for (uint32_t c = 0; c < o.contexts; ++c) recency.insert(recency.begin(), c);
  double now = static_cast<double>(o.contexts);
  for (size_t i = 0; i < o.calls; ++i) {
    now += rng.Exponential(o.mean_gap_seconds);
    uint32_t context = 0;
    switch (o.pattern) {
      case SwitchPattern::kRandom:
        context = static_cast<uint32_t>(rng.Below(o.contexts));
        break;
      case SwitchPattern::kMarkov: {
        // The next context depends only on the recency order: a Markov chain on that order.
        double total = 0, w = 1;
        for (size_t r = 0; r < o.contexts; ++r, w *= o.markov_decay) total += w;
        double u = rng.Uniform() * total;
        size_t rank = 0;
        for (w = 1; rank + 1 < o.contexts && u >= w; ++rank, w *= o.markov_decay) u -= w;
        context = recency[rank];
        break;
      }
      case SwitchPattern::kGaussian: {
        const double mean = (static_cast<double>(o.contexts) - 1) / 2;
        const double sd = std::max(0.5, static_cast<double>(o.contexts) / 6);
        long index = -1;
        while (index < 0 || index >= static_cast<long>(o.contexts)) {
          index = std::lround(mean + sd * rng.Normal());
        }
        context = static_cast<uint32_t>(index);
        break;
      }
      case SwitchPattern::kStudentLife:
        break;
    }
    recency.erase(std::find(recency.begin(), recency.end(), context));
    recency.insert(recency.begin(), context);
    TraceCall call;
    call.arrival_seconds = now;
    call.context = context;
    call.max_tokens = o.max_tokens;
    call.prompt = prompts.Draw(context, prompts.DrawLength());
    t.calls.push_back(std::move(call));
  }
  return t;
}

bool IsFilteredApp(std::string_view package) {
  // org.bewellapp is the study's own sensing app (7 rows, user u00): not an LLM client either.
  return package == "com.android.launcher" || package == "com.android.systemui" ||
         package == "com.google.android.apps.paco" || package == "org.bewellapp";
}

StatusOr<std::vector<AppSwitch>> ReadStudentLifeSwitches(Env* env, const std::string& path) {
  LLMS_ASSIGN_OR_RETURN(auto region, env->MapFile(path));
  const auto bytes = region->bytes();
  std::istringstream in(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  std::vector<AppSwitch> out;
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line_no == 1) continue;  // the header
    std::vector<std::string> fields;
    std::stringstream row(line);
    for (std::string f; std::getline(row, f, ',');) fields.push_back(f);
    char* end = nullptr;
    const long long ts = fields.size() == 4 ? std::strtoll(fields[1].c_str(), &end, 10) : 0;
    if (fields.size() != 4 || end == nullptr || *end != '\0' || fields[3].empty()) {
      return Status::InvalidArgument(path + ":" + std::to_string(line_no) +
                                     ": expected user,unix_ts,iso_utc,foreground_package");
    }
    if (IsFilteredApp(fields[3])) continue;
    out.push_back({fields[0], ts, fields[3]});
  }
  return out;
}

StatusOr<Trace> StudentLifeTrace(const TraceOptions& o, const std::vector<AppSwitch>& switches,
                                 const std::string& user, const std::vector<int32_t>& corpus,
                                 size_t vocab_size) {
  LLMS_RETURN_IF_ERROR(CheckOptions(o, corpus, vocab_size));
  std::map<std::string, size_t> uses;
  for (const AppSwitch& s : switches) {
    if (s.user == user) ++uses[s.app];
  }
  std::vector<std::pair<size_t, std::string>> ranked;
  for (const auto& [app, n] : uses) ranked.emplace_back(n, app);
  // Most used first; ties by name so the choice does not depend on map order subtleties.
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (ranked.size() < o.contexts) {
    return Status::InvalidArgument("studentlife: user '" + user + "' used " +
                                   std::to_string(ranked.size()) + " apps, fewer than the " +
                                   std::to_string(o.contexts) + " contexts asked for");
  }
  Rng rng(o.seed);
  Trace t;
  t.pattern = SwitchPattern::kStudentLife;
  t.seed = o.seed;
  t.contexts = o.contexts;
  t.name = "studentlife-" + user + "-" + std::to_string(o.contexts);
  std::map<std::string, uint32_t> index;
  for (size_t c = 0; c < o.contexts; ++c) {
    t.context_names.push_back(ranked[c].second);
    index[ranked[c].second] = static_cast<uint32_t>(c);
  }
  PromptDrawer prompts(o, corpus, vocab_size, o.contexts, &rng);
  AddWarmup(o, &prompts, &rng, &t);
  const double start = static_cast<double>(o.contexts);
  int64_t first_ts = -1;
  for (const AppSwitch& s : switches) {
    if (t.calls.size() == o.contexts + o.calls) break;
    auto it = index.find(s.app);
    if (s.user != user || it == index.end()) continue;
    if (first_ts < 0) first_ts = s.unix_seconds;
    TraceCall call;
    call.arrival_seconds = start + static_cast<double>(s.unix_seconds - first_ts);
    call.context = it->second;
    call.max_tokens = o.max_tokens;
    call.prompt = prompts.Draw(call.context, prompts.DrawLength());
    t.calls.push_back(std::move(call));
  }
  if (t.calls.size() < o.contexts + o.calls) {
    return Status::InvalidArgument("studentlife: user '" + user + "' has only " +
                                   std::to_string(t.calls.size() - o.contexts) +
                                   " switches to its top apps; ask for fewer calls");
  }
  return t;
}

Status WriteTrace(Env* env, const std::string& path, const Trace& t) {
  std::string out = "llms-trace 1\n";
  out += "name " + t.name + "\n";
  out += "pattern " + std::string(SwitchPatternName(t.pattern)) + "\n";
  out += "seed " + std::to_string(t.seed) + "\n";
  out += "contexts " + std::to_string(t.contexts) + "\n";
  for (size_t c = 0; c < t.context_names.size(); ++c) {
    out += "context " + std::to_string(c) + " " + t.context_names[c] + "\n";
  }
  char buf[96];
  for (const TraceCall& call : t.calls) {
    // %.17g: the arrival reads back as the same double.
    std::snprintf(buf, sizeof(buf), "call %.17g %u %d %u %zu", call.arrival_seconds, call.context,
                  call.warmup ? 1 : 0, call.max_tokens, call.prompt.size());
    out += buf;
    for (int32_t id : call.prompt) {
      out += ' ';
      out += std::to_string(id);
    }
    out += "\n";
  }
  out += "end " + std::to_string(t.calls.size()) + "\n";
  return WriteFileAtomically(env, path, out);
}

StatusOr<Trace> ReadTrace(Env* env, const std::string& path) {
  LLMS_ASSIGN_OR_RETURN(auto region, env->MapFile(path));
  const auto bytes = region->bytes();
  std::istringstream in(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  Trace t;
  size_t line_no = 0;
  bool ended = false;
  const auto bad = [&](const std::string& why) {
    return Status::Corruption(path + ":" + std::to_string(line_no) + ": " + why +
                              " (docs/trace_format.md)");
  };
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    std::istringstream f(line);
    std::string key;
    f >> key;
    if (line_no == 1) {
      int version = 0;
      if (key != "llms-trace" || !(f >> version) || version != 1) {
        return bad("not an llms trace of version 1");
      }
    } else if (key == "name") {
      f >> t.name;
    } else if (key == "pattern") {
      std::string p;
      f >> p;
      auto parsed = ParseSwitchPattern(p);
      if (!parsed.ok()) return bad(parsed.status().message());
      t.pattern = *parsed;
    } else if (key == "seed") {
      f >> t.seed;
    } else if (key == "contexts") {
      f >> t.contexts;
    } else if (key == "context") {
      size_t c = 0;
      std::string name;
      if (!(f >> c >> name) || c != t.context_names.size()) return bad("bad context line");
      t.context_names.push_back(name);
    } else if (key == "call") {
      TraceCall call;
      int warm = 0;
      size_t n = 0;
      if (!(f >> call.arrival_seconds >> call.context >> warm >> call.max_tokens >> n) ||
          call.context >= t.contexts || n > (size_t{1} << 24)) {
        return bad("bad call header");
      }
      call.warmup = warm != 0;
      call.prompt.resize(n);
      for (int32_t& id : call.prompt) {
        if (!(f >> id) || id < 0) return bad("bad or missing token id");
      }
      t.calls.push_back(std::move(call));
    } else if (key == "end") {
      size_t n = 0;
      if (!(f >> n) || n != t.calls.size()) return bad("call count does not match 'end'");
      ended = true;
      break;
    } else if (!key.empty()) {
      return bad("unknown key '" + key + "'");
    }
    if (f.fail()) return bad("malformed value");
  }
  if (!ended) return Status::Corruption(path + ": truncated (no 'end' line)");
  if (t.contexts == 0) return Status::Corruption(path + ": no 'contexts' line");
  return t;
}

}  // namespace llms
