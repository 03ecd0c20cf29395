// `llms report`: runs the whole evaluation (tools/llms/report.h) with a progress bar on stderr,
// then writes the report. `llms trace`: writes one trace file (docs/trace_format.md).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
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

namespace llms::cli {
namespace {

// A progress bar on stderr over work units (prompt tokens of every planned call), with the
// elapsed time and a linear estimate of what is left.
class ProgressBar {
 public:
  explicit ProgressBar(double total) : total_(total) {}
  void Add(double units, const std::string& label) {
    done_ += units;
    const double f = total_ > 0 ? std::min(1.0, done_ / total_) : 1.0;
    const int width = 30, filled = static_cast<int>(f * width);
    const double elapsed = timer_.Seconds();
    const double left = f > 0.01 ? elapsed * (1 - f) / f : 0;
    std::fprintf(stderr, "\r[%s%s] %3.0f%% %4.0fs elapsed, ~%4.0fs left  %-44.44s",
                 std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '.').c_str(), 100 * f, elapsed,
                 left, label.c_str());
    std::fflush(stderr);
  }
  void Finish() { std::fputc('\n', stderr); }

 private:
  double total_, done_ = 0;
  Stopwatch timer_;
};

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

double TraceUnits(const Trace& t) {
  double units = 0;
  for (const TraceCall& c : t.calls) units += static_cast<double>(c.prompt.size() + c.max_tokens);
  return units;
}

// One model's share of the evaluation: its traces and the runs over them.
struct ModelPlan {
  std::string label, path;
  std::vector<int32_t> corpus;  // empty: random ids
  struct Run {
    Trace trace;
    std::vector<std::string> systems;
    double budget_fraction = 0;  // of the trace's f16 KV; 0: sweep_budget_bytes
    size_t budget_bytes = 0;
    double budget_contexts = 0;  // sweep: budget in average contexts' f16 KV
    double ref_tokens = 0;       // sweep: tokens of an average context of the largest trace
    bool sweep = false;
  };
  std::vector<Run> runs;
};

TraceOptions BaseTraceOptions(const ReportSettings& s) {
  TraceOptions o;
  o.contexts = s.contexts;
  o.calls = s.calls;
  o.dataset = s.dataset;
  o.length_scale = s.length_scale;
  o.warmup_tokens = s.warmup_tokens;
  o.seed = s.seed;
  o.markov_decay = s.markov_decay;
  return o;
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

Status PlanMain(const ReportSettings& s, const std::vector<AppSwitch>& switches, size_t vocab,
                ModelPlan* plan, ReportData* data) {
  std::vector<std::string> all = {"none"};  // no manager, then every policy
  all.insert(all.end(), Policy::Names().begin(), Policy::Names().end());
  // The run without a manager (the paired cross-check and the decode baseline) only on the
  // headline trace: it costs a whole replay per trace.
  const std::vector<std::string> main4 = {"llms", "vllm-sq", "swap", "lmk"};
  for (SwitchPattern p : {SwitchPattern::kMarkov, SwitchPattern::kRandom, SwitchPattern::kGaussian,
                          SwitchPattern::kStudentLife}) {
    TraceOptions o = BaseTraceOptions(s);
    o.pattern = p;
    if (p != SwitchPattern::kMarkov) o.calls = s.pattern_calls;
    StatusOr<Trace> t = p == SwitchPattern::kStudentLife
                            ? StudentLifeTrace(o, switches, s.studentlife_user, plan->corpus, vocab)
                            : GenerateTrace(o, plan->corpus, vocab);
    LLMS_RETURN_IF_ERROR(t.status());
    LLMS_ASSIGN_OR_RETURN(Trace saved, SaveTrace(s, plan->label, *t, data));
    plan->runs.push_back({std::move(saved), p == SwitchPattern::kMarkov ? all : main4,
                          s.budget_fraction, 0, 0, false});
  }
  // The sweep: Markov traces of several sizes at fixed budgets, ours against vLLM-SQ.
  std::vector<Trace> sweep;
  for (size_t n : s.sweep_contexts) {
    TraceOptions o = BaseTraceOptions(s);
    o.contexts = n;
    o.calls = s.sweep_calls;
    o.warmup_tokens = s.sweep_warmup_tokens;
    LLMS_ASSIGN_OR_RETURN(Trace t, GenerateTrace(o, plan->corpus, vocab));
    t.name = "sweep-" + t.name;
    LLMS_ASSIGN_OR_RETURN(Trace saved, SaveTrace(s, plan->label, t, data));
    sweep.push_back(std::move(saved));
  }
  if (sweep.empty()) return Status::Ok();
  // Fixed budgets across sizes, in average contexts of the largest trace.
  const Trace& largest = sweep.back();
  const double ref_tokens = TraceUnits(largest) / static_cast<double>(largest.contexts);
  for (double b : s.sweep_budgets) {
    for (const Trace& t : sweep) {
      plan->runs.push_back({t, {"llms", "vllm-sq"}, 0, 0, b, ref_tokens, true});
    }
  }
  return Status::Ok();
}

Status RunPlan(const ReportSettings& s, const ModelPlan& plan, Engine* engine,
               const CostModel& cost, Env* env, ProgressBar* bar, ReportData* data) {
  std::map<std::string, ReplayResult> references;  // by trace name
  for (const ModelPlan::Run& run : plan.runs) {
    const size_t kv = TraceKvBytesF16(*engine, run.trace);
    const double bytes_per_token = static_cast<double>(kv) / TraceUnits(run.trace);
    // LMK recomputes a whole context and vLLM-S keeps it at f16, so the running context must fit
    // at f16: under a Markov trace one context can hold a third of all the KV. The budget is
    // raised to 1.1x the largest context's f16 KV where the fraction would not hold it (the
    // report prints the fraction that results).
    std::vector<double> context_tokens(run.trace.contexts, 0);
    for (const TraceCall& c : run.trace.calls) {
      context_tokens[c.context] += static_cast<double>(c.prompt.size() + c.max_tokens);
    }
    const double largest =
        1.1 * bytes_per_token * *std::max_element(context_tokens.begin(), context_tokens.end());
    const size_t budget = static_cast<size_t>(
        run.sweep ? run.budget_contexts * run.ref_tokens * bytes_per_token
                  : std::max(static_cast<double>(kv) * run.budget_fraction, largest));
    for (const std::string& system : run.systems) {
      // The run without a manager is the resident reference of every system on this trace
      // (the sweep reuses it across budgets: it does not depend on the budget).
      if (system == kNoManager && references.count(run.trace.name)) {
        bar->Add(TraceUnits(run.trace), "reference reused");
        continue;
      }
      const ReplayResult& reference = references[run.trace.name];
      ReplayOptions ro;
      ro.system = system;
      ro.budget_bytes = budget;
      ro.store_dir = s.out_dir + "/.store-" + std::to_string(getpid());
      ro.cost = &cost;
      ro.env = env;
      const std::string label = plan.label + " " + run.trace.name + " " + system;
      ro.progress = [&](size_t done, size_t) {
        const TraceCall& c = run.trace.calls[done - 1];
        bar->Add(static_cast<double>(c.prompt.size() + c.max_tokens), label);
      };
      StatusOr<ReplayResult> r = Replay(engine, run.trace, ro);
      if (r.ok() && system == kNoManager) references[run.trace.name] = *r;
      if (r.ok() && system != kNoManager && !reference.calls.empty()) {
        Status applied = ApplyResidentReference(reference, &*r);
        if (!applied.ok()) r = applied;
      }
      if (!r.ok()) {
        // One system failing (a budget too small for its running context, say) is a finding
        // of the report, not a reason to lose the others.
        data->failures.push_back(label + ": " + r.status().ToString());
        continue;
      }
      // Per-call records, for anyone who wants more than the summary.
      const std::string csv = s.out_dir + "/data/" + plan.label + "-" + run.trace.name + "-" +
                              system + "-budget" + std::to_string(budget) + "-" + s.flash + ".csv";
      std::ofstream f(csv);
      f << "index,context,warmup,switched,arrival_s,start_s,context_tokens,prompt_tokens,generated,"
           "switch_s,paired_s,extra_first_token_s,first_token_s,ready_s,chunks_loaded,"
           "chunks_recomputed,bytes_read,bytes_written,prefill_s,decode_s,wall_s\n";
      for (const CallRecord& c : r->calls) {
        f << c.index << ',' << c.context << ',' << c.warmup << ',' << c.switched << ','
          << c.arrival_seconds << ',' << c.start_seconds << ',' << c.context_tokens << ','
          << c.stats.prompt_tokens << ',' << c.generated << ',' << c.switch_seconds << ','
          << c.paired_seconds << ',' << c.stats.extra_first_token_seconds << ','
          << c.stats.first_token_seconds << ',' << c.stats.ready_seconds << ','
          << c.stats.chunks_loaded << ',' << c.stats.chunks_recomputed << ',' << c.stats.bytes_read
          << ',' << c.stats.bytes_written << ',' << c.prefill_seconds << ',' << c.decode_seconds
          << ',' << c.wall_seconds << '\n';
      }
      if (run.sweep) {
        if (system == kNoManager) continue;
        data->sweep.push_back({system, run.budget_contexts, budget, run.trace.contexts,
                               r->summary.switch_latency.mean, r->summary.switch_latency.max});
      } else {
        data->runs.push_back({plan.label, std::string(SwitchPatternName(run.trace.pattern)),
                              run.trace.contexts, budget, kv, r->summary});
      }
    }
  }
  return Status::Ok();
}

struct LoadedEval {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Engine> engine;
  CostModel cost;
};

StatusOr<LoadedEval> LoadForEval(const ReportSettings& s, const std::string& path, Env* env) {
  ModelOptions mo;
  mo.model = path;
  mo.threads = s.threads;
  LLMS_ASSIGN_OR_RETURN(LoadedModel m, LoadModel(mo));
  LoadedEval e{std::move(m.model), std::move(m.engine), {}};
  // One cost model for every system of this model, measured on an empty scratch store.
  const std::string dir = s.out_dir + "/.cost-" + std::to_string(getpid());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  {
    // On the flash class the replays use, so the restore plans see its reads.
    LLMS_ASSIGN_OR_RETURN(auto store, ChunkStore::Open(env, dir, {}));
    // Twice: the first pass of a freshly loaded model faults its weights in from the file and
    // measures compute several times too slow, which would make every restore plan avoid
    // recompute. The second measurement is of the warm engine the replay uses.
    LLMS_RETURN_IF_ERROR(CostModel::Measure(e.engine.get(), store.get()).status());
    LLMS_ASSIGN_OR_RETURN(e.cost, CostModel::Measure(e.engine.get(), store.get()));
  }
  std::filesystem::remove_all(dir, ec);
  return e;
}

Status RunReport(ReportSettings s) {
  const Stopwatch total;
  ReportData data;
  if (s.data_dir.empty()) {
    s.data_dir =
        std::filesystem::path(DefaultModelPath()).parent_path().parent_path().string() + "/data";
  }
  if (s.small_model.empty()) s.small_model = DefaultModelPath();
  if (s.quick) {
    s.main_shape.clear();
    s.big_shape.clear();
    s.contexts = 4;
    s.calls = 6;
    s.pattern_calls = 4;
    s.warmup_tokens = 48;
    s.length_scale = 0.2;
    s.sweep_contexts = {2, 4};
    s.budget_fraction = 0.5;  // 4 contexts: one alone is a quarter of their KV
    s.sweep_calls = 4;
    s.sweep_warmup_tokens = 32;
  }
  std::error_code ec;
  std::filesystem::create_directories(s.out_dir + "/data", ec);
  if (ec) return Status::IOError("cannot create " + s.out_dir + ": " + ec.message());
  data.settings = s;

  LLMS_ASSIGN_OR_RETURN(
      std::vector<AppSwitch> switches,
      ReadStudentLifeSwitches(Env::Default(), s.data_dir + "/studentlife-foreground-switches.csv"));
  LLMS_ASSIGN_OR_RETURN(std::string stories_text,
                        ReadText(s.data_dir + "/tinystories-valid.txt", 0));

  // Plan everything first so the progress bar knows the total.
  LLMS_ASSIGN_OR_RETURN(const FlashClass flash, ParseFlashClass(s.flash));
  std::unique_ptr<ShapedEnv> shaped;
  if (flash.shaped()) shaped = std::make_unique<ShapedEnv>(Env::Default(), flash);
  Env* const env = shaped ? shaped.get() : Env::Default();
  LLMS_ASSIGN_OR_RETURN(LoadedEval small, LoadForEval(s, s.small_model, env));
  AccuracyOptions ao;
  if (s.quick) ao.stories = 4, ao.turns = 3;
  LLMS_ASSIGN_OR_RETURN(auto stories, SelectStories(small.model->tokenizer(), stories_text, ao));
  std::vector<ModelPlan> plans;
  if (s.main_shape.empty()) {
    ModelPlan p;
    p.label = "stories260K";
    p.path = s.small_model;
    // Trace prompts are TinyStories text for the model that can read it.
    p.corpus = small.model->tokenizer().Encode(stories_text.substr(0, 200000), false);
    plans.push_back(std::move(p));
  } else {
    LLMS_ASSIGN_OR_RETURN(std::string path, SynthModel(s, s.main_shape));
    plans.push_back({s.main_shape, path, {}, {}});
  }
  if (!s.big_shape.empty()) {
    LLMS_ASSIGN_OR_RETURN(std::string path, SynthModel(s, s.big_shape));
    plans.push_back({s.big_shape, path, {}, {}});
  }
  // Vocabulary sizes without loading the big models twice: synthetic shapes declare theirs.
  for (size_t i = 0; i < plans.size(); ++i) {
    size_t vocab = small.model->config().vocab_size;
    if (auto shape = FindSyntheticShape(plans[i].label)) vocab = shape->vocab_size;
    if (i == 0) {
      LLMS_RETURN_IF_ERROR(PlanMain(s, switches, vocab, &plans[i], &data));
    } else {
      TraceOptions o = BaseTraceOptions(s);
      o.contexts = s.big_contexts;
      o.calls = s.big_calls;
      o.warmup_tokens = s.big_warmup_tokens;
      LLMS_ASSIGN_OR_RETURN(Trace t, GenerateTrace(o, plans[i].corpus, vocab));
      LLMS_ASSIGN_OR_RETURN(Trace saved, SaveTrace(s, plans[i].label, t, &data));
      plans[i].runs.push_back({std::move(saved),
                               {"none", "llms", "vllm-sq", "swap", "lmk"},
                               s.budget_fraction,
                               0,
                               0,
                               false});
    }
  }
  double units = 0;
  for (const ModelPlan& p : plans) {
    for (const ModelPlan::Run& r : p.runs) {
      units += TraceUnits(r.trace) * static_cast<double>(r.systems.size());
    }
  }
  // Accuracy calls are ~100x cheaper than a 1.1B model's tokens: one unit per call.
  const std::vector<CompressionCase> cases = CompressionCases();
  units += static_cast<double>(cases.size() * ao.turns * ao.stories);
  ProgressBar bar(units);

  Stopwatch step;
  ao.progress = [&](size_t, size_t) { bar.Add(1, "accuracy (stories260K)"); };
  LLMS_ASSIGN_OR_RETURN(data.accuracy, EvaluateAccuracy(small.engine.get(), stories, cases, ao));
  data.step_seconds.emplace_back("accuracy, stories260K", step.Seconds());
  data.accuracy_stories = ao.stories;
  data.accuracy_turns = ao.turns;
  data.accuracy_turn_tokens = ao.turn_tokens;
  for (size_t i = 0; i < plans.size(); ++i) {
    step.Restart();
    if (plans[i].path == s.small_model) {
      data.main_model = plans[i].label;
      data.main_cost = small.cost;
      LLMS_RETURN_IF_ERROR(RunPlan(s, plans[i], small.engine.get(), small.cost, env, &bar, &data));
    } else {
      LLMS_ASSIGN_OR_RETURN(LoadedEval e, LoadForEval(s, plans[i].path, env));
      (i == 0 ? data.main_model : data.big_model) = plans[i].label;
      (i == 0 ? data.main_cost : data.big_cost) = e.cost;
      LLMS_RETURN_IF_ERROR(RunPlan(s, plans[i], e.engine.get(), e.cost, env, &bar, &data));
    }
    data.step_seconds.emplace_back("replay, " + plans[i].label, step.Seconds());
  }
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
  cmd->add_option("--shape", s->main_shape, "synthetic shape of the main replay")
      ->capture_default_str();
  cmd->add_option("--big-shape", s->big_shape, "synthetic shape of the shortened run (\"\": none)")
      ->capture_default_str();
  cmd->add_option("--type", s->weight_type, "synthetic weight type")->capture_default_str();
  cmd->add_option("--contexts", s->contexts, "contexts of the main traces")->capture_default_str();
  cmd->add_option("--calls", s->calls, "measured calls of the Markov trace")->capture_default_str();
  cmd->add_option("--pattern-calls", s->pattern_calls,
                  "measured calls of the Random, Gaussian and StudentLife traces")
      ->capture_default_str();
  cmd->add_option("--warmup-tokens", s->warmup_tokens, "history per context before measuring")
      ->capture_default_str();
  cmd->add_option("--length-scale", s->length_scale,
                  "multiplies the paper's prompt lengths (1: as published; 2 cores prefill a "
                  "1.1B model at ~90 tokens/s)")
      ->capture_default_str();
  cmd->add_option("--dataset", s->dataset,
                  "prompt lengths: agnews, xsum, samsum, cnndm, wmt17, "
                  "sst2 or mix")
      ->capture_default_str();
  cmd->add_option("--budget-fraction", s->budget_fraction,
                  "memory budget as a fraction of the contexts' f16 KV")
      ->capture_default_str();
  cmd->add_option("--sweep-budgets", s->sweep_budgets, "sweep budgets, in average contexts' f16 KV")
      ->capture_default_str();
  cmd->add_option("--sweep-contexts", s->sweep_contexts, "sweep trace sizes")
      ->capture_default_str();
  cmd->add_option("--limits-ms", s->limits_ms, "switch-latency limits of the sweep")
      ->capture_default_str();
  cmd->add_option("--user", s->studentlife_user, "StudentLife user (u00, u01, u02)")
      ->capture_default_str();
  cmd->add_option("--flash", s->flash,
                  "flash class of every system's chunk store: " + FlashClassNames() +
                      " (docs/flash_classes.md)")
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
