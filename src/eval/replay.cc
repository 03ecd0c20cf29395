#include "eval/replay.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "base/clock.h"
#include "engine/generate.h"
#include "memory/policy.h"
#include "store/chunk_store.h"

namespace llms {
namespace {

// Greedy and never stopping early: every system generates the same number of tokens, so the
// contexts grow alike and the same trace means the same work.
GenerateOptions CallOptions(const TraceCall& call) {
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.max_tokens = call.max_tokens;
  g.stop_at_eos = false;
  return g;
}

// Calls through one system: the memory manager under a policy, or plain resident caches.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual StatusOr<uint64_t> Create() = 0;
  virtual StatusOr<CallResult> Call(uint64_t id, const TraceCall& call) = 0;
  // A context whose text and KV are a history's.
  virtual StatusOr<uint64_t> Adopt(std::span<const int32_t> tokens, const KvCache& kv) = 0;
};

class ManagerRunner : public Runner {
 public:
  explicit ManagerRunner(std::unique_ptr<KvManager> m) : m_(std::move(m)) {}
  StatusOr<uint64_t> Create() override { return m_->CreateContext("replay", {}); }
  StatusOr<CallResult> Call(uint64_t id, const TraceCall& call) override {
    return m_->Call("replay", id, call.prompt, CallOptions(call), nullptr);
  }
  StatusOr<uint64_t> Adopt(std::span<const int32_t> tokens, const KvCache& kv) override {
    return m_->AdoptContext("replay", tokens, kv);
  }

 private:
  std::unique_ptr<KvManager> m_;
};

class ResidentRunner : public Runner {
 public:
  explicit ResidentRunner(Engine* engine) : engine_(engine) {}
  StatusOr<uint64_t> Create() override {
    contexts_.push_back({engine_->NewCache(nullptr), {}});
    return contexts_.size() - 1;
  }
  StatusOr<CallResult> Call(uint64_t id, const TraceCall& call) override {
    Context& c = contexts_[id];
    CallResult r;
    LLMS_ASSIGN_OR_RETURN(r.generation, Generate(engine_, c.cache.get(), &c.tokens, call.prompt,
                                                 CallOptions(call), nullptr));
    r.stats.prompt_tokens = r.generation.prompt_tokens;
    r.stats.first_token_seconds = r.generation.prefill_seconds;
    return r;
  }
  StatusOr<uint64_t> Adopt(std::span<const int32_t> tokens, const KvCache& kv) override {
    Context c{engine_->NewCache(nullptr), {tokens.begin(), tokens.end()}};
    for (size_t i = 0; i < kv.num_chunks(); ++i) {
      if (kv.chunk(i) == nullptr) continue;
      LLMS_ASSIGN_OR_RETURN(auto chunk, kv.chunk(i)->Clone(nullptr));
      c.cache->PutChunk(i, std::move(chunk));
    }
    c.cache->set_num_tokens(kv.num_tokens());
    contexts_.push_back(std::move(c));
    return contexts_.size() - 1;
  }
  // The history's KV, moved out (BuildHistories).
  std::unique_ptr<KvCache> TakeCache(uint64_t id) { return std::move(contexts_[id].cache); }
  const std::vector<int32_t>& tokens(uint64_t id) const { return contexts_[id].tokens; }

 private:
  struct Context {
    std::unique_ptr<KvCache> cache;
    std::vector<int32_t> tokens;
  };
  Engine* engine_;
  std::vector<Context> contexts_;
};

Status CheckTrace(const Engine& engine, const Trace& trace) {
  const size_t vocab = engine.config().vocab_size;
  for (size_t i = 0; i < trace.calls.size(); ++i) {
    const TraceCall& c = trace.calls[i];
    if (c.context >= trace.contexts) {
      return Status::InvalidArgument("trace call " + std::to_string(i) + " names context " +
                                     std::to_string(c.context) + " of " +
                                     std::to_string(trace.contexts));
    }
    for (int32_t id : c.prompt) {
      if (id < 0 || static_cast<size_t>(id) >= vocab) {
        return Status::InvalidArgument("trace call " + std::to_string(i) + " has token id " +
                                       std::to_string(id) + " outside the model's vocabulary of " +
                                       std::to_string(vocab) +
                                       "; generate the trace for this model");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

RunSummary SummarizeCalls(const std::string& system, const std::vector<CallRecord>& calls) {
  RunSummary s;
  s.system = system;
  std::vector<double> switches, ready, paired;
  double decode = 0, prefill = 0;
  size_t prefill_tokens = 0;
  for (const CallRecord& c : calls) {
    s.wall_seconds += c.wall_seconds;
    s.queued_seconds += c.start_seconds - c.arrival_seconds;
    if (c.warmup) continue;
    ++s.calls;
    if (c.switched) {
      ++s.switched_calls;
      switches.push_back(c.switch_seconds);
      if (c.paired_seconds >= 0) paired.push_back(c.paired_seconds);
      ready.push_back(c.stats.ready_seconds);
      s.read_seconds += c.stats.read_seconds;
      s.write_seconds += c.stats.write_seconds;
      s.recompute_seconds += c.stats.recompute_seconds;
      s.other_seconds += c.stats.other_seconds;
    }
    s.bytes_read += c.stats.bytes_read;
    s.bytes_written += c.stats.bytes_written;
    s.chunks_missing += c.stats.chunks_loaded + c.stats.chunks_recomputed;
    s.chunks_recomputed += c.stats.chunks_recomputed;
    // The first generated token comes from the prefill; the rest are decode steps.
    s.decode_tokens += c.generated > 0 ? c.generated - 1 : 0;
    decode += c.decode_seconds;
    prefill += c.prefill_seconds;
    prefill_tokens += c.stats.prompt_tokens;
  }
  if (s.switched_calls > 0) {
    const double n = static_cast<double>(s.switched_calls);
    s.read_seconds /= n, s.write_seconds /= n, s.recompute_seconds /= n, s.other_seconds /= n;
  }
  s.switch_latency = Summarize(switches);
  s.ready = Summarize(ready);
  if (!paired.empty()) s.paired_mean = Summarize(paired).mean;
  if (s.chunks_missing > 0) {
    s.recompute_share =
        static_cast<double>(s.chunks_recomputed) / static_cast<double>(s.chunks_missing);
  }
  if (s.decode_tokens > 0) s.decode_seconds_per_token = decode / s.decode_tokens;
  if (prefill_tokens > 0) s.prefill_seconds_per_token = prefill / prefill_tokens;
  return s;
}

Percentiles Summarize(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  p.n = v.size();
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  const auto rank = [&](double q) {
    const size_t r = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(r, 1, v.size()) - 1];
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.max = v.back();
  return p;
}

Status ApplyResidentReference(const ReplayResult& reference, ReplayResult* result) {
  if (reference.calls.size() < result->calls.size()) {
    return Status::InvalidArgument("resident reference has " +
                                   std::to_string(reference.calls.size()) + " calls, the run " +
                                   std::to_string(result->calls.size()));
  }
  for (size_t i = 0; i < result->calls.size(); ++i) {
    CallRecord& c = result->calls[i];
    const CallRecord& r = reference.calls[i];
    if (r.context != c.context || r.stats.prompt_tokens != c.stats.prompt_tokens) {
      return Status::InvalidArgument("resident reference differs from the run at call " +
                                     std::to_string(i) + ": not the same trace");
    }
    c.paired_seconds = std::max(0.0, c.stats.first_token_seconds - r.stats.first_token_seconds);
  }
  result->summary = SummarizeCalls(result->summary.system, result->calls);
  return Status::Ok();
}

size_t TraceKvBytesF16(const Engine& engine, const Trace& trace) {
  const ModelConfig& c = engine.config();
  size_t tokens = 0;
  for (const TraceCall& call : trace.calls) tokens += call.prompt.size() + call.max_tokens;
  return tokens * c.n_layers * 2 * c.kv_width() * 2;  // K and V, 2 bytes a value
}

size_t HistoryKvBytesF16(const Engine& engine, const Trace& trace) {
  const ModelConfig& c = engine.config();
  size_t tokens = 0;
  for (const TraceCall& call : trace.calls) {
    if (call.warmup) tokens += call.prompt.size() + call.max_tokens;
  }
  return tokens * c.n_layers * 2 * c.kv_width() * 2;  // K and V, 2 bytes a value
}

StatusOr<ReplayHistories> BuildHistories(Engine* engine, const Trace& trace) {
  LLMS_RETURN_IF_ERROR(CheckTrace(*engine, trace));
  for (const TraceCall& call : trace.calls) {
    if (call.warmup && call.max_tokens > 0) {
      return Status::InvalidArgument(
          "replay: histories need warm-up calls that generate nothing (the text would depend on "
          "the run)");
    }
  }
  const Stopwatch timer;
  ResidentRunner runner(engine);
  std::vector<uint64_t> ids;
  for (size_t c = 0; c < trace.contexts; ++c) {
    LLMS_ASSIGN_OR_RETURN(uint64_t id, runner.Create());
    ids.push_back(id);
  }
  for (const TraceCall& call : trace.calls) {
    if (!call.warmup) continue;
    LLMS_RETURN_IF_ERROR(runner.Call(ids[call.context], call).status());
  }
  ReplayHistories h;
  for (uint64_t id : ids) {
    h.tokens.push_back(runner.tokens(id));
    h.kv.push_back(runner.TakeCache(id));
  }
  h.seconds = timer.Seconds();
  return h;
}

namespace {

// The histories (their first trace.contexts) must be what the trace's warm-up calls make.
Status CheckHistories(const Trace& trace, const ReplayHistories& h) {
  std::vector<std::vector<int32_t>> expected(trace.contexts);
  for (const TraceCall& call : trace.calls) {
    if (call.warmup) {
      if (call.max_tokens > 0) {
        return Status::InvalidArgument(
            "replay: adopted histories need warm-up calls that "
            "generate nothing (the text would depend on the run)");
      }
      expected[call.context].insert(expected[call.context].end(), call.prompt.begin(),
                                    call.prompt.end());
    }
  }
  // The histories of a trace with more contexts serve when its first ones are this trace's.
  if (h.tokens.size() < trace.contexts || h.kv.size() != h.tokens.size() ||
      !std::equal(expected.begin(), expected.end(), h.tokens.begin())) {
    return Status::InvalidArgument("replay: the histories are not this trace's warm-up calls");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<ReplayResult> Replay(Engine* engine, const Trace& trace, const ReplayOptions& o) {
  LLMS_RETURN_IF_ERROR(CheckTrace(*engine, trace));
  std::unique_ptr<ChunkStore> store;
  std::unique_ptr<Runner> runner;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (o.system == kNoManager) {
    runner = std::make_unique<ResidentRunner>(engine);
  } else {
    const std::optional<Policy> policy = Policy::ByName(o.system);
    if (!policy) {
      return Status::InvalidArgument("replay: unknown system '" + o.system +
                                     "' (see `llms report --help` for the names)");
    }
    if (o.store_dir.empty()) return Status::InvalidArgument("replay: no store directory");
    fs::remove_all(o.store_dir, ec);
    fs::create_directories(o.store_dir, ec);
    if (ec) return Status::IOError("replay: cannot create " + o.store_dir + ": " + ec.message());
    LLMS_ASSIGN_OR_RETURN(
        store, ChunkStore::Open(o.env != nullptr ? o.env : Env::Default(), o.store_dir, {}));
    KvManagerOptions mo;
    mo.policy = *policy;
    mo.budget_bytes = o.budget_bytes;
    // Writes finish inside Call, so every byte a call causes is charged to it and the run is
    // repeatable; ahead-of-time writes still come after the first token, as in the service.
    mo.background_writer = false;
    mo.measure_cost = o.cost == nullptr;
    if (o.cost != nullptr) mo.cost = *o.cost;
    LLMS_ASSIGN_OR_RETURN(auto manager, KvManager::Open(engine, store.get(), mo));
    runner = std::make_unique<ManagerRunner>(std::move(manager));
  }

  std::vector<uint64_t> ids;
  if (o.histories != nullptr) {
    LLMS_RETURN_IF_ERROR(CheckHistories(trace, *o.histories));
    for (size_t c = 0; c < trace.contexts; ++c) {
      LLMS_ASSIGN_OR_RETURN(uint64_t id,
                            runner->Adopt(o.histories->tokens[c], *o.histories->kv[c]));
      ids.push_back(id);
    }
  } else {
    for (size_t c = 0; c < trace.contexts; ++c) {
      LLMS_ASSIGN_OR_RETURN(uint64_t id, runner->Create());
      ids.push_back(id);
    }
  }
  std::vector<size_t> lengths(trace.contexts, 0);
  ReplayResult result;
  double clock = 0;  // virtual seconds
  for (size_t i = 0; i < trace.calls.size(); ++i) {
    const TraceCall& call = trace.calls[i];
    CallRecord r;
    r.index = i;
    r.context = call.context;
    r.warmup = call.warmup;
    r.switched = i > 0 && trace.calls[i - 1].context != call.context;
    r.arrival_seconds = call.arrival_seconds;
    r.start_seconds = std::max(clock, call.arrival_seconds);
    r.context_tokens = lengths[call.context];
    if (call.warmup && o.histories != nullptr) {  // adopted above
      r.adopted = true;
      lengths[call.context] += call.prompt.size();
      result.calls.push_back(r);
      if (o.progress) o.progress(i + 1, trace.calls.size());
      continue;
    }
    const Stopwatch wall;
    StatusOr<CallResult> out = runner->Call(ids[call.context], call);
    if (!out.ok()) {
      return out.status().WithContext(o.system + ": call " + std::to_string(i) + " (context " +
                                      std::to_string(call.context) + ")");
    }
    r.wall_seconds = wall.Seconds();
    clock = r.start_seconds + r.wall_seconds;
    r.stats = out->stats;
    r.generated = out->generation.tokens.size();
    r.prefill_seconds = out->generation.prefill_seconds;
    r.decode_seconds = out->generation.decode_seconds;
    r.switch_seconds = r.stats.restore_seconds;
    lengths[call.context] += call.prompt.size() + r.generated;
    result.calls.push_back(r);
    if (o.progress) o.progress(i + 1, trace.calls.size());
  }
  runner.reset();  // the manager before the store it writes to
  store.reset();
  if (!o.store_dir.empty()) fs::remove_all(o.store_dir, ec);
  result.summary = SummarizeCalls(o.system, result.calls);
  return result;
}

}  // namespace llms
