// `llms report`: runs the whole evaluation (tools/llms/report.h) with a progress bar on stderr,
// then writes the report. `llms trace`: writes one trace file (docs/trace_format.md).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "base/clock.h"
#include "env/shaped_env.h"
#include "eval/accuracy.h"
#include "eval/replay.h"
#include "eval/trace.h"
#include "model/synthetic_model.h"
#include "store/chunk_store.h"
#include "tools/llms/commands.h"
#include "tools/llms/report.h"
#include "tools/llms/report_runner.h"

namespace llms::cli {
namespace {

StatusOr<std::string> ReadText(const std::string& path, size_t max_bytes) {
  StatusOr<std::string> read = ReadTextFile(path);
  if (!read.ok()) return read.status();  // names the file: is ../shared/data there?
  std::string text = std::move(read).value();
  if (max_bytes > 0 && text.size() > max_bytes) text.resize(max_bytes);
  return text;
}

std::string DefaultSynthDir() {
  if (const char* dir = std::getenv("LLMS_SYNTH_DIR"); dir != nullptr && *dir) return dir;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home) {
    return std::string(home) + "/.cache/llms/synth";
  }
  return "/tmp/llms-synth";
}

// The synthetic model of `shape`, written on first use (a 7B Q4_0 file is 3.8 GB).
StatusOr<std::string> SynthModel(const ReportSettings& s, const std::string& shape_name) {
  const auto shape = FindSyntheticShape(shape_name);
  if (!shape) return Status::InvalidArgument("unknown synthetic shape '" + shape_name + "'");
  const auto type = ParseWeightType(s.weight_type);
  if (!type) return Status::InvalidArgument("unknown weight type '" + s.weight_type + "'");
  const std::string dir = s.synth_dir.empty() ? DefaultSynthDir() : s.synth_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/" + shape_name + "-" + s.weight_type + ".gguf";
  if (Env::Default()->FileExists(path)) return path;
  std::fprintf(stderr, "writing synthetic model %s (once; check free disk space)\n", path.c_str());
  SyntheticOptions so;
  so.type = *type;
  so.threads = s.threads;
  LLMS_RETURN_IF_ERROR(WriteSyntheticModel(Env::Default(), path, *shape, so));
  return path;
}

// A short FNV-1a digest of a file: equal digests show a rerun wrote the same trace.
std::string Digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t h = 1469598103934665603ull;
  for (char c; in.get(c);) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Writes the trace, reads it back and returns what was read: the runs use the file's contents,
// so the saved traces are exactly what ran.
StatusOr<Trace> SaveTrace(const ReportSettings& s, const std::string& label, const Trace& t,
                          ReportData* data) {
  const std::string dir = s.out_dir + "/traces";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/" + label + "-" + t.name + ".trace";
  LLMS_RETURN_IF_ERROR(WriteTrace(Env::Default(), path, t));
  LLMS_ASSIGN_OR_RETURN(Trace back, ReadTrace(Env::Default(), path));
  data->traces.push_back({path, label + "-" + t.name, t.calls.size(), Digest(path)});
  return back;
}

TraceOptions BaseTraceOptions(const ReportSettings& s, size_t contexts, uint64_t seed) {
  TraceOptions o;
  o.contexts = contexts;
  o.calls = s.calls;
  o.dataset = s.dataset;
  o.length_scale = s.length_scale;
  o.warmup_tokens = s.history_min_tokens;
  o.history_max_tokens = s.history_max_tokens;
  o.max_tokens = s.generate_tokens;
  o.seed = seed;
  o.markov_decay = s.markov_decay;
  return o;
}

struct Plan {
  std::vector<Trace> traces;
  // In the order they run: grouped by trace, the largest first, so that a trace whose contexts
  // are the first ones of the last histories adopts them instead of computing its own.
  std::vector<Job> jobs;
  size_t largest_trace = 0;  // the budgets of `of_largest` jobs are fractions of its KV
  double units = 0;
};

// Every trace and cell of the report (docs/evaluation.md).
StatusOr<Plan> MakePlan(const ReportSettings& s, const std::vector<AppSwitch>& switches,
                        const std::vector<int32_t>& corpus, size_t vocab, const std::string& label,
                        ReportData* data) {
  Plan plan;
  // `builds`: the trace computes histories of its own (others share a larger trace's).
  const auto add_trace = [&](StatusOr<Trace> t, bool builds) -> StatusOr<size_t> {
    LLMS_RETURN_IF_ERROR(t.status());
    t->name += "-seed" + std::to_string(t->seed);
    LLMS_ASSIGN_OR_RETURN(Trace saved, SaveTrace(s, label, *t, data));
    plan.traces.push_back(std::move(saved));
    if (builds) plan.units += TraceUnits(plan.traces.back(), true);
    return plan.traces.size() - 1;
  };
  const auto add = [&](const std::string& group, size_t trace, const std::string& system,
                       double fraction, const std::string& flash, size_t calls, size_t chunk = 16) {
    plan.jobs.push_back({group, trace, system, fraction, 0, false, flash, calls, chunk});
    plan.units += TraceUnits(Prefix(plan.traces[trace], calls), false);
  };
  const auto markov = [&](size_t contexts, uint64_t seed) {
    return GenerateTrace(BaseTraceOptions(s, contexts, seed), corpus, vocab);
  };
  const double fixed = s.fixed_fraction;
  std::vector<size_t> sizes = s.contexts;
  std::sort(sizes.rbegin(), sizes.rend());
  const size_t small = sizes.back();
  // Synthetic traces draw each context's history from the seed alone, so the largest trace's
  // histories serve every smaller one (a TinyStories corpus draws them differently).
  const bool shared = corpus.empty();
  size_t largest_trace = 0, small_trace = 0;
  std::map<size_t, size_t> markov_traces;  // by contexts: the headline's, reused by the sweep
  for (size_t n : sizes) {
    LLMS_ASSIGN_OR_RETURN(size_t t, add_trace(markov(n, s.seed), !shared || n == sizes.front()));
    markov_traces[n] = t;
    if (n == sizes.front()) largest_trace = t;
    if (n == small) small_trace = t;
    add("headline", t, kNoManager, fixed, s.flash, 0);
    std::vector<double> fractions = s.budget_fractions;
    // The flash, ablation, pattern and repetition tables compare with the headline cell at the
    // fixed budget.
    if (n == small && std::find(fractions.begin(), fractions.end(), fixed) == fractions.end()) {
      fractions.push_back(fixed);
    }
    for (double f : fractions) {
      for (const char* sys : {"llms", "vllm-sq", "swap"}) add("headline", t, sys, f, s.flash, 0);
      add("headline", t, "lmk", f, s.flash, s.slow_calls);
    }
  }
  const size_t t = small_trace;
  for (const std::string& flash : s.flash_sweep) {
    for (const char* sys : {"llms", "vllm-sq"}) add("flash", t, sys, fixed, flash, 0);
  }
  for (const char* sys : {"llms-no-pipeline", "llms-no-lifecycle", "llms-lru",
                          "llms-no-compression", "int4-lru", "vllm-s"}) {
    add("ablation", t, sys, fixed, s.flash, 0);
  }
  for (SwitchPattern p :
       {SwitchPattern::kRandom, SwitchPattern::kGaussian, SwitchPattern::kStudentLife}) {
    TraceOptions o = BaseTraceOptions(s, small, s.seed);
    o.pattern = p;
    o.calls = s.pattern_calls;
    // The same seed draws the same histories: they are the Markov trace's.
    LLMS_ASSIGN_OR_RETURN(
        size_t pt, add_trace(p == SwitchPattern::kStudentLife
                                 ? StudentLifeTrace(o, switches, s.studentlife_user, corpus, vocab)
                                 : GenerateTrace(o, corpus, vocab),
                             !shared));
    add("pattern", pt, kNoManager, fixed, s.flash, 0);
    for (const char* sys : {"llms", "vllm-sq", "swap"}) add("pattern", pt, sys, fixed, s.flash, 0);
  }
  // Active contexts under a latency limit: budgets fixed in bytes, as fractions of the largest
  // trace's KV (RunReport sets the bytes); fewer contexts. The largest size's are headline cells.
  plan.largest_trace = largest_trace;
  for (size_t n : s.sweep_contexts) {
    size_t st = 0;
    if (auto it = markov_traces.find(n); it != markov_traces.end()) {
      st = it->second;
    } else {
      LLMS_ASSIGN_OR_RETURN(st, add_trace(markov(n, s.seed), !shared));
      markov_traces[n] = st;
    }
    for (double f : s.sweep_fractions) {
      for (const char* sys : {"llms", "vllm-sq"}) {
        add("contexts", st, sys, f, s.flash, s.sweep_calls);
        plan.jobs.back().of_largest = true;
      }
    }
  }
  // Chunk sizes: another size needs histories of its own (another layout), and a run without a
  // manager of its own to pair with. 16 first: it still has the headline's histories.
  std::vector<size_t> chunks = s.chunk_sizes;
  std::stable_partition(chunks.begin(), chunks.end(), [](size_t c) { return c == 16; });
  for (size_t chunk : chunks) {
    if (chunk != 16) plan.units += TraceUnits(plan.traces[small_trace], true);
    for (const char* sys : {kNoManager, "llms", "vllm-sq"}) {
      add("chunk", small_trace, sys, fixed, s.flash, s.chunk_calls, chunk);
    }
  }
  // Repetitions: other seeds draw other histories.
  for (size_t r = 1; r < s.repetitions; ++r) {
    LLMS_ASSIGN_OR_RETURN(size_t rt, add_trace(markov(small, s.seed + r), true));
    for (const char* sys : {kNoManager, "llms", "vllm-sq"}) {
      add("repetition", rt, sys, fixed, s.flash, 0);
    }
  }
  return plan;
}

// The headline cells at full depth: the whole 32-layer shape, fewer and shorter contexts and
// calls (2 cores prefill it at ~12 tokens/s).
StatusOr<Plan> MakeDepthPlan(const ReportSettings& s, size_t vocab, const std::string& label,
                             ReportData* data) {
  Plan plan;
  TraceOptions o = BaseTraceOptions(s, s.depth_contexts, s.seed);
  o.calls = s.depth_calls;
  o.warmup_tokens = s.depth_history_min_tokens;
  o.history_max_tokens = s.depth_history_max_tokens;
  o.length_scale = s.depth_length_scale;
  LLMS_ASSIGN_OR_RETURN(Trace t, GenerateTrace(o, {}, vocab));
  t.name += "-seed" + std::to_string(t.seed);
  LLMS_ASSIGN_OR_RETURN(Trace saved, SaveTrace(s, label, t, data));
  plan.traces.push_back(std::move(saved));
  plan.units = TraceUnits(plan.traces[0], true);
  const auto add = [&](const std::string& system, double fraction) {
    plan.jobs.push_back({"depth", 0, system, fraction, 0, false, s.flash, 0, 16});
    plan.units += TraceUnits(plan.traces[0], false);
  };
  add(kNoManager, s.fixed_fraction);
  for (const char* sys : {"llms", "vllm-sq", "swap"}) add(sys, s.fixed_fraction);
  return plan;
}

StatusOr<std::vector<AccuracyRow>> RunAccuracy(Engine* engine, const std::string& stories_text,
                                               const Tokenizer& tokenizer, bool quick,
                                               ProgressBar* bar, ReportData* data) {
  AccuracyOptions ao;
  if (quick) ao.stories = 4, ao.turns = 3;
  LLMS_ASSIGN_OR_RETURN(auto stories, SelectStories(tokenizer, stories_text, ao));
  ao.progress = [&](size_t, size_t) { bar->Add(1, "accuracy (stories260K)"); };
  data->accuracy_stories = ao.stories;
  data->accuracy_turns = ao.turns;
  data->accuracy_turn_tokens = ao.turn_tokens;
  return EvaluateAccuracy(engine, stories, CompressionCases(), ao);
}

void ApplyQuick(ReportSettings* s) {
  s->main_shape.clear();  // stories260K
  s->contexts = {4};
  s->calls = 6;
  s->slow_calls = 3;
  s->pattern_calls = 4;
  s->history_min_tokens = 48;
  s->history_max_tokens = 96;
  s->generate_tokens = 4;
  s->length_scale = 0.1;
  s->budget_fractions = {0.25, 0.5};
  s->fixed_fraction = 0.5;
  s->repetitions = 2;
  s->flash_sweep = {"emmc"};
  s->sweep_contexts = {2};
  s->sweep_fractions = {0.5};
  s->sweep_calls = 4;
  s->chunk_sizes = {8};
  s->chunk_calls = 4;
  s->depth_shape.clear();
}

Status RunReport(ReportSettings s) {
  const Stopwatch total;
  ReportData data;
  if (s.data_dir.empty()) {
    s.data_dir =
        std::filesystem::path(DefaultModelPath()).parent_path().parent_path().string() + "/data";
  }
  if (s.small_model.empty()) s.small_model = DefaultModelPath();
  if (s.quick) ApplyQuick(&s);
  if (s.contexts.empty()) return Status::InvalidArgument("report: --contexts needs a value");
  std::error_code ec;
  std::filesystem::create_directories(s.out_dir + "/data", ec);
  if (ec) return Status::IOError("cannot create " + s.out_dir + ": " + ec.message());
  data.settings = s;

  LLMS_ASSIGN_OR_RETURN(
      std::vector<AppSwitch> switches,
      ReadStudentLifeSwitches(Env::Default(), s.data_dir + "/studentlife-foreground-switches.csv"));
  LLMS_ASSIGN_OR_RETURN(std::string stories_text,
                        ReadText(s.data_dir + "/tinystories-valid.txt", 0));
  ModelOptions small_options;
  small_options.model = s.small_model;
  small_options.threads = s.threads;
  LLMS_ASSIGN_OR_RETURN(LoadedModel small, LoadModel(small_options));

  // The replays' model: a synthetic shape (random ids for prompts), or stories260K in quick mode
  // (TinyStories text).
  LoadedModel synthetic;
  Engine* engine = small.engine.get();
  const LlamaModel* model = small.model.get();
  std::vector<int32_t> corpus;
  size_t vocab = small.model->config().vocab_size;
  data.main_model = "stories260K";
  if (s.main_shape.empty()) {
    corpus = small.model->tokenizer().Encode(stories_text.substr(0, 200000), false);
  } else {
    LLMS_ASSIGN_OR_RETURN(std::string path, SynthModel(s, s.main_shape));
    ModelOptions mo;
    mo.model = path;
    mo.threads = s.threads;
    LLMS_ASSIGN_OR_RETURN(synthetic, LoadModel(mo));
    engine = synthetic.engine.get();
    model = synthetic.model.get();
    vocab = synthetic.model->config().vocab_size;
    data.main_model = s.main_shape;
  }
  LLMS_ASSIGN_OR_RETURN(Plan plan, MakePlan(s, switches, corpus, vocab, data.main_model, &data));
  const AccuracyOptions accuracy_defaults;
  const size_t accuracy_units =
      CompressionCases().size() *
      (s.quick ? 4 * 3 : accuracy_defaults.stories * accuracy_defaults.turns);
  std::optional<Plan> depth_plan;
  if (!s.depth_shape.empty()) {
    const auto shape = FindSyntheticShape(s.depth_shape);
    if (!shape) return Status::InvalidArgument("unknown synthetic shape '" + s.depth_shape + "'");
    LLMS_ASSIGN_OR_RETURN(depth_plan, MakeDepthPlan(s, shape->vocab_size, s.depth_shape, &data));
  }
  // A full-depth token costs ~16x a 2-layer one.
  const double depth_units = depth_plan ? 16 * depth_plan->units : 0;
  ProgressBar bar(plan.units + depth_units + static_cast<double>(accuracy_units));

  Stopwatch step;
  {
    Evaluation eval(s, model, engine, data.main_model, &data, &bar);
    const size_t largest_kv = HistoryKvBytesF16(*engine, plan.traces[plan.largest_trace]);
    for (Job job : plan.jobs) {
      if (job.of_largest) {
        job.budget_bytes = static_cast<size_t>(job.fraction * static_cast<double>(largest_kv));
      }
      LLMS_RETURN_IF_ERROR(eval.Run(job, plan.traces[job.trace]));
    }
  }
  data.step_seconds.emplace_back("replay, " + data.main_model, step.Seconds());
  synthetic.engine.reset();  // its memory back before the next model (engine first)
  synthetic.model.reset();
  if (depth_plan) {
    step.Restart();
    LLMS_ASSIGN_OR_RETURN(std::string path, SynthModel(s, s.depth_shape));
    ModelOptions mo;
    mo.model = path;
    mo.threads = s.threads;
    LLMS_ASSIGN_OR_RETURN(LoadedModel full, LoadModel(mo));
    Evaluation eval(s, full.model.get(), full.engine.get(), s.depth_shape, &data, &bar);
    for (const Job& job : depth_plan->jobs) {
      LLMS_RETURN_IF_ERROR(eval.Run(job, depth_plan->traces[job.trace]));
    }
    data.depth_model = s.depth_shape;
    data.step_seconds.emplace_back("replay, " + s.depth_shape, step.Seconds());
  }
  step.Restart();
  LLMS_ASSIGN_OR_RETURN(data.accuracy, RunAccuracy(small.engine.get(), stories_text,
                                                   small.model->tokenizer(), s.quick, &bar, &data));
  data.step_seconds.emplace_back("accuracy, stories260K", step.Seconds());
  bar.Finish();
  data.seconds = total.Seconds();
  return WriteReport(data);
}

}  // namespace

Runner AddReport(CLI::App& app) {
  auto s = std::make_shared<ReportSettings>();
  CLI::App* cmd = app.add_subcommand(
      "report", "run the switch-latency and accuracy evaluation and write a Markdown report");
  cmd->add_option("-o,--out", s->out_dir, "report directory (report.md, figures, traces, data)")
      ->capture_default_str();
  cmd->add_option("--seed", s->seed, "trace seed: the same seed writes the same traces")
      ->capture_default_str();
  cmd->add_option("-t,--threads", s->threads, "compute threads (0: one per core)")
      ->capture_default_str();
  cmd->add_option("--synth-dir", s->synth_dir,
                  "where synthetic models are cached (default: $LLMS_SYNTH_DIR, else "
                  "~/.cache/llms/synth)");
  cmd->add_option("--shape", s->main_shape, "synthetic shape of the replays")
      ->capture_default_str();
  cmd->add_option("--type", s->weight_type, "synthetic weight type")->capture_default_str();
  cmd->add_option("--contexts", s->contexts, "active contexts of the headline traces")
      ->capture_default_str();
  cmd->add_option("--calls", s->calls, "measured calls of each headline trace")
      ->capture_default_str();
  cmd->add_option("--slow-calls", s->slow_calls, "measured calls of LMK (it recomputes contexts)")
      ->capture_default_str();
  cmd->add_option("--pattern-calls", s->pattern_calls,
                  "measured calls of the Random, Gaussian and StudentLife traces")
      ->capture_default_str();
  cmd->add_option("--history-min", s->history_min_tokens, "shortest context history (tokens)")
      ->capture_default_str();
  cmd->add_option("--history-max", s->history_max_tokens, "longest context history (tokens)")
      ->capture_default_str();
  cmd->add_option("--generate", s->generate_tokens, "tokens generated per measured call")
      ->capture_default_str();
  cmd->add_option("--length-scale", s->length_scale,
                  "multiplies the paper's prompt lengths of the measured calls (1: as published)")
      ->capture_default_str();
  cmd->add_option("--dataset", s->dataset,
                  "prompt lengths: agnews, xsum, samsum, cnndm, wmt17, sst2 or mix")
      ->capture_default_str();
  cmd->add_option("--budgets", s->budget_fractions,
                  "KV budgets of the headline sweep, as fractions of all contexts' f16 KV at the "
                  "start of the measured calls")
      ->capture_default_str();
  cmd->add_option("--fixed-budget", s->fixed_fraction,
                  "the budget fraction of the flash, ablation, pattern and repetition cells")
      ->capture_default_str();
  cmd->add_option("--repetitions", s->repetitions,
                  "trace seeds of the repetition cells (for confidence intervals)")
      ->capture_default_str();
  cmd->add_option("--user", s->studentlife_user, "StudentLife user (u00, u01, u02)")
      ->capture_default_str();
  cmd->add_option("--flash", s->flash,
                  "flash class of the headline: " + FlashClassNames() + " (docs/flash_classes.md)")
      ->capture_default_str();
  cmd->add_option("--flash-sweep", s->flash_sweep, "the other classes of the flash-class sweep")
      ->capture_default_str();
  cmd->add_option("--sweep-contexts", s->sweep_contexts,
                  "active contexts of the contexts-under-a-limit sweep (with the largest headline "
                  "size)")
      ->capture_default_str();
  cmd->add_option("--sweep-budgets", s->sweep_fractions,
                  "budgets of that sweep, as fractions of the largest headline trace's f16 KV")
      ->capture_default_str();
  cmd->add_option("--sweep-calls", s->sweep_calls, "measured calls of that sweep")
      ->capture_default_str();
  cmd->add_option("--limits-ms", s->limits_ms, "time-to-ready limits of that sweep")
      ->capture_default_str();
  cmd->add_option("--chunk-sizes", s->chunk_sizes, "KV chunk sizes of the chunk-size sweep")
      ->capture_default_str();
  cmd->add_option("--chunk-calls", s->chunk_calls, "measured calls of the chunk-size sweep")
      ->capture_default_str();
  cmd->add_option("--shaped-store-dir", s->shaped_store_dir,
                  "where the stores of shaped classes live (RAM, so the class sets their speed)")
      ->capture_default_str();
  cmd->add_option("--depth-shape", s->depth_shape,
                  "synthetic shape of the full-depth headline cells (\"\": none)")
      ->capture_default_str();
  cmd->add_option("--depth-contexts", s->depth_contexts, "contexts of the full-depth trace")
      ->capture_default_str();
  cmd->add_option("--depth-calls", s->depth_calls, "measured calls of the full-depth trace")
      ->capture_default_str();
  cmd->add_flag("--quick", s->quick, "smoke run: stories260K only, tiny traces");
  return [s] {
    Status st = RunReport(*s);
    if (!st.ok()) {
      std::fputc('\n', stderr);
      return Fail("report", st);
    }
    std::printf("wrote %s/report.md\n", s->out_dir.c_str());
    return 0;
  };
}

}  // namespace llms::cli
