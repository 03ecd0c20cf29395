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
