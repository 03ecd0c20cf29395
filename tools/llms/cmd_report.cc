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
    // Into a log (not a terminal): a line per percent, not one per call.
    if (!tty_ && static_cast<int>(100 * f) == last_percent_) return;
    last_percent_ = static_cast<int>(100 * f);
    std::fprintf(stderr, "%s[%s%s] %3.0f%% %4.0fs elapsed, ~%4.0fs left  %-44.44s",
                 tty_ ? "\r" : "\n", std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '.').c_str(), 100 * f, elapsed,
                 left, label.c_str());
    std::fflush(stderr);
  }
  void Finish() { std::fputc('\n', stderr); }

 private:
  double total_, done_ = 0;
  Stopwatch timer_;
  const bool tty_ = isatty(STDERR_FILENO) != 0;
  int last_percent_ = -1;
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

double TraceUnits(const Trace& t, bool warmups) {
  double units = 0;
  for (const TraceCall& c : t.calls) {
    if (c.warmup == warmups) units += static_cast<double>(c.prompt.size() + c.max_tokens);
  }
  return units;
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

// The first `calls` measured calls of `t` after its warm-ups (a slow system's shorter run).
Trace Prefix(const Trace& t, size_t calls) {
  Trace p = t;
  size_t measured = 0;
  p.calls.clear();
  for (const TraceCall& c : t.calls) {
    if (!c.warmup && measured++ >= calls) break;
    p.calls.push_back(c);
  }
  return p;
}

// The largest context at the end of `t`, in tokens.
size_t LargestContextTokens(const Trace& t) {
  std::vector<size_t> tokens(t.contexts, 0);
  for (const TraceCall& c : t.calls) tokens[c.context] += c.prompt.size() + c.max_tokens;
  return *std::max_element(tokens.begin(), tokens.end());
}

// The level a system must hold its whole running context at (LMK recomputes into f16 chunks and
// vLLM-S keeps f16; the other uniform policies their level); nullopt: chunk-wise compression to
// int2, nothing to check before running.
std::optional<KvLevel> RunningLevel(const std::string& system) {
  const std::optional<Policy> p = Policy::ByName(system);
  if (!p || p->compression != CompressionMode::kUniform) return std::nullopt;
  if (p->restore == RestoreMode::kRecomputeOnly) return KvLevel::kF16;
  return p->uniform_level;
}

// Runs every system of the report on the traces the plan gives it, each from the same adopted
// histories, and records a Cell per run.
class Evaluation {
 public:
  Evaluation(const ReportSettings& s, Engine* engine, std::string model, ReportData* data,
             ProgressBar* bar)
      : s_(s), engine_(engine), model_(std::move(model)), data_(data), bar_(bar) {}

  // The flash class's Env and store directory, and a cost model measured on it (once).
  Status UseFlash(const std::string& name) {
    if (flash_.count(name)) return Status::Ok();
    LLMS_ASSIGN_OR_RETURN(const FlashClass fc, ParseFlashClass(name));
    Flash& f = flash_[name];
    std::string root = s_.out_dir;
    if (fc.shaped() && !s_.shaped_store_dir.empty() &&
        std::filesystem::is_directory(s_.shaped_store_dir)) {
      root = s_.shaped_store_dir;
    }
    f.store_dir = root + "/.llms-report-store-" + std::to_string(getpid()) + "-" + name;
    if (fc.shaped()) f.shaped = std::make_unique<ShapedEnv>(Env::Default(), fc);
    f.env = f.shaped ? f.shaped.get() : Env::Default();
    const std::string dir = f.store_dir + "-cost";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    {
      LLMS_ASSIGN_OR_RETURN(auto store, ChunkStore::Open(f.env, dir, {}));
      // Twice: the first pass of a freshly loaded model faults its weights in and measures
      // compute several times too slow.
      LLMS_RETURN_IF_ERROR(CostModel::Measure(engine_, store.get()).status());
      LLMS_ASSIGN_OR_RETURN(f.cost, CostModel::Measure(engine_, store.get()));
    }
    std::filesystem::remove_all(dir, ec);
    data_->costs.emplace_back(name, f.cost);
    return Status::Ok();
  }

  // The histories of `trace`: computed once per distinct set of warm-up calls.
  StatusOr<const ReplayHistories*> Histories(const Trace& trace) {
    std::vector<std::vector<int32_t>> warmups(trace.contexts);
    for (const TraceCall& c : trace.calls) {
      if (c.warmup) warmups[c.context] = c.prompt;
    }
    if (histories_ == nullptr || histories_->tokens != warmups) {
      histories_.reset();  // the old ones first: they can take a GiB
      const Stopwatch timer;
      LLMS_ASSIGN_OR_RETURN(ReplayHistories h, BuildHistories(engine_, trace));
      histories_ = std::make_unique<ReplayHistories>(std::move(h));
      data_->history_seconds += timer.Seconds();
      bar_->Add(TraceUnits(trace, true), model_ + " histories of " + trace.name);
    }
    return histories_.get();
  }

  // One cell: `system` on `trace` (its first `calls` measured calls; 0: all).
  Status Run(const std::string& group, const Trace& full, const std::string& system,
             double fraction, const std::string& flash, size_t calls) {
    LLMS_RETURN_IF_ERROR(UseFlash(flash));
    Flash& f = flash_[flash];
    const Trace trace = calls > 0 ? Prefix(full, calls) : full;
    LLMS_ASSIGN_OR_RETURN(const ReplayHistories* histories, Histories(trace));
    Cell cell;
    cell.group = group;
    cell.model = model_;
    cell.pattern = std::string(SwitchPatternName(trace.pattern));
    cell.flash = flash;
    cell.system = system;
    cell.contexts = trace.contexts;
    cell.seed = trace.seed;
    cell.budget_fraction = fraction;
    cell.kv_f16_bytes = HistoryKvBytesF16(*engine_, trace);
    cell.budget_bytes = static_cast<size_t>(fraction * static_cast<double>(cell.kv_f16_bytes));
    const std::string label = model_ + " " + trace.name + " " + system;
    if (const auto level = RunningLevel(system)) {
      const KvLayout& L = engine_->kv_layout();
      const double per_token =
          static_cast<double>(L.LayerBytes(*level) * engine_->config().n_layers) /
          static_cast<double>(L.chunk_tokens);
      const double need = 1.1 * per_token * static_cast<double>(LargestContextTokens(trace));
      if (need > static_cast<double>(cell.budget_bytes)) {
        cell.not_run = "does not fit: its largest context needs " + Fmt1(need / 1048576.0) +
                       " MiB at " + std::string(KvLevelName(*level));
        bar_->Add(TraceUnits(trace, false), label + " skipped");
        data_->cells.push_back(std::move(cell));
        return Status::Ok();
      }
    }
    ReplayOptions ro;
    ro.system = system;
    ro.budget_bytes = cell.budget_bytes;
    ro.store_dir = f.store_dir;
    ro.env = f.env;
    ro.cost = &f.cost;
    ro.histories = histories;
    ro.progress = [&](size_t done, size_t) {
      const TraceCall& c = trace.calls[done - 1];
      if (!c.warmup) bar_->Add(static_cast<double>(c.prompt.size() + c.max_tokens), label);
    };
    StatusOr<ReplayResult> r = Replay(engine_, trace, ro);
    const std::string key = trace.name + "/" + std::to_string(trace.seed);
    if (r.ok() && system == kNoManager) references_[key] = *r;
    if (r.ok() && system != kNoManager && references_.count(key)) {
      Status applied = ApplyResidentReference(references_[key], &*r);
      if (!applied.ok()) r = applied;
    }
    if (!r.ok()) {
      // A failed run is a finding of the report, not a reason to lose the others.
      cell.not_run = "failed: " + r.status().ToString();
      data_->cells.push_back(std::move(cell));
      return Status::Ok();
    }
    WriteCsv(cell, trace, *r);
    cell.summary = r->summary;
    data_->cells.push_back(std::move(cell));
    return Status::Ok();
  }

  ~Evaluation() {
    std::error_code ec;
    for (auto& [name, f] : flash_) std::filesystem::remove_all(f.store_dir, ec);
  }

 private:
  struct Flash {
    std::unique_ptr<ShapedEnv> shaped;
    Env* env = nullptr;
    std::string store_dir;
    CostModel cost;
  };

  static std::string Fmt1(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return buf;
  }

  // Per-call records, named by every parameter of the cell.
  void WriteCsv(const Cell& cell, const Trace& trace, const ReplayResult& r) {
    char fraction[32];
    std::snprintf(fraction, sizeof(fraction), "%.4f", cell.budget_fraction);
    const std::string csv = s_.out_dir + "/data/" + model_ + "-" + trace.name + "-" + cell.system +
                            "-budget" + fraction + "-" + cell.flash + "-calls" +
                            std::to_string(trace.calls.size()) + ".csv";
    std::ofstream f(csv);
    f << "index,context,warmup,adopted,switched,arrival_s,start_s,context_tokens,prompt_tokens,"
         "generated,switch_s,read_s,write_s,recompute_s,other_s,paired_s,extra_first_token_s,"
         "first_token_s,ready_s,bulk_read,chunks_loaded,chunks_recomputed,bytes_read,"
         "bytes_written,prefill_s,decode_s,wall_s\n";
    for (const CallRecord& c : r.calls) {
      const CallStats& st = c.stats;
      f << c.index << ',' << c.context << ',' << c.warmup << ',' << c.adopted << ',' << c.switched
        << ',' << c.arrival_seconds << ',' << c.start_seconds << ',' << c.context_tokens << ','
        << st.prompt_tokens << ',' << c.generated << ',' << c.switch_seconds << ','
        << st.read_seconds << ',' << st.write_seconds << ',' << st.recompute_seconds << ','
        << st.other_seconds << ',' << c.paired_seconds << ',' << st.extra_first_token_seconds << ','
        << st.first_token_seconds << ',' << st.ready_seconds << ',' << st.bulk_read << ','
        << st.chunks_loaded << ',' << st.chunks_recomputed << ',' << st.bytes_read << ','
        << st.bytes_written << ',' << c.prefill_seconds << ',' << c.decode_seconds << ','
        << c.wall_seconds << '\n';
    }
  }

  const ReportSettings& s_;
  Engine* engine_;
  std::string model_;
  ReportData* data_;
  ProgressBar* bar_;
  std::map<std::string, Flash> flash_;
  std::unique_ptr<ReplayHistories> histories_;
  std::map<std::string, ReplayResult> references_;  // by trace name and seed
};

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

// One cell to run: a system on a trace.
struct Job {
  std::string group;
  size_t trace;  // index into the plan's traces
  std::string system;
  double fraction;
  std::string flash;
  size_t calls;  // 0: all
};

struct Plan {
  std::vector<Trace> traces;
  std::vector<Job> jobs;  // grouped by trace, so each trace's histories are computed once
  double units = 0;
};

// Every trace and cell of the report (docs/evaluation.md).
StatusOr<Plan> MakePlan(const ReportSettings& s, const std::vector<AppSwitch>& switches,
                        const std::vector<int32_t>& corpus, size_t vocab, const std::string& label,
                        ReportData* data) {
  Plan plan;
  const auto add_trace = [&](StatusOr<Trace> t, uint64_t seed) -> StatusOr<size_t> {
    LLMS_RETURN_IF_ERROR(t.status());
    t->name += "-seed" + std::to_string(seed);
    LLMS_ASSIGN_OR_RETURN(Trace saved, SaveTrace(s, label, *t, data));
    plan.traces.push_back(std::move(saved));
    plan.units += TraceUnits(plan.traces.back(), true);
    return plan.traces.size() - 1;
  };
  const auto add = [&](const std::string& group, size_t trace, const std::string& system,
                       double fraction, const std::string& flash, size_t calls) {
    plan.jobs.push_back({group, trace, system, fraction, flash, calls});
    const Trace& t = plan.traces[trace];
    plan.units += TraceUnits(calls > 0 ? Prefix(t, calls) : t, false);
  };
  const double fixed = s.fixed_fraction;
  for (size_t n : s.contexts) {
    TraceOptions o = BaseTraceOptions(s, n, s.seed);
    LLMS_ASSIGN_OR_RETURN(size_t t, add_trace(GenerateTrace(o, corpus, vocab), s.seed));
    add("headline", t, kNoManager, fixed, s.flash, 0);
    for (double f : s.budget_fractions) {
      for (const char* sys : {"llms", "vllm-sq", "swap"}) add("headline", t, sys, f, s.flash, 0);
      add("headline", t, "lmk", f, s.flash, s.slow_calls);
    }
    if (n != s.contexts.front()) continue;
    // On the first size only: the flash classes, the ablation and the other patterns.
    for (const std::string& flash : s.flash_sweep) {
      for (const char* sys : {"llms", "vllm-sq"}) add("flash", t, sys, fixed, flash, 0);
    }
    for (const char* sys : {"llms-no-pipeline", "llms-no-lifecycle", "llms-lru",
                            "llms-no-compression", "int4-lru", "vllm-s"}) {
      add("ablation", t, sys, fixed, s.flash, 0);
    }
    for (SwitchPattern p :
         {SwitchPattern::kRandom, SwitchPattern::kGaussian, SwitchPattern::kStudentLife}) {
      o.pattern = p;
      o.calls = s.pattern_calls;
      // The same seed draws the same histories: they are adopted from the Markov trace's.
      LLMS_ASSIGN_OR_RETURN(
          size_t pt,
          add_trace(p == SwitchPattern::kStudentLife
                        ? StudentLifeTrace(o, switches, s.studentlife_user, corpus, vocab)
                        : GenerateTrace(o, corpus, vocab),
                    s.seed));
      plan.units -= TraceUnits(plan.traces[pt], true);
      add("pattern", pt, kNoManager, fixed, s.flash, 0);
      for (const char* sys : {"llms", "vllm-sq", "swap"})
        add("pattern", pt, sys, fixed, s.flash, 0);
    }
  }
  for (size_t r = 1; r < s.repetitions; ++r) {
    const uint64_t seed = s.seed + r;
    LLMS_ASSIGN_OR_RETURN(
        size_t t,
        add_trace(GenerateTrace(BaseTraceOptions(s, s.contexts.front(), seed), corpus, vocab),
                  seed));
    for (const char* sys : {kNoManager, "llms", "vllm-sq"})
      add("repetition", t, sys, fixed, s.flash, 0);
  }
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
    vocab = synthetic.model->config().vocab_size;
    data.main_model = s.main_shape;
  }
  LLMS_ASSIGN_OR_RETURN(Plan plan, MakePlan(s, switches, corpus, vocab, data.main_model, &data));
  const AccuracyOptions accuracy_defaults;
  const size_t accuracy_units =
      CompressionCases().size() *
      (s.quick ? 4 * 3 : accuracy_defaults.stories * accuracy_defaults.turns);
  ProgressBar bar(plan.units + static_cast<double>(accuracy_units));

  Stopwatch step;
  {
    Evaluation eval(s, engine, data.main_model, &data, &bar);
    for (const Job& job : plan.jobs) {
      LLMS_RETURN_IF_ERROR(eval.Run(job.group, plan.traces[job.trace], job.system, job.fraction,
                                    job.flash, job.calls));
    }
  }
  data.step_seconds.emplace_back("replay, " + data.main_model, step.Seconds());
  synthetic.engine.reset();  // its memory back before the accuracy runs (engine first)
  synthetic.model.reset();
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
  cmd->add_option("--shaped-store-dir", s->shaped_store_dir,
                  "where the stores of shaped classes live (RAM, so the class sets their speed)")
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
