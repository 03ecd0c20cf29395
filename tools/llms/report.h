// `llms report`: the evaluation of ../shared/spec/LLMS.md §7 in one run, in the paper's regime
// (issue 13): the Llama2-7B shape, contexts of 500 to 2,500 tokens computed once and adopted by
// every system, budgets as fractions of their f16 KV, phone flash classes; then accuracy under
// compression. Writes a Markdown report with gnuplot figures.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "base/status.h"
#include "eval/accuracy.h"
#include "eval/replay.h"
#include "memory/cost_model.h"

namespace llms::cli {

// Every setting of the report, declared once with its default (the --help text is built from
// these fields in cmd_report.cc). Defaults fit about 45 minutes on 2 cores.
struct ReportSettings {
  std::string out_dir = "docs/evaluation";
  uint64_t seed = 1;
  int threads = 0;
  std::string synth_dir;                    // "" : $LLMS_SYNTH_DIR, else ~/.cache/llms/synth
  std::string small_model;                  // stories260K (accuracy); "" : the default model
  std::string data_dir;                     // ../shared/data
  std::string main_shape = "llama2-7b-2l";  // synthetic shape of the replays
  std::string weight_type = "Q4_0";
  // Active contexts of the headline traces (the paper: 2 to 16).
  std::vector<size_t> contexts = {8, 16};
  size_t calls = 48;          // measured calls of each headline trace
  size_t slow_calls = 12;     // of LMK, which recomputes whole contexts (stated in the report)
  size_t pattern_calls = 24;  // of the Random, Gaussian and StudentLife traces
  // Each context's history: a length drawn uniformly from this range (the paper's contexts).
  size_t history_min_tokens = 500, history_max_tokens = 2500;
  uint32_t generate_tokens = 16;  // per measured call
  // Of the paper's prompt lengths for the measured calls (1: as published; 2 cores prefill the
  // 2-layer shape at ~200 tokens/s, so 0.25 keeps a call under a second).
  double length_scale = 0.25;
  std::string dataset = "mix";  // prompt length profile
  // Markov recency decay: 0.85 still favours recent contexts (rank 0 is 2.9x as likely as rank
  // 7) and visits most contexts.
  double markov_decay = 0.85;
  // Of all contexts' f16 KV at the start of the measured calls.
  std::vector<double> budget_fractions = {1.0 / 16, 1.0 / 8, 1.0 / 4};
  // The budget of the flash-class sweep, the ablation, the patterns and the repetitions: 1/4, the
  // tightest where the int8 baselines hold the largest context of 8.
  double fixed_fraction = 1.0 / 4;
  size_t repetitions = 3;  // seeds of the repetition cells (headline seed first)
  // The headline's flash class (env/flash_device.h), and the others of the flash-class sweep.
  std::string flash = "ufs";
  std::vector<std::string> flash_sweep = {"native", "emmc", "slow"};
  // Where stores of shaped classes live: RAM, so that the class's model and not this machine's
  // disk sets their time (native stores live under out_dir, on this disk).
  std::string shaped_store_dir = "/dev/shm";
  // Active contexts under a latency limit: traces of fewer contexts than the largest headline
  // size, at budgets fixed in bytes (fractions of the largest trace's f16 KV), checked against
  // the paper's limits.
  std::vector<size_t> sweep_contexts = {2, 4, 8};
  std::vector<double> sweep_fractions = {1.0 / 16, 1.0 / 8};
  size_t sweep_calls = 24;
  std::vector<double> limits_ms = {10, 25};
  // KV chunk sizes of the chunk-size sweep (tokens), on the smallest headline size.
  std::vector<size_t> chunk_sizes = {8, 16, 32, 64};
  size_t chunk_calls = 24;
  // The headline cells at full depth (the whole 32-layer shape): one smaller Markov trace.
  std::string depth_shape = "llama2-7b";  // "" : none
  size_t depth_contexts = 4, depth_calls = 8;
  size_t depth_history_min_tokens = 500, depth_history_max_tokens = 1000;
  double depth_length_scale = 0.1;
  std::string studentlife_user = "u02";  // the user with the most rows
  bool quick = false;                    // a smoke run: stories260K only, tiny traces
};

// One system on one trace under one budget and flash class.
struct Cell {
  std::string group;  // headline, flash, ablation, pattern, repetition
  std::string model, pattern, flash, system;
  size_t contexts = 0;
  uint64_t seed = 0;
  size_t chunk_tokens = 16;
  double budget_fraction = 0;  // of kv_f16_bytes
  size_t budget_bytes = 0;
  size_t kv_f16_bytes = 0;  // all contexts' histories at f16
  // Why the cell has no numbers: the system's running context does not fit the budget, or the
  // run failed (with its error). Empty: it ran.
  std::string not_run;
  RunSummary summary;
  // Ours on the headline: the summary of the first `slow_calls` measured calls too, to compare
  // with LMK's shorter run on the same calls.
  RunSummary slow_prefix;
};

struct TraceFile {
  std::string path;
  std::string name;
  size_t calls = 0;
  std::string digest;  // of the file's bytes (same seed, same digest)
};

struct ReportData {
  ReportSettings settings;
  std::string main_model;
  std::string depth_model;                               // "" : no full-depth cells
  std::vector<std::pair<std::string, CostModel>> costs;  // by flash class
  std::vector<AccuracyRow> accuracy;
  size_t accuracy_stories = 0, accuracy_turns = 0, accuracy_turn_tokens = 0;
  std::vector<Cell> cells;
  std::vector<TraceFile> traces;
  double history_seconds = 0;  // computing the histories (once per trace seed and size)
  double seconds = 0;
  std::vector<std::pair<std::string, double>> step_seconds;
};

// Writes report.md, the figures' data and gnuplot scripts into settings.out_dir and runs gnuplot
// (a missing gnuplot leaves the scripts and says so in the report). Errors: the file system's.
Status WriteReport(const ReportData& data);

}  // namespace llms::cli
