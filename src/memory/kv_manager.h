// KvManager: many persistent contexts sharing one hard KV memory budget (../shared/spec/LLMS.md
// §2-§5). It owns each context's token text and chunked KV cache, keeps chunks compressed to
// the level their density tolerates, writes changed chunks to the flash store when a call
// returns, evicts by the policy's order under memory pressure, and restores a context for a
// call by reading some chunks while recomputing others, layer by layer, with the prompt.
//
// Goals: the budget is never exceeded; a context is never lost (its text is durable in the store
// and any chunk can be recomputed); restore is lossless with compression off. Non-goals: more
// than one call at a time (the engine is single-stream; the service queues calls).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "base/thread_annotations.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "memory/budget.h"
#include "memory/cost_model.h"
#include "memory/eviction_queues.h"
#include "memory/policy.h"
#include "memory/restore_plan.h"
#include "store/chunk_store.h"

namespace llms {

struct KvManagerOptions {
  size_t budget_bytes = size_t{256} << 20;  // resident KV of all contexts together
  Policy policy = Policy::Llms();
  // Write changed chunks on a background thread (the service); false writes them before
  // Call returns (deterministic tests and trace replay).
  bool background_writer = true;
  // Measure the cost model at Open (a few short passes and reads); false uses `cost`.
  bool measure_cost = true;
  // How reads are measured: false times reads of chunks already stored and writes nothing (a
  // daemon must start on a full disk; with nothing stored, read costs keep `cost`'s values);
  // true writes a scratch context and deletes it (benchmarks and replay on an empty store).
  bool measure_reads_with_scratch = true;
  CostModel cost;
};

// What one call did.
struct CallStats {
  size_t chunks = 0;             // chunks of the context before the call
  size_t chunks_resident = 0;    // already in memory
  size_t chunks_loaded = 0;      // read from flash
  size_t chunks_recomputed = 0;  // rebuilt from text
  size_t bytes_read = 0;
  size_t bytes_written = 0;  // written during the call (evictions without lifecycle)
  size_t prompt_tokens = 0;
  double ready_seconds = 0;        // call start until every old chunk is present
  double first_token_seconds = 0;  // call start until the first token is sampled
  // first_token_seconds minus the cost model's time for the same prompt on a resident
  // context: the switch latency as ../shared/spec/LLMS.md §1 defines it.
  double extra_first_token_seconds = 0;
  // Stored chunks that failed their checksum (or could not be read) and were recomputed
  // instead, and the first such failure's message.
  size_t chunks_damaged = 0;
  std::string damage;
  // The part of first_token_seconds this call spent bringing its context back, measured inside
  // the call (so a busy machine scales it but no other run's timing enters): setup before the
  // pass (planning, evictions to make room, reads done up front), waits for the I/O thread
  // inside the pass (I/O that overlapped compute is not counted), writes of evicted dirty chunks
  // before the pass's first layer, and the recomputed rows' share of the pass's compute.
  double restore_seconds = 0;
};

struct CallResult {
  GenerateResult generation;
  CallStats stats;
};

struct ContextInfo {
  uint64_t id = 0;
  std::string app;
  std::string origin;  // "native" (an app's explicit context) or "http" (placed by the HTTP API)
  size_t tokens = 0;
  size_t chunks = 0, resident_chunks = 0, flash_chunks = 0;
  size_t resident_bytes = 0;
  std::vector<int> chunks_per_level;  // resident and on flash, by KvLevel
  int64_t last_used_unix_ms = 0;      // created, or the end of its last call
  // Why the context cannot be used (its stored row is damaged), or empty. A damaged context is
  // kept apart: listed to its owner, refused for calls, deletable.
  std::string damage;
};

// How one slice of a call relates to the whole call, when a service runs calls in slices.
struct CallSlice {
  // More prompt follows in later slices. The call's text is made durable when its last slice
  // ends (not one that ends with stop_reason "yield" or has more prompt), once per call.
  bool more_prompt = false;
  // The context's token count when the call's first slice began: if the call cannot be made
  // durable, the context goes back to it. kThisSlice: when this slice began.
  static constexpr size_t kThisSlice = SIZE_MAX;
  size_t call_start_tokens = kThisSlice;
};

// Thread safety: all methods are thread-safe, but Call (and the methods that change a context)
// run one at a time per manager; the background writer runs beside them.
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
  // NotFound for an unknown id or one owned by another app (the same message either way).
  Status DeleteContext(const std::string& app, uint64_t id);
  StatusOr<ContextInfo> GetContextInfo(const std::string& app, uint64_t id);
  std::vector<ContextInfo> ListContexts(const std::string& app);
  // Every app's contexts (service metrics; never shown to an app).
  std::vector<ContextInfo> ListAllContexts();
  StatusOr<std::vector<int32_t>> ContextTokens(const std::string& app, uint64_t id);

  // Appends `prompt` to the context, generates, appends the output, and returns both with the
  // call's statistics. `on_text` as for Generate. An empty prompt continues the context (its
  // last token is computed again when nothing is pending). The text is durable in the store
  // when the call's last slice returns OK; when it cannot be made durable (a full disk), the
  // context goes back to where the call began and the error says why. Corruption for a damaged
  // context.
  StatusOr<CallResult> Call(const std::string& app, uint64_t id, std::span<const int32_t> prompt,
                            const GenerateOptions& options,
                            const std::function<bool(std::string_view)>& on_text,
                            const CallSlice& slice = CallSlice());

  // Ends a call that stops between slices (cancelled, say): makes the context's text durable,
  // or, when that fails, returns the context to `call_start_tokens` and says why.
  Status FinishCall(const std::string& app, uint64_t id, size_t call_start_tokens);

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
  // Drops the given resident chunks of a context (written to flash first, as eviction does).
  Status TEST_EvictChunks(uint64_t id, const std::vector<size_t>& chunks);
  // Checks that resident bytes add up to the budget's use and stay within it. For tests.
  Status CheckInvariants();

 private:
  struct Passkey {};  // only Open constructs managers

 public:
  KvManager(Passkey, Engine* engine, ChunkStore* store, const KvManagerOptions& options);

 private:
  struct ChunkState;
  struct Context;
  struct WriteJob;
  struct Restore;

  Status LoadFromStore();
  std::unique_ptr<Context> ContextFromRecord(ContextRecord r);
  Status CheckUsable(const Context& ctx) const;

  // KvChunkAllocator: reserve from the budget, evicting other contexts' chunks as needed.
  Status Reserve(size_t bytes) override;
  void Release(size_t bytes) override;

  StatusOr<Context*> FindLocked(const std::string& app, uint64_t id);
  bool EvictOne();
  Status EvictChunkLocked(Context* ctx, size_t index, std::unique_lock<std::mutex>* lock);
  Status WriteChunkNow(Context* ctx, size_t index, std::unique_lock<std::mutex>* lock);
  WriteJob MakeWriteJob(const Context& ctx, size_t index) const;

  Status PrepareRestore(Context* ctx, size_t new_rows, Restore* restore, CallStats* stats,
                        const Stopwatch& call);
  void ReadWholeChunks(Context* ctx, Restore* restore);
  std::vector<size_t> PromptPieces(const Context& ctx, size_t prompt_size, size_t old_kv);
  StatusOr<GenerateResult> GenerateInPieces(Context* ctx, std::span<const int32_t> prompt,
                                            std::span<const size_t> pieces,
                                            const GenerateOptions& options,
                                            const std::function<bool(std::string_view)>& on_text,
                                            double* first_piece_seconds);
  // Cuts the context back to its first `tokens` tokens (text, KV and chunk states). A chunk left
  // partly filled is dropped from memory: its flash copy, if it still matches the text by its
  // tokens hash, is read again, else it is recomputed. REQUIRES: no call is running on it.
  void TruncateContext(Context* ctx, size_t tokens);
  // Drops KV from the chunk holding the context's last token on, so an empty prompt has a token
  // to compute (the logits of the next one).
  void MakeLastTokenPending(Context* ctx);
  // After a slice: updates chunk states and compresses.
  void AfterCall(Context* ctx);
  // Stores the text and the KV length in one transaction, then queues the chunk writes. On
  // failure the context goes back to `rollback_tokens` and the error names the context.
  Status Persist(Context* ctx, size_t rollback_tokens);
  // Digest of the text chunk `index` encodes (its whole token prefix), kept with its stored copy.
  uint64_t ChunkTokensHash(const Context& ctx, size_t index, size_t valid_tokens) const;
  bool FlashCopyMatches(const Context& ctx, size_t index, size_t valid_tokens) const;
  // Plans levels and converts chunks (this context's, or every context's in global mode).
  void Compress(Context* ctx);
  void QueueWrites(Context* ctx);
  void WriterLoop();
  Status WriteJobNow(WriteJob job);
  void Touch(Context* ctx, size_t index);
  ContextInfo InfoLocked(const Context& ctx) const;

  Engine* const engine_;
  ChunkStore* const store_;
  const KvManagerOptions options_;
  CostModel cost_;
  MemoryBudget budget_;

  std::mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<Context>> contexts_ GUARDED_BY(mu_);
  EvictionQueues queues_ GUARDED_BY(mu_);
  uint64_t tick_ GUARDED_BY(mu_) = 0;
  uint64_t last_memory_id_ GUARDED_BY(mu_) = 0;  // ids when there is no store
  uint64_t calling_ GUARDED_BY(mu_) = 0;       // the running call's context (its chunks are locked)
  uint64_t next_version_ GUARDED_BY(mu_) = 0;  // chunk versions, never reused across chunks
  size_t call_bytes_written_ GUARDED_BY(mu_) = 0;
  double call_write_seconds_ GUARDED_BY(mu_) = 0;  // time in WriteChunkNow during the call

  // Chunk writes go through one mutex so two versions of a chunk never race to the store.
  std::mutex write_mu_;
  std::deque<WriteJob> write_queue_ GUARDED_BY(mu_);
  std::condition_variable write_cv_;  // with mu_
  size_t writes_in_flight_ GUARDED_BY(mu_) = 0;
  Status writer_status_ GUARDED_BY(mu_);  // the last background write failure
  bool stop_writer_ GUARDED_BY(mu_) = false;
  std::thread writer_;
};

}  // namespace llms
