// KvManager: opening, the contexts' lifecycle and the glue of a call. Making room in the budget
// (eviction and the writes it needs) is kv_manager_budget.cc; a call's steps are
// call_session.cc.
#include "memory/kv_manager.h"

#include <algorithm>

#include "memory/call_session.h"
#include "memory/compression.h"

namespace llms {

KvManager::KvManager(Passkey, Engine* engine, ChunkStore* store, const KvManagerOptions& options)
    : engine_(engine),
      store_(store),
      options_(options),
      cost_(options.cost),
      budget_(options.budget_bytes),
      table_(store, engine->kv_layout().chunk_tokens, engine->config().vocab_size,
             [this] { return engine_->NewCache(this); }),
      evictor_(options.policy.order, options.policy.unit) {}

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
  KvManager* m = manager.get();
  {
    MutexLock lock(&m->mu_);
    LLMS_RETURN_IF_ERROR(m->table_.Load());
  }
  if (store == nullptr) return manager;
  ChunkWriterHooks hooks;
  hooks.still_wanted = [m](const WriteJob& job) {
    MutexLock lock(&m->mu_);
    const Context* ctx = m->table_.FindById(job.context);
    if (ctx == nullptr || job.index >= ctx->chunks.size()) return false;
    const ChunkState& s = ctx->chunks[job.index];
    return s.version == job.version && s.dirty;  // else stale, or written already
  };
  hooks.written = [m](const WriteJob& job, ChunkMeta stored) {
    MutexLock lock(&m->mu_);
    Context* ctx = m->table_.FindById(job.context);
    if (ctx == nullptr || job.index >= ctx->chunks.size()) return;
    ChunkState& s = ctx->chunks[job.index];
    s.meta = std::move(stored);
    s.on_flash = true;
    if (s.version == job.version) s.dirty = false;
  };
  m->writer_ = std::make_unique<ChunkWriter>(store, options.background_writer, std::move(hooks));
  return manager;
}

KvManager::~KvManager() {
  writer_.reset();  // writes what is queued first
  // Chunks release their bytes into budget_ as they go; destroy them while it exists.
  MutexLock lock(&mu_);
  for (Context* ctx : table_.All()) table_.Remove(ctx->id);
}

bool KvManager::ContextLocked(uint64_t id) {
  const Context* ctx = table_.FindById(id);
  return ctx != nullptr && ctx->locked;
}

StatusOr<uint64_t> KvManager::CreateContext(const std::string& app, std::span<const int32_t> prefix,
                                            const std::string& origin) {
  MutexLock lock(&mu_);
  LLMS_ASSIGN_OR_RETURN(Context * ctx,
                        table_.Create(app, prefix, origin, options_.clock->UnixMillis()));
  return ctx->id;
}

// Why `kv` cannot be adopted as the KV of `tokens` on this engine, or "".
std::string KvManager::AdoptionMismatch(std::span<const int32_t> tokens, const KvCache& kv) const {
  const KvLayout &L = engine_->kv_layout(), &K = kv.layout();
  if (K.kv_heads != L.kv_heads || K.head_dim != L.head_dim || K.chunk_tokens != L.chunk_tokens ||
      kv.num_layers() != engine_->config().n_layers) {
    return "KV of " + std::to_string(kv.num_layers()) + " layers, " + std::to_string(K.kv_heads) +
           " heads of " + std::to_string(K.head_dim) + " in chunks of " +
           std::to_string(K.chunk_tokens) + " tokens is not this model's (" +
           std::to_string(engine_->config().n_layers) + " layers, " + std::to_string(L.kv_heads) +
           " heads of " + std::to_string(L.head_dim) + ", chunks of " +
           std::to_string(L.chunk_tokens) + ")";
  }
  if (kv.num_tokens() != tokens.size()) {
    return "KV of " + std::to_string(kv.num_tokens()) + " tokens for a text of " +
           std::to_string(tokens.size());
  }
  for (size_t i = 0; i < kv.num_chunks(); ++i) {
    const KvChunk* c = kv.chunk(i);
    bool whole = c != nullptr && c->level() == KvLevel::kF16;
    for (size_t l = 0; whole && l < c->num_layers(); ++l) whole = c->layer_present(l);
    if (!whole) return "chunk " + std::to_string(i) + " is not resident at f16 in every layer";
  }
  return "";
}

StatusOr<uint64_t> KvManager::AdoptContext(const std::string& app, std::span<const int32_t> tokens,
                                           const KvCache& kv) {
  if (const std::string why = AdoptionMismatch(tokens, kv); !why.empty()) {
    return Status::InvalidArgument("adopt: " + why);
  }
  StepGuard guard(&stepping_);  // no pass runs meanwhile: adoption writes and evicts as it goes
  if (!guard.held()) return Status::Unavailable("another call is running");
  Context* ctx = nullptr;
  {
    MutexLock lock(&mu_);
    LLMS_ASSIGN_OR_RETURN(ctx, table_.Create(app, tokens, "native", options_.clock->UnixMillis()));
    ctx->locked_info = table_.Info(*ctx);
    ctx->locked_tokens = ctx->tokens;
    ctx->locked = true;  // eviction leaves it alone while it fills
  }
  const uint64_t id = ctx->id;
  // In pieces compressed after each, sized as a call's prompt pieces are (call_session.cc): at
  // most a quarter of the budget and half of what this context leaves free, so that a history
  // larger than the budget at f16 can be adopted by a policy that compresses it.
  const size_t T = kv.chunk_tokens(), n = kv.num_chunks();
  Status status = Status::Ok();
  for (size_t begin = 0; begin < n && status.ok();) {
    const size_t limit = budget_.limit(), own = ctx->cache->ResidentBytes();
    const size_t room = std::min(limit / 4, (limit > own ? limit - own : 0) / 2);
    size_t end = begin, bytes = 0;
    while (end < n && (end == begin || bytes + kv.chunk(end)->bytes() <= room)) {
      bytes += kv.chunk(end++)->bytes();
    }
    (void)MakeRoom(bytes);
    for (size_t i = begin; i < end && status.ok(); ++i) {
      StatusOr<std::unique_ptr<KvChunk>> copy = kv.chunk(i)->Clone(this);
      status = copy.status();
      if (!status.ok()) break;
      ctx->cache->PutChunk(i, std::move(copy).value());
      ctx->cache->set_num_tokens(std::min(tokens.size(), (i + 1) * T));
    }
    MutexLock lock(&mu_);
    AfterPass(ctx);
    begin = end;
  }
  if (status.ok() && store_ != nullptr) {
    status = store_->UpdateContext(id, ctx->tokens, ctx->cache->num_tokens());
  }
  {
    MutexLock lock(&mu_);
    if (status.ok()) {
      ReleaseAfterCall(ctx);
      return id;
    }
    ctx->locked = false;
  }
  (void)DeleteContext(app, id);
  return status.WithContext("adopt: context of " + std::to_string(tokens.size()) + " tokens");
}

Status KvManager::DeleteContext(const std::string& app, uint64_t id) {
  std::unique_ptr<Context> doomed;
  {
    MutexLock lock(&mu_);
    LLMS_ASSIGN_OR_RETURN(Context * ctx, table_.Find(app, id));
    if (ctx->locked) return Status::Unavailable("context " + std::to_string(id) + " is busy");
    for (size_t i = 0; i < ctx->chunks.size(); ++i) {
      evictor_.Remove({id, static_cast<uint32_t>(i)});
    }
    doomed = table_.Remove(id);
  }
  doomed.reset();  // frees its chunks (and their budget)
  if (store_ == nullptr) return Status::Ok();
  Status s = store_->DeleteContext(id);
  return s.code() == StatusCode::kNotFound ? Status::Ok() : s;
}

StatusOr<ContextInfo> KvManager::GetContextInfo(const std::string& app, uint64_t id) {
  MutexLock lock(&mu_);
  LLMS_ASSIGN_OR_RETURN(Context * ctx, table_.Find(app, id));
  return table_.Info(*ctx);
}

std::vector<ContextInfo> KvManager::ListContexts(const std::string& app) {
  MutexLock lock(&mu_);
  std::vector<ContextInfo> out;
  for (const Context* ctx : table_.All()) {
    if (ctx->app == app) out.push_back(table_.Info(*ctx));
  }
  return out;
}

std::vector<ContextInfo> KvManager::ListAllContexts() {
  MutexLock lock(&mu_);
  std::vector<ContextInfo> out;
  for (const Context* ctx : table_.All()) out.push_back(table_.Info(*ctx));
  return out;
}

StatusOr<std::vector<int32_t>> KvManager::ContextTokens(const std::string& app, uint64_t id) {
  MutexLock lock(&mu_);
  LLMS_ASSIGN_OR_RETURN(Context * ctx, table_.Find(app, id));
  LLMS_RETURN_IF_ERROR(ContextTable::CheckUsable(*ctx));
  return ctx->locked ? ctx->locked_tokens : ctx->tokens;
}

StatusOr<std::unique_ptr<CallSession>> KvManager::BeginCall(const std::string& app, uint64_t id,
                                                            std::vector<int32_t> prompt,
                                                            const GenerateOptions& options,
                                                            const StepLimits& limits) {
  return CallSession::Begin(this, app, id, std::move(prompt), options, limits);
}

StatusOr<CallResult> KvManager::Call(const std::string& app, uint64_t id,
                                     std::span<const int32_t> prompt,
                                     const GenerateOptions& options,
                                     const std::function<bool(std::string_view)>& on_text) {
  LLMS_ASSIGN_OR_RETURN(std::unique_ptr<CallSession> session,
                        BeginCall(app, id, {prompt.begin(), prompt.end()}, options));
  LLMS_RETURN_IF_ERROR(session->Step(on_text).status());
  return session->End();
}

Status KvManager::SlideContext(const std::string& app, uint64_t id, size_t recent) {
  LLMS_RETURN_IF_ERROR(Flush());
  std::vector<int32_t> tokens;
  size_t kv_tokens = 0;
  {
    MutexLock lock(&mu_);
    LLMS_ASSIGN_OR_RETURN(Context * ctx, table_.Find(app, id));
    LLMS_RETURN_IF_ERROR(ContextTable::CheckUsable(*ctx));
    if (ctx->locked) return Status::Unavailable("context " + std::to_string(id) + " is busy");
    const size_t sink = engine_->kv_layout().chunk_tokens;
    if (ctx->tokens.size() <= sink + recent) return Status::Ok();
    std::vector<int32_t> kept(ctx->tokens.begin(), ctx->tokens.begin() + sink);
    kept.insert(kept.end(), ctx->tokens.end() - static_cast<std::ptrdiff_t>(recent),
                ctx->tokens.end());
    for (size_t i = 1; i < ctx->chunks.size(); ++i) evictor_.Remove({id, static_cast<uint32_t>(i)});
    ctx->cache->Truncate(std::min(sink, ctx->cache->num_tokens()));  // frees the dropped chunks
    ctx->chunks.resize(std::min<size_t>(ctx->chunks.size(), 1));
    ctx->tokens = std::move(kept);
    tokens = ctx->tokens;
    kv_tokens = ctx->cache->num_tokens();
  }
  if (store_ == nullptr) return Status::Ok();
  return store_->UpdateContext(id, tokens, kv_tokens, 1);
}

// After a pass: densities refreshed, changed chunks dirty, then compressed (every unlocked
// context's in global mode).
void KvManager::AfterPass(Context* ctx) {
  const size_t n = ctx->cache->num_chunks(), known = ctx->chunks.size();
  ctx->chunks.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ChunkState& s = ctx->chunks[i];
    KvChunk* chunk = ctx->cache->chunk(i);
    if (chunk == nullptr) continue;
    s.density = chunk->Density();
    // Chunks that received tokens changed; loaded and recomputed ones did not.
    if (i >= known || !table_.FlashCopyMatches(*ctx, i, chunk->valid_tokens())) {
      s.version = ++next_version_;
      s.dirty = true;
    }
  }
  Compress(ctx);
  for (size_t i = 0; i < n; ++i) Touch(ctx, i);
}

void KvManager::ReleaseAfterCall(Context* ctx) {
  ctx->last_used_unix_ms = options_.clock->UnixMillis();
  ctx->locked = false;
  if (store_ == nullptr || !options_.policy.ahead_of_time_swap) return;
  // Global planning re-levels every unlocked context's chunks: their new versions too.
  std::vector<uint64_t> changed = {ctx->id};
  if (options_.policy.compression == CompressionMode::kToleranceGlobal) {
    for (const Context* other : table_.All()) {
      if (other != ctx && !other->locked && other->damage.empty()) changed.push_back(other->id);
    }
  }
  for (uint64_t id : changed) {  // a synchronous writer releases the lock between them
    if (Context* c = table_.FindById(id)) QueueWrites(c);
  }
}

void KvManager::Compress(Context* ctx) {
  std::vector<Context*> members = {ctx};
  if (options_.policy.compression == CompressionMode::kToleranceGlobal) {
    // Every context ranked together; those another session holds are left to it.
    for (Context* other : table_.All()) {
      if (other != ctx && !other->locked && other->damage.empty()) members.push_back(other);
    }
  }
  CompressChunks(options_.policy, members, engine_->kv_layout().chunk_tokens, &next_version_,
                 &evictor_);
}

void KvManager::TruncateContext(Context* ctx, size_t tokens) {
  const size_t T = ctx->cache->chunk_tokens();
  tokens = std::min(tokens, ctx->tokens.size());
  ctx->tokens.resize(tokens);
  ctx->cache->Truncate(std::min(tokens, ctx->cache->num_tokens()));
  for (size_t i = ctx->cache->num_chunks(); i < ctx->chunks.size(); ++i) {
    evictor_.Remove({ctx->id, static_cast<uint32_t>(i)});
  }
  ctx->chunks.resize(ctx->cache->num_chunks());
  const size_t kv = ctx->cache->num_tokens();
  if (kv % T == 0) return;
  // The last chunk may have been filled past the cut and compressed meanwhile: drop it.
  const size_t last = kv / T;
  evictor_.Remove({ctx->id, static_cast<uint32_t>(last)});
  ctx->cache->TakeChunk(last);
  ChunkState& s = ctx->chunks[last];
  s.dirty = false;
  s.version = ++next_version_;  // pending writes of the old chunk are stale
  if (s.on_flash) s.level = static_cast<KvLevel>(s.meta.level);
}

Status KvManager::CheckInvariants() {
  MutexLock lock(&mu_);
  size_t resident = 0;
  for (const Context* ctx : table_.All()) resident += ctx->cache->ResidentBytes();
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
