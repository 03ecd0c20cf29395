// KvManager: contexts, calls and compression. Eviction, writing and restore are in
// kv_manager_io.cc.
#include "memory/kv_manager.h"

#include <algorithm>
#include <string>

#include "memory/kv_manager_internal.h"
#include "memory/planner.h"

namespace llms {
namespace {

bool Coarser(KvLevel a, KvLevel b) { return KvLevelBits(a) < KvLevelBits(b); }

size_t MissingChunks(const KvCache& cache) {
  size_t missing = 0;
  for (size_t i = 0; i < cache.num_chunks(); ++i) missing += cache.chunk(i) == nullptr ? 1 : 0;
  return missing;
}

}  // namespace

KvManager::KvManager(Passkey, Engine* engine, ChunkStore* store, const KvManagerOptions& options)
    : engine_(engine),
      store_(store),
      options_(options),
      cost_(options.cost),
      budget_(options.budget_bytes),
      queues_(options.policy.order) {}

StatusOr<std::unique_ptr<KvManager>> KvManager::Open(Engine* engine, ChunkStore* store,
                                                     const KvManagerOptions& options) {
  if (store == nullptr && options.policy.keep_on_flash) {
    return Status::InvalidArgument("policy '" + options.policy.name + "' needs a flash store");
  }
  auto manager = std::make_unique<KvManager>(Passkey{}, engine, store, options);
  if (options.measure_cost) {
    LLMS_ASSIGN_OR_RETURN(
        manager->cost_,
        CostModel::Measure(engine, store, options.measure_reads_with_scratch, options.cost));
  }
  if (store != nullptr) LLMS_RETURN_IF_ERROR(manager->LoadFromStore());
  if (options.background_writer && store != nullptr) {
    manager->writer_ = std::thread([m = manager.get()] { m->WriterLoop(); });
  }
  return manager;
}

KvManager::~KvManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_writer_ = true;
  }
  write_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  // Chunks release their bytes into budget_ as they go; destroy them while it exists.
  contexts_.clear();
}

StatusOr<KvManager::Context*> KvManager::FindLocked(const std::string& app, uint64_t id) {
  auto it = contexts_.find(id);
  if (it == contexts_.end() || it->second->app != app) {
    return Status::NotFound("context " + std::to_string(id) + " not found");
  }
  return it->second.get();
}

StatusOr<uint64_t> KvManager::CreateContext(const std::string& app, std::span<const int32_t> prefix,
                                            const std::string& origin) {
  for (int32_t t : prefix) {
    if (t < 0 || static_cast<size_t>(t) >= engine_->config().vocab_size) {
      return Status::InvalidArgument("token " + std::to_string(t) + " is outside the vocabulary");
    }
  }
  uint64_t id = 0;
  if (store_ != nullptr) {
    LLMS_ASSIGN_OR_RETURN(id, store_->CreateContext(app, prefix, origin));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (store_ == nullptr) id = ++last_memory_id_;
  auto ctx = std::make_unique<Context>();
  ctx->id = id;
  ctx->app = app;
  ctx->origin = origin;
  ctx->last_used_unix_ms = UnixMillisNow();
  ctx->tokens.assign(prefix.begin(), prefix.end());
  ctx->cache = engine_->NewCache(this);
  contexts_.emplace(id, std::move(ctx));
  return id;
}

Status KvManager::DeleteContext(const std::string& app, uint64_t id) {
  std::unique_ptr<Context> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    LLMS_ASSIGN_OR_RETURN(Context * ctx, FindLocked(app, id));
    if (calling_ == id) return Status::Unavailable("context " + std::to_string(id) + " is busy");
    for (size_t i = 0; i < ctx->chunks.size(); ++i) {
      queues_.Remove({id, static_cast<uint32_t>(i)});
    }
    doomed = std::move(contexts_[id]);
    contexts_.erase(id);
  }
  doomed.reset();  // frees its chunks (and their budget)
  if (store_ != nullptr) {
    Status s = store_->DeleteContext(id);
    if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  }
  return Status::Ok();
}

Status KvManager::SlideContext(const std::string& app, uint64_t id, size_t recent) {
  LLMS_RETURN_IF_ERROR(Flush());
  std::vector<int32_t> tokens;
  size_t kv_tokens = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    LLMS_ASSIGN_OR_RETURN(Context * ctx, FindLocked(app, id));
    LLMS_RETURN_IF_ERROR(CheckUsable(*ctx));
    if (calling_ == id) return Status::Unavailable("context " + std::to_string(id) + " is busy");
    const size_t sink = engine_->kv_layout().chunk_tokens;
    if (ctx->tokens.size() <= sink + recent) return Status::Ok();
    std::vector<int32_t> kept(ctx->tokens.begin(), ctx->tokens.begin() + sink);
    kept.insert(kept.end(), ctx->tokens.end() - static_cast<std::ptrdiff_t>(recent),
                ctx->tokens.end());
    for (size_t i = 1; i < ctx->chunks.size(); ++i) queues_.Remove({id, static_cast<uint32_t>(i)});
    ctx->cache->Truncate(std::min(sink, ctx->cache->num_tokens()));  // frees the dropped chunks
    ctx->chunks.resize(std::min<size_t>(ctx->chunks.size(), 1));
    ctx->tokens = std::move(kept);
    tokens = ctx->tokens;
    kv_tokens = ctx->cache->num_tokens();
  }
  if (store_ == nullptr) return Status::Ok();
  return store_->UpdateContext(id, tokens, kv_tokens, 1);
}

ContextInfo KvManager::InfoLocked(const Context& ctx) const {
  if (ctx.id == calling_) return ctx.busy_info;
  ContextInfo info;
  info.id = ctx.id;
  info.app = ctx.app;
  info.origin = ctx.origin;
  info.last_used_unix_ms = ctx.last_used_unix_ms;
  info.damage = ctx.damage;
  info.tokens = ctx.tokens.size();
  info.chunks = ctx.chunks.size();
  info.chunks_per_level.assign(kNumKvLevels, 0);
  for (size_t i = 0; i < ctx.chunks.size(); ++i) {
    const KvChunk* chunk = ctx.cache->chunk(i);
    info.resident_chunks += chunk != nullptr;
    // A copy counts once it is current: a resident chunk changed since is not on flash yet.
    info.flash_chunks += ctx.chunks[i].on_flash && !(chunk != nullptr && ctx.chunks[i].dirty);
    info.resident_bytes += chunk != nullptr ? chunk->bytes() : 0;
    if (chunk != nullptr || ctx.chunks[i].on_flash) {
      ++info.chunks_per_level[static_cast<int>(ctx.chunks[i].level)];
    }
  }
  return info;
}

StatusOr<ContextInfo> KvManager::GetContextInfo(const std::string& app, uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  LLMS_ASSIGN_OR_RETURN(Context * ctx, FindLocked(app, id));
  return InfoLocked(*ctx);
}

std::vector<ContextInfo> KvManager::ListContexts(const std::string& app) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ContextInfo> out;
  for (const auto& [id, ctx] : contexts_) {
    if (ctx->app == app) out.push_back(InfoLocked(*ctx));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::vector<ContextInfo> KvManager::ListAllContexts() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ContextInfo> out;
  for (const auto& [id, ctx] : contexts_) out.push_back(InfoLocked(*ctx));
  return out;
}

StatusOr<std::vector<int32_t>> KvManager::ContextTokens(const std::string& app, uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  LLMS_ASSIGN_OR_RETURN(Context * ctx, FindLocked(app, id));
  LLMS_RETURN_IF_ERROR(CheckUsable(*ctx));
  return ctx->id == calling_ ? ctx->busy_tokens : ctx->tokens;
}

StatusOr<CallResult> KvManager::Call(const std::string& app, uint64_t id,
                                     std::span<const int32_t> prompt,
                                     const GenerateOptions& options,
                                     const std::function<bool(std::string_view)>& on_text,
                                     const CallSlice& slice) {
  const Stopwatch start;
  Context* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    LLMS_ASSIGN_OR_RETURN(ctx, FindLocked(app, id));
    LLMS_RETURN_IF_ERROR(CheckUsable(*ctx));
    if (calling_ != 0) return Status::Unavailable("another call is running");
    ctx->busy_info = InfoLocked(*ctx);
    ctx->busy_tokens = ctx->tokens;
    calling_ = id;
    call_bytes_written_ = 0;
    call_write_seconds_ = 0;
  }
  const size_t call_start = slice.call_start_tokens == CallSlice::kThisSlice
                                ? ctx->tokens.size()
                                : slice.call_start_tokens;
  if (prompt.empty()) MakeLastTokenPending(ctx);
  CallResult result;
  CallStats& stats = result.stats;
  size_t damaged = 0;
  std::string damage;
  const size_t old_kv = ctx->cache->num_tokens();
  const size_t new_rows = ctx->tokens.size() + prompt.size() - old_kv;
  const std::vector<size_t> pieces = PromptPieces(*ctx, prompt.size(), old_kv);
  // The restore shares the first piece's pass.
  const size_t first_rows = new_rows - (prompt.size() - pieces.front());
  Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    Restore restore;
    stats = CallStats{};
    s = PrepareRestore(ctx, first_rows, &restore, &stats, start);
    GenerateOptions g = options;
    g.prefill.recompute_chunks = restore.recompute;
    double io_wait = 0, writes_before = 0, prefill_writes = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writes_before = call_write_seconds_;
    }
    // The pass allocates its new chunks (evicting, and writing dirty victims) before layer 0.
    g.prefill.before_layer = [this, &prefill_writes, writes_before](size_t layer) -> Status {
      if (layer == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        prefill_writes = call_write_seconds_ - writes_before;
      }
      return Status::Ok();
    };
    if (!restore.load.empty()) {
      g.prefill.before_layer = [this, &restore, ctx, &io_wait, &prefill_writes,
                                writes_before](size_t layer) -> Status {
        if (layer == 0) {
          std::lock_guard<std::mutex> lock(mu_);
          prefill_writes = call_write_seconds_ - writes_before;
        }
        const Stopwatch wait;
        std::unique_lock<std::mutex> lock(restore.mu);
        restore.cv.wait(lock, [&] { return restore.layers_done > layer; });
        io_wait += wait.Seconds();
        if (!restore.status.ok()) return restore.status;
        for (size_t c : restore.load) ctx->cache->chunk(c)->set_layer_present(layer, true);
        return Status::Ok();
      };
    }
    const double setup = start.Seconds();
    const double setup_io = restore.io_start_seconds;
    double first_prefill = 0;
    StatusOr<GenerateResult> gen =
        s.ok() ? GenerateInPieces(ctx, prompt, pieces, g, on_text, &first_prefill) : s;
    if (restore.io.joinable()) restore.io.join();
    if (gen.ok()) {
      result.generation = std::move(gen).value();
      stats.first_token_seconds = setup + result.generation.prefill_seconds;
      // Ready: every old chunk present. Loaded ones arrive with the I/O thread; recomputed
      // ones with the end of the first pass.
      stats.ready_seconds = restore.load.empty() ? 0.0 : setup_io + restore.io_seconds;
      if (!restore.recompute.empty()) {
        stats.ready_seconds = std::max(stats.ready_seconds, stats.first_token_seconds);
      }
      stats.prompt_tokens = result.generation.prompt_tokens;
      size_t recomputed_rows = 0;
      for (size_t c : restore.recompute) {
        const size_t first = c * ctx->cache->chunk_tokens();
        recomputed_rows += std::min(ctx->cache->chunk_tokens(), old_kv - std::min(old_kv, first));
      }
      const double compute = std::max(0.0, first_prefill - io_wait - prefill_writes);
      stats.restore_seconds =
          setup + io_wait + prefill_writes +
          compute * static_cast<double>(recomputed_rows) /
              static_cast<double>(std::max<size_t>(1, recomputed_rows + first_rows));
      s = Status::Ok();
      break;
    }
    s = gen.status();
    // A chunk that failed to read comes back by recompute: forget its flash copy and retry.
    for (size_t c : restore.load) ctx->cache->TakeChunk(c);
    std::lock_guard<std::mutex> lock(mu_);
    if (restore.failed.empty()) break;
    damaged += restore.failed.size();
    if (damage.empty()) damage = restore.status.ToString();
    for (size_t c : restore.failed) {
      ctx->chunks[c].on_flash = false;
      ctx->chunks[c].dirty = true;
      if (store_ != nullptr) (void)store_->DeleteChunk(id, static_cast<uint32_t>(c));
    }
  }
  // An estimate (the cost model's time for the same rows on a resident context), so it is
  // clamped: a pass faster than the model predicts is not a negative switch.
  stats.extra_first_token_seconds = std::max(
      0.0, stats.first_token_seconds -
               cost_.ComputeSeconds(new_rows, static_cast<double>(old_kv) + new_rows / 2.0));
  stats.chunks_damaged = damaged;
  stats.damage = std::move(damage);
  if (s.ok()) {
    AfterCall(ctx);
    const bool last_slice = !slice.more_prompt && result.generation.stop_reason != "yield";
    if (last_slice) s = Persist(ctx, call_start);
  } else {
    // A failed slice leaves nothing of its call behind (earlier slices included).
    TruncateContext(ctx, call_start);
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats.bytes_written = call_bytes_written_;
  calling_ = 0;
  if (!s.ok()) return s;
  return result;
}

// A call's new chunks are f16 until it ends, so a long prompt can need more than the budget
// even when its context, compressed, fits easily. Then the prompt is computed in pieces of a
// few chunks, and between pieces the finished chunks are compressed to their planned levels.
// One piece (the whole prompt) when the call fits at f16 or the policy does not compress.
std::vector<size_t> KvManager::PromptPieces(const Context& ctx, size_t prompt_size, size_t old_kv) {
  const Policy& p = options_.policy;
  const KvLayout& L = engine_->kv_layout();
  const size_t T = L.chunk_tokens,
               f16_chunk = L.LayerBytes(KvLevel::kF16) * ctx.cache->num_layers();
  const size_t total_tokens = ctx.tokens.size() + prompt_size;
  const size_t new_chunks = CeilDiv(total_tokens, T) - ctx.cache->num_chunks();
  const bool compresses =
      p.compression != CompressionMode::kUniform || p.uniform_level != KvLevel::kF16;
  // Worst case: every missing chunk recomputed at f16.
  const size_t need =
      ctx.cache->ResidentBytes() + f16_chunk * new_chunks + f16_chunk * MissingChunks(*ctx.cache);
  if (!compresses || need <= budget_.limit() || prompt_size == 0) return {prompt_size};
  // A piece's f16 chunks take at most a quarter of the budget, and at most half of what the
  // context leaves free (worst case, missing chunks recomputed at f16): the rest is room for the
  // chunks the pieces compress.
  const size_t context_bytes = need - f16_chunk * new_chunks;
  const size_t free_bytes = budget_.limit() > context_bytes ? budget_.limit() - context_bytes : 0;
  const size_t piece_tokens =
      T * std::max<size_t>(1, std::min(budget_.limit() / 4, free_bytes / 2) / f16_chunk);
  const size_t pending = ctx.tokens.size() - old_kv;  // computed with the first piece
  std::vector<size_t> pieces;
  size_t end = (old_kv / T) * T + piece_tokens;  // KV position where the first piece ends
  size_t done = 0;
  while (done < prompt_size) {
    const size_t rows_so_far = done + pending, target = end - old_kv;
    const size_t room = target > rows_so_far ? target - rows_so_far : 0;
    const size_t take = std::min(prompt_size - done, std::max<size_t>(1, room));
    pieces.push_back(take);
    done += take;
    end += piece_tokens;
  }
  return pieces;
}

// Generate over the prompt in `pieces`: the first piece's pass carries options.prefill (the
// restore), the last one generates; between pieces the context's finished new chunks are
// compressed (its older chunks are pinned, so a failure can drop the new ones and leave the
// context as it was). *first_piece_seconds: the first pass's prefill time.
StatusOr<GenerateResult> KvManager::GenerateInPieces(
    Context* ctx, std::span<const int32_t> prompt, std::span<const size_t> pieces,
    const GenerateOptions& options, const std::function<bool(std::string_view)>& on_text,
    double* first_piece_seconds) {
  if (pieces.size() == 1) {
    auto r = Generate(engine_, ctx->cache.get(), &ctx->tokens, prompt, options, on_text);
    if (r.ok()) *first_piece_seconds = r->prefill_seconds;
    return r;
  }
  const size_t tokens_before = ctx->tokens.size(), kv_before = ctx->cache->num_tokens();
  const size_t T = ctx->cache->chunk_tokens();
  GenerateResult total;
  size_t done = 0;
  for (size_t k = 0; k < pieces.size(); ++k) {
    const bool last = k + 1 == pieces.size();
    GenerateOptions g = options;
    if (k > 0) {  // keep only the hook that accounts for evictions before the first layer
      auto hook = options.prefill.before_layer;
      g.prefill = ForwardOptions{};
      if (hook) {
        g.prefill.before_layer = [hook](size_t layer) -> Status {
          return layer == 0 ? hook(0) : Status::Ok();
        };
      }
    }
    if (!last) {
      g.max_tokens = 0;
      g.state = nullptr;
      g.yield_after = 0;
    }
    auto r = Generate(engine_, ctx->cache.get(), &ctx->tokens, prompt.subspan(done, pieces[k]), g,
                      last ? on_text : nullptr);
    if (!r.ok()) {
      if (k > 0) TruncateContext(ctx, tokens_before);
      return r.status();
    }
    if (k == 0) *first_piece_seconds = r->prefill_seconds;
    total.prompt_tokens += r->prompt_tokens;
    total.prefill_seconds += r->prefill_seconds;
    total.prompt_logits.insert(total.prompt_logits.end(), r->prompt_logits.begin(),
                               r->prompt_logits.end());
    done += pieces[k];
    if (last) {
      total.tokens = std::move(r->tokens);
      total.text = std::move(r->text);
      total.stop_reason = std::move(r->stop_reason);
      total.decode_seconds = r->decode_seconds;
      break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    ctx->chunks.resize(ctx->cache->num_chunks());
    for (size_t i = kv_before / T; i < ctx->chunks.size(); ++i) {
      if (const KvChunk* chunk = ctx->cache->chunk(i)) ctx->chunks[i].density = chunk->Density();
    }
    Compress(ctx);
  }
  return total;
}

void KvManager::Compress(Context* ctx) {
  const Policy& p = options_.policy;
  // Chunks that take part in planning: this context's (per-context and uniform modes) or every
  // context's (global mode). The newest, partly filled chunk of each context keeps f16.
  std::vector<std::pair<Context*, size_t>> members;
  std::vector<PlannerChunk> planned;
  auto add = [&](Context* c) {
    for (size_t i = 0; i < c->chunks.size(); ++i) {
      const KvChunk* chunk = c->cache->chunk(i);
      const bool partial =
          chunk != nullptr ? !chunk->full()
                           : (i + 1) * engine_->kv_layout().chunk_tokens > c->cache->num_tokens();
      members.emplace_back(c, i);
      planned.push_back({c->chunks[i].density, c->chunks[i].level, partial});
    }
  };
  if (p.compression == CompressionMode::kToleranceGlobal) {
    for (auto& [id, c] : contexts_) add(c.get());
  } else {
    add(ctx);
  }
  std::vector<KvLevel> levels;
  if (p.compression == CompressionMode::kUniform) {
    for (const PlannerChunk& c : planned) {
      levels.push_back(c.pinned || !Coarser(p.uniform_level, c.current) ? c.current
                                                                        : p.uniform_level);
    }
  } else {
    PlannerOptions po;
    po.target_bits = p.target_bits;
    levels = PlanLevels(planned, po);
  }
  for (size_t k = 0; k < members.size(); ++k) {
    auto [c, i] = members[k];
    ChunkState& s = c->chunks[i];
    KvChunk* chunk = c->cache->chunk(i);
    if (chunk == nullptr) continue;
    // Going down only releases memory, so this cannot fail for lack of budget.
    if (chunk->level() != levels[k] && chunk->ConvertTo(levels[k]).ok()) {
      // A recomputed chunk re-quantized to its stored level matches its flash copy.
      const bool same_as_flash =
          s.on_flash && s.meta.level == static_cast<uint8_t>(levels[k]) && !s.dirty;
      if (!same_as_flash) {
        ++s.version;
        s.dirty = true;
      }
      s.level = levels[k];
      queues_.SetLevel({c->id, static_cast<uint32_t>(i)}, s.level);
    }
  }
}

void KvManager::Touch(Context* ctx, size_t index) {
  if (ctx->cache->chunk(index) == nullptr) return;
  queues_.Touch({ctx->id, static_cast<uint32_t>(index)}, ctx->chunks[index].level, ++tick_);
}

Status KvManager::CheckInvariants() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t resident = 0;
  for (const auto& [id, ctx] : contexts_) resident += ctx->cache->ResidentBytes();
  if (budget_.used() > budget_.limit() || budget_.peak() > budget_.limit()) {
    return Status::Corruption("budget exceeded: used " + std::to_string(budget_.used()) +
                              ", peak " + std::to_string(budget_.peak()) + ", limit " +
                              std::to_string(budget_.limit()));
  }
  if (resident != budget_.used()) {
    return Status::Corruption("resident KV " + std::to_string(resident) + " bytes != budget use " +
                              std::to_string(budget_.used()));
  }
  return Status::Ok();
}

}  // namespace llms
