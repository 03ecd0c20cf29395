// KvManager: many persistent contexts sharing one hard KV memory budget (../shared/spec/LLMS.md
// §2-§5). It owns the lock and the parts below it: the context table (text, KV, chunk states,
// kept in step with the store), the evictor (LCTRU or a baseline's order), the chunk writer
// (ahead-of-time swap-out) and the budget. A call is one CallSession (memory/call_session.h):
// begin (admit, plan and start the restore once), steps, end (compress, persist once, queue the
// writes). docs/memory.md has a call's life and who holds what when.
//
// Goals: the budget is never exceeded; a context is never lost (its text is durable in the store
// and any chunk can be recomputed); restore is lossless with compression off; no flash I/O runs
// inside a forward pass. Non-goals: two steps at once (the engine is single-stream).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "base/status.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "memory/budget.h"
#include "memory/chunk_writer.h"
#include "memory/context_table.h"
#include "memory/cost_model.h"
#include "memory/evictor.h"
#include "memory/policy.h"
#include "memory/restore_plan.h"
#include "store/chunk_store.h"

namespace llms {

class CallSession;

// Marks a step (of a call, or an adoption) as running for as long as it lives; a second one at
// the same time is refused (held() is false).
class StepGuard {
 public:
  explicit StepGuard(std::atomic<bool>* flag) : flag_(flag), held_(!flag->exchange(true)) {}
  ~StepGuard() {
    if (held_) flag_->store(false);
  }
  StepGuard(const StepGuard&) = delete;
  StepGuard& operator=(const StepGuard&) = delete;
  bool held() const { return held_; }

 private:
  std::atomic<bool>* flag_;
  bool held_;
};

struct KvManagerOptions {
  size_t budget_bytes = size_t{256} << 20;  // resident KV of all contexts together
  Policy policy = Policy::Llms();
  // Write changed chunks on a background thread (the service); false writes them before a call
  // ends (deterministic tests and trace replay).
  bool background_writer = true;
  // Measure the cost model at Open (a few short passes and reads); false uses `cost`.
  bool measure_cost = true;
  // How reads are measured: false times reads of chunks already stored and writes nothing (a
  // daemon must start on a full disk; with nothing stored, read costs keep `cost`'s values);
  // true writes a scratch context and deletes it (benchmarks and replay on an empty store).
  bool measure_reads_with_scratch = true;
  CostModel cost;
  // Times calls (their statistics) and dates contexts (last use). Must outlive the manager; a
  // ManualClock makes both deterministic in tests.
  const Clock* clock = Clock::Real();
};

// What one call did.
struct CallStats {
  size_t chunks = 0;             // chunks of the context before the call
  size_t chunks_resident = 0;    // already in memory
  size_t chunks_loaded = 0;      // read from flash
  size_t chunks_recomputed = 0;  // rebuilt from text
  bool bulk_read = false;        // the loaded chunks were read whole before the pass
  size_t bytes_read = 0;
  size_t bytes_written = 0;  // written while the call waited (evictions of dirty chunks)
  size_t prompt_tokens = 0;
  double ready_seconds = 0;        // call start until every old chunk is present
  double first_token_seconds = 0;  // call start until its first step's pass is done
  // first_token_seconds minus the cost model's time for the same rows on a resident context:
  // the switch latency as ../shared/spec/LLMS.md §1 defines it (an estimate, never negative).
  double extra_first_token_seconds = 0;
  // Stored chunks that failed their checksum (or could not be read) and were recomputed
  // instead, and the first such failure's message.
  size_t chunks_damaged = 0;
  std::string damage;
  // The part of first_token_seconds this call spent bringing its context back, measured inside
  // the call: setup before the pass (planning, room made by evictions and their writes, reads
  // done up front), waits for the I/O thread inside the pass (I/O that overlapped compute is not
  // counted) and the recomputed rows' share of the pass's compute.
  double restore_seconds = 0;
  // restore_seconds split by what the call waited for: reading stored chunks (a bulk read before
  // the pass, waits for the I/O thread inside it), writing dirty victims to make room before the
  // pass, the recomputed rows' compute, and the rest (planning, allocation, eviction's
  // bookkeeping).
  double read_seconds = 0, write_seconds = 0, recompute_seconds = 0, other_seconds = 0;
};

struct CallResult {
  GenerateResult generation;
  CallStats stats;
};

// How much one step of a call session does at most (call_session.h).
struct StepLimits {
  size_t max_prompt_rows = SIZE_MAX;  // prompt tokens; a step with prompt left generates nothing
  size_t max_new_tokens = SIZE_MAX;   // generated tokens
};

// Thread safety: all methods are thread-safe. One session step runs at a time (a second gets
// Unavailable); the background writer runs beside it.
class KvManager : private KvChunkAllocator {
 public:
  // `engine` and `store` must outlive the manager; `store` may be null only with a policy that
  // keeps nothing on flash (lmk). Loads every context the store holds (text and chunk table;
  // no KV is read until a call needs it).
  static StatusOr<std::unique_ptr<KvManager>> Open(Engine* engine, ChunkStore* store,
                                                   const KvManagerOptions& options);
  ~KvManager() override;

  // `origin` is kept with the context ("native" or "http": the HTTP API may retire its own).
  StatusOr<uint64_t> CreateContext(const std::string& app, std::span<const int32_t> prefix,
                                   const std::string& origin = "native");
  // A new context whose text is `tokens` and whose KV is a copy of `kv` (f16 chunks with their
  // attention statistics, as a resident run computes them), left as a call that computed it
  // would leave it: compressed, queued for writing, other contexts evicted to make room. A trace
  // replay computes each history once and starts every system from it. InvalidArgument when
  // `kv` is not this model's layout or not the text's; Unavailable while a call steps; the
  // budget's and the store's errors (the context is then deleted).
  StatusOr<uint64_t> AdoptContext(const std::string& app, std::span<const int32_t> tokens,
                                  const KvCache& kv);
  // NotFound for an unknown id or one owned by another app (the same message either way);
  // Unavailable while a call holds it.
  Status DeleteContext(const std::string& app, uint64_t id);
  StatusOr<ContextInfo> GetContextInfo(const std::string& app, uint64_t id);
  std::vector<ContextInfo> ListContexts(const std::string& app);
  // Every app's contexts (service metrics; never shown to an app).
  std::vector<ContextInfo> ListAllContexts();
  StatusOr<std::vector<int32_t>> ContextTokens(const std::string& app, uint64_t id);

  // Begins a call that appends `prompt` to the context and generates, in steps of at most
  // `limits` (call_session.h). The session holds the context until it ends. Corruption for a
  // damaged context; Unavailable while another session holds it or another step runs.
  StatusOr<std::unique_ptr<CallSession>> BeginCall(const std::string& app, uint64_t id,
                                                   std::vector<int32_t> prompt,
                                                   const GenerateOptions& options,
                                                   const StepLimits& limits = StepLimits());
  // A whole call as one session of one step (tests, replay, the command line). `on_text` as
  // for Generate.
  StatusOr<CallResult> Call(const std::string& app, uint64_t id, std::span<const int32_t> prompt,
                            const GenerateOptions& options,
                            const std::function<bool(std::string_view)>& on_text);

  // Makes room in a context that reached the model window, as StreamingLLM does: keeps its first
  // chunk (the attention sink) and its last `recent` tokens, and drops the rest of the text. KV
  // past the first chunk is dropped too (its positions change), so the next call recomputes the
  // kept window. Waits for pending chunk writes first, so no stale chunk reaches the store.
  Status SlideContext(const std::string& app, uint64_t id, size_t recent);

  // Waits until every queued chunk write has finished (shutdown, tests). Returns the last
  // failure to write a chunk since the previous Flush (a full disk, say): those chunks are
  // intact in memory but not on flash, and would be recomputed from the (durable) text.
  Status Flush();
  // Drops every resident chunk that is safely on flash (tests of restore; memory pressure).
  Status EvictAll();

  const MemoryBudget& budget() const { return budget_; }
  const CostModel& cost() const { return cost_; }
  const Policy& policy() const { return options_.policy; }
  // Restore plans made since Open (one per call).
  uint64_t restore_plans() const { return restore_plans_; }
  // Pins how the next calls read stored chunks under a pipelined policy (ReadPath; the cost
  // model's choice until then): a benchmark measures each path on the same manager.
  void SetReadPath(ReadPath path) { read_path_ = path; }
  // Drops the given resident chunks of a context (written to flash first, as eviction does).
  Status TEST_EvictChunks(uint64_t id, const std::vector<size_t>& chunks);
  // Checks that resident bytes add up to the budget's use and stay within it. For tests.
  Status CheckInvariants();

 private:
  friend class CallSession;
  struct Passkey {};  // only Open constructs managers

 public:
  KvManager(Passkey, Engine* engine, ChunkStore* store, const KvManagerOptions& options);

 private:
  // KvChunkAllocator: reserve from the budget, evicting other contexts' chunks as needed;
  // inside a forward pass only chunks that need no write (clean ones) are evicted.
  Status Reserve(size_t bytes) override;
  void Release(size_t bytes) override;

  // Evicts until `bytes` more fit in the budget, writing dirty victims first. Before a pass.
  Status MakeRoom(size_t bytes);
  // Evicts victims worth `bytes`, those flash lacks written as one batch first; false when
  // nothing could be evicted.
  bool EvictBatch(size_t bytes);
  // Evicts the next victims; false when there is none (or, with writes not allowed, when the
  // next one is dirty).
  bool EvictNext(bool allow_writes);
  // Releases mu_ around the write of a dirty victim.
  Status EvictChunk(Context* ctx, size_t index) REQUIRES(mu_);
  bool DropChunk(Context* ctx, size_t index) REQUIRES(mu_);
  // The chunk must be written before it may be dropped (the policy keeps chunks on flash).
  bool NeedsWrite(const ChunkState& s) const;
  WriteJob MakeWriteJob(const Context& ctx, size_t index) REQUIRES(mu_);
  void QueueWrites(Context* ctx) REQUIRES(mu_);
  void Touch(Context* ctx, size_t index) REQUIRES(mu_);
  std::string AdoptionMismatch(std::span<const int32_t> tokens, const KvCache& kv) const;
  // After a pass over a locked context: densities refreshed, changed chunks dirty, compressed.
  void AfterPass(Context* ctx) REQUIRES(mu_);
  // The end of a call whose text is committed: dated, unlocked, its changed chunks queued.
  void ReleaseAfterCall(Context* ctx) REQUIRES(mu_);
  // Compresses the context's chunks (every unlocked context's, in global mode).
  void Compress(Context* ctx) REQUIRES(mu_);
  // Cuts the context back to its first `tokens` tokens (text, KV and chunk states). A chunk left
  // partly filled is dropped from memory, to be read again if its stored copy still matches the
  // text, else recomputed. REQUIRES: the context is locked by the caller's session.
  void TruncateContext(Context* ctx, size_t tokens) REQUIRES(mu_);
  bool ContextLocked(uint64_t id) REQUIRES(mu_);

  Engine* const engine_;
  ChunkStore* const store_;
  const KvManagerOptions options_;
  CostModel cost_;
  MemoryBudget budget_;
  std::atomic<bool> in_pass_{false};   // a forward pass runs: no flash I/O may happen
  std::atomic<bool> stepping_{false};  // a session step runs
  std::atomic<uint64_t> restore_plans_{0};
  std::atomic<ReadPath> read_path_{ReadPath::kPlanned};

  Mutex mu_;
  ContextTable table_ GUARDED_BY(mu_);
  Evictor evictor_ GUARDED_BY(mu_);
  uint64_t next_version_ GUARDED_BY(mu_) = 0;  // chunk versions, never reused across chunks
  std::unique_ptr<ChunkWriter> writer_;        // null without a store
};

}  // namespace llms
