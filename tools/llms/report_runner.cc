#include "tools/llms/report_runner.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "memory/policy.h"
#include "store/chunk_store.h"

namespace llms::cli {
namespace {

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// The largest context at the end of `t`, in tokens.
size_t LargestContextTokens(const Trace& t) {
  std::vector<size_t> tokens(t.contexts, 0);
  for (const TraceCall& c : t.calls) tokens[c.context] += c.prompt.size() + c.max_tokens;
  return *std::max_element(tokens.begin(), tokens.end());
}

// The level a system must hold its whole running context at (LMK recomputes into f16 chunks and
// vLLM-S keeps f16; the other uniform policies their level); nullopt: chunk-wise compression,
// nothing to check before running.
std::optional<KvLevel> RunningLevel(const std::string& system) {
  const std::optional<Policy> p = Policy::ByName(system);
  if (!p || p->compression != CompressionMode::kUniform) return std::nullopt;
  if (p->restore == RestoreMode::kRecomputeOnly) return KvLevel::kF16;
  return p->uniform_level;
}

}  // namespace

void ProgressBar::Add(double units, const std::string& label) {
  done_ += units;
  const double f = total_ > 0 ? std::min(1.0, done_ / total_) : 1.0;
  const int width = 30, filled = static_cast<int>(f * width);
  const double elapsed = timer_.Seconds();
  const double left = f > 0.01 ? elapsed * (1 - f) / f : 0;
  if (!tty_ && static_cast<int>(100 * f) == last_percent_) return;
  last_percent_ = static_cast<int>(100 * f);
  std::fprintf(stderr, "%s[%s%s] %3.0f%% %4.0fs elapsed, ~%4.0fs left  %-44.44s",
               tty_ ? "\r" : "\n", std::string(static_cast<size_t>(filled), '#').c_str(),
               std::string(static_cast<size_t>(width - filled), '.').c_str(), 100 * f, elapsed,
               left, label.c_str());
  std::fflush(stderr);
}

double TraceUnits(const Trace& t, bool warmups) {
  double units = 0;
  for (const TraceCall& c : t.calls) {
    if (c.warmup == warmups) units += static_cast<double>(c.prompt.size() + c.max_tokens);
  }
  return units;
}

Trace Prefix(const Trace& t, size_t calls) {
  if (calls == 0) return t;
  Trace p = t;
  size_t measured = 0;
  p.calls.clear();
  for (const TraceCall& c : t.calls) {
    if (!c.warmup && measured++ >= calls) break;
    p.calls.push_back(c);
  }
  return p;
}

Evaluation::Evaluation(const ReportSettings& s, const LlamaModel* model, Engine* engine,
                       std::string label, ReportData* data, ProgressBar* bar)
    : s_(s), model_(model), engine_(engine), label_(std::move(label)), data_(data), bar_(bar) {}

Evaluation::~Evaluation() {
  std::error_code ec;
  for (auto& [name, f] : flash_) std::filesystem::remove_all(f.store_dir, ec);
}

StatusOr<Engine*> Evaluation::EngineFor(size_t chunk_tokens) {
  if (chunk_tokens == engine_->kv_layout().chunk_tokens) return engine_;
  std::unique_ptr<Engine>& e = engines_[chunk_tokens];
  if (e == nullptr) {
    LLMS_ASSIGN_OR_RETURN(e, Engine::Create(model_, EngineOptions{s_.threads, chunk_tokens}));
  }
  return e.get();
}

// The flash class's Env and store directory, and a cost model measured on it with this engine's
// chunks (once).
StatusOr<Evaluation::Flash*> Evaluation::FlashFor(const std::string& name, Engine* engine) {
  const size_t chunk = engine->kv_layout().chunk_tokens;
  const std::string key = name + "-chunk" + std::to_string(chunk);
  if (auto it = flash_.find(key); it != flash_.end()) return &it->second;
  LLMS_ASSIGN_OR_RETURN(const FlashClass fc, ParseFlashClass(name));
  Flash& f = flash_[key];
  std::string root = s_.out_dir;
  if (fc.shaped() && !s_.shaped_store_dir.empty() &&
      std::filesystem::is_directory(s_.shaped_store_dir)) {
    root = s_.shaped_store_dir;
  }
  f.store_dir = root + "/.llms-report-store-" + std::to_string(getpid()) + "-" + key;
  if (fc.shaped()) f.shaped = std::make_unique<ShapedEnv>(Env::Default(), fc);
  f.env = f.shaped ? f.shaped.get() : Env::Default();
  const std::string dir = f.store_dir + "-cost";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  {
    LLMS_ASSIGN_OR_RETURN(auto store, ChunkStore::Open(f.env, dir, {}));
    // Twice: the first pass of a freshly loaded model faults its weights in and measures compute
    // several times too slow.
    LLMS_RETURN_IF_ERROR(CostModel::Measure(engine, store.get()).status());
    LLMS_ASSIGN_OR_RETURN(f.cost, CostModel::Measure(engine, store.get()));
  }
  std::filesystem::remove_all(dir, ec);
  data_->costs.emplace_back(key, f.cost);
  return &f;
}

// The histories of `trace`: computed once per distinct set of warm-up calls and engine (a trace
// whose contexts are the first ones of the last histories reuses them).
StatusOr<const ReplayHistories*> Evaluation::Histories(Engine* engine, const Trace& trace) {
  std::vector<std::vector<int32_t>> warmups(trace.contexts);
  for (const TraceCall& c : trace.calls) {
    if (c.warmup) warmups[c.context] = c.prompt;
  }
  const bool reusable = histories_ != nullptr && histories_engine_ == engine &&
                        histories_->tokens.size() >= warmups.size() &&
                        std::equal(warmups.begin(), warmups.end(), histories_->tokens.begin());
  if (!reusable) {
    histories_.reset();  // the old ones first: they can take a GiB
    const Stopwatch timer;
    LLMS_ASSIGN_OR_RETURN(ReplayHistories h, BuildHistories(engine, trace));
    histories_ = std::make_unique<ReplayHistories>(std::move(h));
    histories_engine_ = engine;
    data_->history_seconds += timer.Seconds();
    bar_->Add(TraceUnits(trace, true), label_ + " histories of " + trace.name);
  }
  return histories_.get();
}

std::string Evaluation::DoesNotFit(const Engine& engine, const Trace& trace,
                                   const std::string& system, size_t budget) const {
  const std::optional<KvLevel> level = RunningLevel(system);
  if (!level) return "";
  const KvLayout& L = engine.kv_layout();
  const double per_token = static_cast<double>(L.LayerBytes(*level) * engine.config().n_layers) /
                           static_cast<double>(L.chunk_tokens);
  const double need = 1.1 * per_token * static_cast<double>(LargestContextTokens(trace));
  if (need <= static_cast<double>(budget)) return "";
  return "does not fit: its largest context needs " + Fmt("%.1f", need / 1048576.0) + " MiB at " +
         std::string(KvLevelName(*level));
}

Status Evaluation::Run(const Job& job, const Trace& full) {
  LLMS_ASSIGN_OR_RETURN(Engine * engine, EngineFor(job.chunk_tokens));
  LLMS_ASSIGN_OR_RETURN(Flash * f, FlashFor(job.flash, engine));
  const Trace trace = Prefix(full, job.calls);
  Cell cell;
  cell.group = job.group;
  cell.model = label_;
  cell.pattern = std::string(SwitchPatternName(trace.pattern));
  cell.flash = job.flash;
  cell.system = job.system;
  cell.contexts = trace.contexts;
  cell.seed = trace.seed;
  cell.chunk_tokens = job.chunk_tokens;
  cell.kv_f16_bytes = HistoryKvBytesF16(*engine, trace);
  cell.budget_bytes =
      job.budget_bytes > 0
          ? job.budget_bytes
          : static_cast<size_t>(job.fraction * static_cast<double>(cell.kv_f16_bytes));
  cell.budget_fraction = job.budget_bytes > 0 ? static_cast<double>(job.budget_bytes) /
                                                    static_cast<double>(cell.kv_f16_bytes)
                                              : job.fraction;
  const std::string label = trace.name + " " + job.system;
  cell.not_run = DoesNotFit(*engine, trace, job.system, cell.budget_bytes);
  if (!cell.not_run.empty()) {
    bar_->Add(TraceUnits(trace, false), label + " skipped");
    data_->cells.push_back(std::move(cell));
    return Status::Ok();
  }
  LLMS_ASSIGN_OR_RETURN(const ReplayHistories* histories, Histories(engine, trace));
  ReplayOptions ro;
  ro.system = job.system;
  ro.budget_bytes = cell.budget_bytes;
  ro.store_dir = f->store_dir;
  ro.env = f->env;
  ro.cost = &f->cost;
  ro.histories = histories;
  ro.progress = [&](size_t done, size_t) {
    const TraceCall& c = trace.calls[done - 1];
    if (!c.warmup) bar_->Add(static_cast<double>(c.prompt.size() + c.max_tokens), label);
  };
  StatusOr<ReplayResult> r = Replay(engine, trace, ro);
  const std::string key =
      trace.name + "/" + std::to_string(trace.seed) + "/chunk" + std::to_string(job.chunk_tokens);
  if (r.ok() && job.system == kNoManager) references_[key] = *r;
  if (r.ok() && job.system != kNoManager && references_.count(key)) {
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
  if (job.group == "headline" && job.system == "llms") {
    const size_t end = std::min(r->calls.size(), trace.contexts + s_.slow_calls);
    cell.slow_prefix = SummarizeCalls(
        job.system, std::vector<CallRecord>(r->calls.begin(), r->calls.begin() + end));
  }
  data_->cells.push_back(std::move(cell));
  return Status::Ok();
}

// Per-call records, named by every parameter of the cell.
void Evaluation::WriteCsv(const Cell& cell, const Trace& trace, const ReplayResult& r) const {
  const std::string csv = s_.out_dir + "/data/" + label_ + "-" + trace.name + "-" + cell.system +
                          "-budget" + Fmt("%.4f", cell.budget_fraction) + "-" + cell.flash +
                          "-chunk" + std::to_string(cell.chunk_tokens) + "-calls" +
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
      << st.prompt_tokens << ',' << c.generated << ',' << c.switch_seconds << ',' << st.read_seconds
      << ',' << st.write_seconds << ',' << st.recompute_seconds << ',' << st.other_seconds << ','
      << c.paired_seconds << ',' << st.extra_first_token_seconds << ',' << st.first_token_seconds
      << ',' << st.ready_seconds << ',' << st.bulk_read << ',' << st.chunks_loaded << ','
      << st.chunks_recomputed << ',' << st.bytes_read << ',' << st.bytes_written << ','
      << c.prefill_seconds << ',' << c.decode_seconds << ',' << c.wall_seconds << '\n';
  }
}

}  // namespace llms::cli
