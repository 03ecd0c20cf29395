// Traces for the switch-latency evaluation (../shared/spec/LLMS.md §7): which context is called
// when, with which prompt. Generated from a seed (Poisson arrivals, Random / Markov / Gaussian
// switching, prompt lengths from the paper's dataset profiles) or taken from the real app order of
// the StudentLife study. Saved as text files, docs/trace_format.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "env/env.h"

namespace llms {

enum class SwitchPattern {
  kRandom,       // every context equally likely
  kMarkov,       // recently used contexts more likely (geometric over the recency rank)
  kGaussian,     // a few contexts hot: index drawn from a normal around the middle
  kStudentLife,  // the real foreground-app order of one StudentLife user
};
std::string_view SwitchPatternName(SwitchPattern p);
StatusOr<SwitchPattern> ParseSwitchPattern(std::string_view name);

// Prompt tokens per call of one of the paper's datasets (its §7 ranges).
struct DatasetProfile {
  std::string name;
  size_t min_tokens, max_tokens;
};
const std::vector<DatasetProfile>& DatasetProfiles();  // agnews, xsum, samsum, cnndm, wmt17, sst2

struct TraceCall {
  double arrival_seconds = 0;  // virtual time of the call, from the start of the trace
  uint32_t context = 0;        // 0 .. contexts-1
  bool warmup = false;         // builds the context's history; not a measured switch
  uint32_t max_tokens = 0;     // tokens to generate
  std::vector<int32_t> prompt;
};

struct Trace {
  std::string name;
  SwitchPattern pattern = SwitchPattern::kMarkov;
  uint64_t seed = 0;
  size_t contexts = 0;
  std::vector<std::string> context_names;  // one per context (app names for StudentLife)
  std::vector<TraceCall> calls;            // in arrival order
};

struct TraceOptions {
  SwitchPattern pattern = SwitchPattern::kMarkov;
  size_t contexts = 8;  // the paper evaluates 2 to 16 active contexts
  size_t calls = 64;    // measured calls, after one warm-up call per context
  // Poisson arrivals; the paper's traces average one call per 5 minutes. Gaps only move the
  // virtual clock: nothing in the manager ages with wall time, so they cost no run time.
  double mean_gap_seconds = 300;
  std::string dataset = "samsum";  // a DatasetProfiles() name, or "mix" (one drawn per call)
  // Multiplies the profile's token range: a 1.1B model on 2 cores prefills ~100 tokens/s, so the
  // paper's lengths are scaled down to fit the report's time budget (1.0: as published).
  double length_scale = 1.0;
  size_t warmup_tokens = 256;  // history each context gets before the measured calls
  // Above warmup_tokens: each context's history has a length drawn uniformly from
  // [warmup_tokens, history_max_tokens] instead (the paper's contexts: ~500 to 2,000 tokens).
  size_t history_max_tokens = 0;
  uint32_t max_tokens = 4;  // tokens generated per measured call
  // Markov: P(recency rank r) proportional to markov_decay^r (rank 0 = the last context called).
  double markov_decay = 0.6;
  uint64_t seed = 1;
};

// Prompt text: slices of `corpus` (a tokenized text, e.g. TinyStories for stories260K) when it is
// not empty, else seeded random ids in [3, vocab_size) (synthetic models have no real text; ids
// below 3 are the specials). Each context reads its own run of the corpus so its history is
// coherent text. Errors: InvalidArgument for options that cannot make a trace.
StatusOr<Trace> GenerateTrace(const TraceOptions& options, const std::vector<int32_t>& corpus,
                              size_t vocab_size);

// One foreground switch of the StudentLife data.
struct AppSwitch {
  std::string user;
  int64_t unix_seconds = 0;
  std::string app;
};
// The packages that are not LLM clients: the launcher, the system UI and the study's survey app
// (../shared/data/README.md), and the study's sensing app.
bool IsFilteredApp(std::string_view package);
// Reads `user,unix_ts,iso_utc,foreground_package` rows, dropping filtered apps. Errors: the
// Env's; InvalidArgument naming the line of a malformed row.
StatusOr<std::vector<AppSwitch>> ReadStudentLifeSwitches(Env* env, const std::string& path);

// A trace whose order is `user`'s real app sequence: its `options.contexts` most used apps are
// the contexts (other apps' rows are skipped), arrivals keep the real gaps, prompts are drawn as
// GenerateTrace draws them. `options.pattern` is ignored. Errors: InvalidArgument when the user
// has fewer apps or rows than asked.
StatusOr<Trace> StudentLifeTrace(const TraceOptions& options,
                                 const std::vector<AppSwitch>& switches, const std::string& user,
                                 const std::vector<int32_t>& corpus, size_t vocab_size);

// docs/trace_format.md. Written through a temporary file and a rename. Errors: the Env's;
// ReadTrace: Corruption naming the line for a malformed file.
Status WriteTrace(Env* env, const std::string& path, const Trace& trace);
StatusOr<Trace> ReadTrace(Env* env, const std::string& path);

}  // namespace llms
