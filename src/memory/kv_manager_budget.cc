// KvManager: the budget. Room is made before a pass by evicting in the policy's order, the
// victims that flash lacks written first as one batch when the policy keeps chunks there; inside a
// pass only chunks that need no write may go, so no flash I/O ever runs between two layers. Changed
// chunks are queued for the chunk writer when a call ends (ahead-of-time swap-out).
#include <cstring>

#include "memory/kv_manager.h"

namespace llms {
namespace {

std::string MiB(size_t bytes) {
  return std::to_string(bytes >> 20) + "." + std::to_string((bytes & ((1 << 20) - 1)) * 10 >> 20) +
         " MiB";
}

}  // namespace

Status KvManager::Reserve(size_t bytes) {
  for (;;) {
    if (budget_.TryReserve(bytes)) return Status::Ok();
    if (!EvictNext(/*allow_writes=*/!in_pass_)) {
      return Status::ResourceExhausted(
          "KV memory budget of " + MiB(budget_.limit()) + " is full (" + MiB(budget_.used()) +
          " in use, " + std::to_string(bytes) +
          " more bytes needed) and nothing else can be evicted: the running context alone needs "
          "more than the budget");
    }
  }
}

void KvManager::Release(size_t bytes) { budget_.Release(bytes); }

Status KvManager::MakeRoom(size_t bytes) {
  bytes = std::min(bytes, budget_.limit());  // the pass evicts clean chunks for the rest
  while (budget_.limit() - budget_.used() < bytes) {
    if (!EvictBatch(bytes - (budget_.limit() - budget_.used()))) return Status::Ok();
  }
  return Status::Ok();
}

bool KvManager::EvictBatch(size_t bytes) {
  MutexLock lock(&mu_);
  const std::vector<ChunkId> victims = evictor_.VictimsFor(
      bytes,
      [this](uint64_t context) NO_THREAD_SAFETY_ANALYSIS {
        return ContextLocked(context);  // called under mu_, inside VictimsFor
      },
      [this](ChunkId id) NO_THREAD_SAFETY_ANALYSIS {
        const Context* ctx = table_.FindById(id.context);
        const KvChunk* chunk = ctx != nullptr ? ctx->cache->chunk(id.chunk) : nullptr;
        return chunk != nullptr ? chunk->bytes() : size_t{0};
      });
  if (victims.empty()) return false;
  // The victims that flash lacks are written together: one sync for the whole set.
  std::vector<WriteJob> jobs;
  for (const ChunkId& v : victims) {
    const Context* ctx = table_.FindById(v.context);
    if (ctx != nullptr && v.chunk < ctx->chunks.size() && NeedsWrite(ctx->chunks[v.chunk])) {
      jobs.push_back(MakeWriteJob(*ctx, v.chunk));
    }
  }
  if (!jobs.empty()) {
    mu_.Unlock();  // the writer takes mu_ in its hooks
    const Status written = writer_->WriteNow(std::move(jobs));
    mu_.Lock();
    if (!written.ok()) return false;
  }
  bool dropped = false;
  for (const ChunkId& v : victims) {
    Context* ctx = table_.FindById(v.context);  // the lock was released around the write
    if (ctx == nullptr || ctx->locked || v.chunk >= ctx->chunks.size()) continue;
    if (NeedsWrite(ctx->chunks[v.chunk])) continue;  // changed meanwhile: not written
    dropped = DropChunk(ctx, v.chunk) || dropped;
  }
  return dropped;
}

bool KvManager::EvictNext(bool allow_writes) {
  MutexLock lock(&mu_);
  const std::vector<ChunkId> victims =
      evictor_.NextVictims([this](uint64_t context) NO_THREAD_SAFETY_ANALYSIS {
        return ContextLocked(context);  // called under mu_, inside NextVictims
      });
  if (victims.empty()) return false;
  Context* ctx = table_.FindById(victims[0].context);
  if (ctx == nullptr) return false;
  for (const ChunkId& v : victims) {
    if (!allow_writes && NeedsWrite(ctx->chunks[v.chunk])) return false;
  }
  for (const ChunkId& v : victims) {
    if (!EvictChunk(ctx, v.chunk).ok()) return false;
  }
  return true;
}

bool KvManager::NeedsWrite(const ChunkState& s) const {
  return options_.policy.keep_on_flash && (s.dirty || !s.on_flash);
}

// Drops a resident chunk, writing it first when the flash copy is missing or stale (unless the
// policy keeps nothing on flash). The lock is released around the write.
Status KvManager::EvictChunk(Context* ctx, size_t index) {
  const uint64_t id = ctx->id;
  if (NeedsWrite(ctx->chunks[index])) {
    std::vector<WriteJob> job;
    job.push_back(MakeWriteJob(*ctx, index));
    mu_.Unlock();  // the writer takes mu_ in its hooks
    Status written = writer_->WriteNow(std::move(job));
    mu_.Lock();
    LLMS_RETURN_IF_ERROR(written);
    ctx = table_.FindById(id);
    if (ctx == nullptr || index >= ctx->chunks.size()) return Status::Ok();  // gone meanwhile
  }
  DropChunk(ctx, index);
  return Status::Ok();
}

// Frees a resident chunk's memory, keeping what the planner needs to know of it.
bool KvManager::DropChunk(Context* ctx, size_t index) {
  KvChunk* chunk = ctx->cache->chunk(index);
  if (chunk == nullptr) return false;
  ChunkState* s = &ctx->chunks[index];
  s->prob_sum = chunk->prob_sum();
  s->prob_count = chunk->prob_count();
  s->density = chunk->Density();
  if (!options_.policy.keep_on_flash) s->on_flash = false;
  evictor_.Remove({ctx->id, static_cast<uint32_t>(index)});
  ctx->cache->TakeChunk(index);  // releases its bytes
  return true;
}

// A copy of a resident chunk and its metadata, to write without holding mu_: the one copy of its
// bytes, straight into the aligned buffer the store writes.
WriteJob KvManager::MakeWriteJob(const Context& ctx, size_t index) {
  const KvChunk* chunk = ctx.cache->chunk(index);
  WriteJob job;
  job.context = ctx.id;
  job.index = static_cast<uint32_t>(index);
  job.version = ctx.chunks[index].version;
  job.meta.context_id = ctx.id;
  job.meta.chunk_index = job.index;
  job.meta.level = static_cast<uint8_t>(chunk->level());
  job.meta.num_layers = static_cast<uint32_t>(chunk->num_layers());
  job.meta.layer_bytes = static_cast<uint32_t>(chunk->layer_bytes());
  job.meta.valid_tokens = static_cast<uint32_t>(chunk->valid_tokens());
  job.meta.density = chunk->Density();
  job.meta.stats = PackStats(chunk->prob_sum(), chunk->prob_count());
  job.meta.tokens_hash = table_.ChunkTokensHash(ctx, index, chunk->valid_tokens());
  StatusOr<AlignedBuffer> extent = AlignedBuffer::Allocate(chunk->bytes());
  if (extent.ok()) {
    std::memcpy(extent->data(), chunk->data(), chunk->bytes());
    job.extent = std::move(extent).value();
  }
  return job;
}

void KvManager::QueueWrites(Context* ctx) {
  std::vector<WriteJob> jobs;
  for (size_t i = 0; i < ctx->chunks.size(); ++i) {
    if (ctx->cache->chunk(i) != nullptr && ctx->chunks[i].dirty) {
      jobs.push_back(MakeWriteJob(*ctx, i));
    }
  }
  if (jobs.empty()) return;
  // Without a background thread the writer writes now; the writer takes mu_ in its hooks.
  mu_.Unlock();
  writer_->Queue(std::move(jobs));
  mu_.Lock();
}

void KvManager::Touch(Context* ctx, size_t index) {
  if (ctx->cache->chunk(index) == nullptr) return;
  evictor_.Touch({ctx->id, static_cast<uint32_t>(index)}, ctx->chunks[index].level);
}

Status KvManager::Flush() { return writer_ != nullptr ? writer_->Flush() : Status::Ok(); }

Status KvManager::EvictAll() {
  LLMS_RETURN_IF_ERROR(Flush());
  MutexLock lock(&mu_);
  std::vector<uint64_t> ids;
  for (const Context* ctx : table_.All()) ids.push_back(ctx->id);
  for (uint64_t id : ids) {
    Context* ctx = table_.FindById(id);  // an eviction's write releases the lock
    if (ctx == nullptr || ctx->locked) continue;
    for (size_t i = 0; i < ctx->chunks.size(); ++i) {
      if (ctx->cache->chunk(i) != nullptr) LLMS_RETURN_IF_ERROR(EvictChunk(ctx, i));
    }
  }
  return Status::Ok();
}

Status KvManager::TEST_EvictChunks(uint64_t id, const std::vector<size_t>& chunks) {
  MutexLock lock(&mu_);
  Context* ctx = table_.FindById(id);
  if (ctx == nullptr) return Status::NotFound("context " + std::to_string(id));
  for (size_t i : chunks) {
    if (i < ctx->chunks.size() && ctx->cache->chunk(i) != nullptr) {
      LLMS_RETURN_IF_ERROR(EvictChunk(ctx, i));
    }
  }
  return Status::Ok();
}

}  // namespace llms
