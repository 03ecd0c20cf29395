// CallSession: one call through the memory manager. Begin admits it (locks the context), plans
// its restore and starts it, once. Each Step runs part of the call (up to N prompt rows, then up
// to M generated tokens) and returns, the context still locked and the restore state kept, so a
// scheduler can run other calls in between. End compresses, commits the text once and queues
// the chunk writes. A session dropped without End (a failure) leaves the context as the call
// found it. No flash I/O runs inside a forward pass: room for a pass is made before it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "engine/generate.h"
#include "memory/kv_manager.h"
#include "memory/restorer.h"

namespace llms {

// Thread safety: one thread at a time; one step of any session runs at a time (another gets
// Unavailable).
class CallSession {
 public:
  // Use KvManager::BeginCall. `limits` apply to every step (the first one's size is what the
  // restore is planned for).
  static StatusOr<std::unique_ptr<CallSession>> Begin(KvManager* manager, const std::string& app,
                                                      uint64_t id, std::vector<int32_t> prompt,
                                                      const GenerateOptions& options,
                                                      const StepLimits& limits = StepLimits());
  ~CallSession();  // without End: the context goes back to where the call began

  // Runs the next step. Its stop_reason is "yield" when the call goes on (more prompt or more
  // tokens to generate), else why generation ended ("eos", "stop", "length", "cancelled").
  // Text goes to `on_text` as it becomes final. After an error the call is over and the context
  // is back where it began.
  StatusOr<GenerateResult> Step(const std::function<bool(std::string_view)>& on_text);
  // No step is left (generation ended, or a step failed).
  bool finished() const { return finished_; }
  // Ends the call: compresses, commits the text (once), queues the chunk writes, and frees the
  // context. When the text cannot be committed (a full disk) the context goes back to where the
  // call began and the error says why. Valid after any number of steps (a call cancelled
  // between steps keeps what ran).
  StatusOr<CallResult> End();

  uint64_t context() const { return ctx_->id; }
  size_t generated() const { return state_.generated; }
  // The tokens the context held when the call began.
  size_t start_tokens() const { return call_start_tokens_; }
  const CallStats& stats() const { return stats_; }

  CallSession(KvManager* manager, Context* ctx, std::vector<int32_t> prompt,
              const GenerateOptions& options, const StepLimits& limits);

 private:
  Status Admit();
  void PlanRestore();
  // The first pass of a call: when it started (after the room for it was made), the seconds of
  // writes until then, its compute and its prompt rows; and the seconds spent between the
  // call's prompt pieces (making room, compressing).
  struct FirstPass {
    double start = 0, writes = 0, prefill = 0, between = 0;
    size_t rows = 0;
  };
  // `first`: filled for the call's first pass (null on later steps).
  StatusOr<GenerateResult> RunPieces(std::span<const int32_t> piece, const GenerateOptions& g,
                                     const std::function<bool(std::string_view)>& on_text,
                                     FirstPass* first);
  std::vector<size_t> PromptPieces(size_t prompt_size) const;
  size_t PassBytes(size_t new_rows, size_t recomputed) const;
  void AfterPass();
  void RecordFirstStep(const GenerateResult& r, const FirstPass& first);
  bool RetryAfterFailedReads();
  void Abort();

  KvManager* const m_;
  Context* const ctx_;  // locked by this session until End or Abort
  const std::vector<int32_t> prompt_;
  const GenerateOptions options_;
  const StepLimits limits_;
  const Stopwatch call_;
  GenerationState state_;
  std::unique_ptr<Restorer> restorer_;  // until the first step's pass is done
  size_t call_start_tokens_ = 0;
  size_t begin_kv_ = 0;  // KV length when the restore was planned
  size_t prompt_done_ = 0;
  size_t steps_ = 0;
  bool finished_ = false, ended_ = false;
  GenerateResult total_;
  CallStats stats_;
};

}  // namespace llms
