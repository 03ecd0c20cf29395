// Replay: runs a trace through the real memory manager and engine under one system (the paper's
// system, an ablation or a baseline of ../shared/spec/LLMS.md §6), with the idle gaps between
// calls on a virtual clock (nothing sleeps) and compute and I/O for real, and summarises the
// switch latency of every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "env/env.h"
#include "eval/trace.h"
#include "memory/cost_model.h"
#include "memory/kv_manager.h"

namespace llms {

// The system name of a replay without a memory manager: every context's KV stays resident at
// f16 in an unlimited cache (the baseline of the generation slowdown; it has no switches).
inline constexpr const char* kNoManager = "none";

// The contexts' histories (the trace's warm-up calls) computed once, without a manager, at f16:
// every system's run adopts them (KvManager::AdoptContext) instead of computing them again, so
// all start from the same KV, each compressed, kept and written by its own policy under its
// budget before the first measured call.
struct ReplayHistories {
  std::vector<std::vector<int32_t>> tokens;  // per context
  std::vector<std::unique_ptr<KvCache>> kv;  // per context: resident f16 chunks
  double seconds = 0;                        // computing them
};
// Runs the warm-up calls of `trace` on resident caches. Errors: as Replay's.
StatusOr<ReplayHistories> BuildHistories(Engine* engine, const Trace& trace);

struct ReplayOptions {
  std::string system = "llms";  // a Policy::Names() entry or kNoManager
  size_t budget_bytes = size_t{64} << 20;
  // Directory for the system's chunk store; created if missing, emptied before and removed
  // after the run (each system starts from the same empty flash).
  std::string store_dir;
  // The Env of the chunk store (a ShapedEnv runs every system on one flash class); null: the
  // default. Must outlive the replay.
  Env* env = nullptr;
  // The same measured cost model for every system of a comparison (fair restore plans, and one
  // measurement instead of one per system); null measures it at Open.
  const CostModel* cost = nullptr;
  // Adopted in place of running the warm-up calls (null: they run). Its first trace.contexts
  // histories must be the trace's warm-ups (a trace of more contexts may have built them).
  const ReplayHistories* histories = nullptr;
  // Called after each call with (calls done, calls in the trace).
  std::function<void(size_t, size_t)> progress;
};

// One call of the trace as it ran.
struct CallRecord {
  size_t index = 0;  // in the trace
  uint32_t context = 0;
  bool warmup = false;
  bool adopted = false;  // a warm-up call whose result was adopted from ReplayHistories, not run
  // Its context differs from the previous call's: a context switch. The latency summaries are
  // over these calls; a call on the context just used has nothing to restore.
  bool switched = false;
  double arrival_seconds = 0;  // virtual clock
  double start_seconds = 0;    // virtual: arrival, or later if the previous call still ran
  size_t context_tokens = 0;   // tokens of the context before the call
  size_t generated = 0;
  CallStats stats;
  double prefill_seconds = 0, decode_seconds = 0;
  double wall_seconds = 0;  // the whole call, including writes after generation
  // The switch latency: the time to first token this call spent restoring its context
  // (stats.restore_seconds, measured inside the call; 0 without a manager).
  double switch_seconds = 0;
  // First token minus the same call's first token in a run without a manager, floored at 0
  // (set by ApplyResidentReference; -1 when not). Carries the noise of two runs at different
  // times, so on a shared machine it is a cross-check, not the metric.
  double paired_seconds = -1;
};

struct Percentiles {
  size_t n = 0;  // values summarised (below 100, p99 is the maximum: report max)
  double mean = 0, p50 = 0, p99 = 0, max = 0;
};
// Nearest-rank percentiles; zeros for no values.
Percentiles Summarize(std::vector<double> values);

// Per run, over the measured (non-warm-up) calls.
struct RunSummary {
  std::string system;
  size_t calls = 0;
  size_t switched_calls = 0;  // of `calls`, those that switched context
  // Over the calls that switched context: seconds.
  Percentiles switch_latency;
  double paired_mean = -1;  // mean paired_seconds (-1: no reference)
  Percentiles ready;        // seconds, time to ready
  size_t bytes_read = 0, bytes_written = 0;
  size_t chunks_missing = 0, chunks_recomputed = 0;
  double recompute_share = 0;  // recomputed / missing chunks (0 with none missing)
  size_t decode_tokens = 0;
  double decode_seconds_per_token = 0;
  double prefill_seconds_per_token = 0;
  // Over the calls that switched context: mean seconds of restore_seconds' parts (CallStats).
  double read_seconds = 0, write_seconds = 0, recompute_seconds = 0, other_seconds = 0;
  double wall_seconds = 0;    // every call run, warm-up included (adopted ones take none)
  double queued_seconds = 0;  // virtual time calls waited for a previous call (0: gaps suffice)
};

// The summary of `calls` (the measured ones), as Replay gives it.
RunSummary SummarizeCalls(const std::string& system, const std::vector<CallRecord>& calls);

struct ReplayResult {
  RunSummary summary;
  std::vector<CallRecord> calls;
};

// Errors: InvalidArgument for an unknown system or a trace whose tokens the model cannot take;
// the manager's and store's (ResourceExhausted when one context alone exceeds the budget).
StatusOr<ReplayResult> Replay(Engine* engine, const Trace& trace, const ReplayOptions& options);

// Sets each call's paired_seconds against `reference`, a run of the same trace without a memory
// manager (kNoManager): first token minus the reference's for the same call, the same prompt on a
// resident context. The run may be of a prefix of the reference's trace (a slow system on fewer
// calls). Re-summarises `result`. Errors: InvalidArgument when the two runs are not of the same
// trace.
Status ApplyResidentReference(const ReplayResult& reference, ReplayResult* result);

// The f16 KV bytes of all contexts of `trace` once every call has run (prompts plus generated
// tokens).
size_t TraceKvBytesF16(const Engine& engine, const Trace& trace);
// The f16 KV bytes of all contexts at the start of the measured calls (their histories): the
// reference the budgets of a comparison are fractions of.
size_t HistoryKvBytesF16(const Engine& engine, const Trace& trace);

}  // namespace llms
