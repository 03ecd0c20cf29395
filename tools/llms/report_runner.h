// The cells of `llms report` (tools/llms/report.h): a Job names a system, a trace, a budget, a
// flash class and a chunk size; the Evaluation runs jobs, each from histories computed once and
// adopted (eval/replay.h), and records a Cell per job.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "engine/engine.h"
#include "env/shaped_env.h"
#include "eval/replay.h"
#include "eval/trace.h"
#include "tools/llms/report.h"

namespace llms::cli {

// A progress bar on stderr over work units (tokens of every planned call), with the elapsed time
// and a linear estimate of what is left; into a log, one line per percent.
class ProgressBar {
 public:
  explicit ProgressBar(double total) : total_(total) {}
  void Add(double units, const std::string& label);
  void Finish() { std::fputc('\n', stderr); }

 private:
  double total_, done_ = 0;
  Stopwatch timer_;
  const bool tty_ = isatty(STDERR_FILENO) != 0;
  int last_percent_ = -1;
};

// Prompt and generated tokens of the warm-up calls (`warmups`) or the measured ones.
double TraceUnits(const Trace& t, bool warmups);
// The first `calls` measured calls of `t` after its warm-ups (0: all).
Trace Prefix(const Trace& t, size_t calls);

// One cell to run: a system on a trace.
struct Job {
  std::string group;  // Cell::group
  size_t trace = 0;   // index into the plan's traces
  std::string system;
  double fraction = 0;      // of the trace's history f16 KV
  size_t budget_bytes = 0;  // when not 0: this budget instead of the fraction's
  bool of_largest = false;  // `fraction` is of the plan's largest trace (budget_bytes set)
  std::string flash;
  size_t calls = 0;  // measured calls (0: all)
  size_t chunk_tokens = 16;
};

class Evaluation {
 public:
  // `model` and `engine` (chunks of 16 tokens) must outlive the evaluation; other chunk sizes get
  // engines of their own.
  Evaluation(const ReportSettings& s, const LlamaModel* model, Engine* engine, std::string label,
             ReportData* data, ProgressBar* bar);
  ~Evaluation();  // removes the stores

  // Runs the job (a system that cannot fit, or a failed run, is a Cell that says why). Errors:
  // only those that stop the whole report (a flash class that cannot be set up).
  Status Run(const Job& job, const Trace& trace);

 private:
  struct Flash {
    std::unique_ptr<ShapedEnv> shaped;
    Env* env = nullptr;
    std::string store_dir;
    CostModel cost;
  };

  StatusOr<Engine*> EngineFor(size_t chunk_tokens);
  StatusOr<Flash*> FlashFor(const std::string& name, Engine* engine);
  StatusOr<const ReplayHistories*> Histories(Engine* engine, const Trace& trace);
  // Why `system` cannot hold its largest running context in `budget`, or "".
  std::string DoesNotFit(const Engine& engine, const Trace& trace, const std::string& system,
                         size_t budget) const;
  void WriteCsv(const Cell& cell, const Trace& trace, const ReplayResult& r) const;

  const ReportSettings& s_;
  const LlamaModel* model_;
  Engine* engine_;
  std::map<size_t, std::unique_ptr<Engine>> engines_;  // by chunk size, other than 16
  std::string label_;
  ReportData* data_;
  ProgressBar* bar_;
  std::map<std::string, Flash> flash_;  // by class and chunk size
  std::unique_ptr<ReplayHistories> histories_;
  const Engine* histories_engine_ = nullptr;
  std::map<std::string, ReplayResult> references_;  // `none` runs by trace, seed and chunk size
};

}  // namespace llms::cli
