// KvManager: eviction under the budget, the background writer (ahead-of-time swap-out) and the
// restore pipeline (an I/O thread reading layer l+1 while the pass computes layer l).
#include <algorithm>
#include <string>

#include "memory/kv_manager.h"
#include "memory/kv_manager_internal.h"

namespace llms {
namespace {

// Layers per read request of the restore pipeline: enough for kPipelineReadBytes (below that the
// device is latency-bound: docs/store_format.md), at most all of them.
constexpr size_t kPipelineReadBytes = size_t{64} << 10;
size_t LayersPerRead(size_t layer_bytes, size_t layers) {
  return std::clamp<size_t>(CeilDiv(kPipelineReadBytes, std::max<size_t>(layer_bytes, 1)), 1,
                            std::max<size_t>(layers, 1));
}

std::string MiB(size_t bytes) {
  return std::to_string(bytes >> 20) + "." + std::to_string((bytes & ((1 << 20) - 1)) * 10 >> 20) +
         " MiB";
}

}  // namespace

// ---- Budget and eviction ----------------------------------------------------------------------

Status KvManager::Reserve(size_t bytes) {
  for (;;) {
    if (budget_.TryReserve(bytes)) return Status::Ok();
    if (!EvictOne()) {
      return Status::ResourceExhausted(
          "KV memory budget of " + MiB(budget_.limit()) + " is full (" + MiB(budget_.used()) +
          " in use, " + std::to_string(bytes) +
          " more bytes needed) and nothing else can be evicted: the running context alone needs "
          "more than the budget");
    }
  }
}

void KvManager::Release(size_t bytes) { budget_.Release(bytes); }

bool KvManager::EvictOne() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto victim = queues_.Victim([this](ChunkId id) { return id.context == calling_; });
  if (!victim) return false;
  Context* ctx = contexts_.at(victim->context).get();
  if (options_.policy.unit == EvictionUnit::kContext) {
    for (size_t i = 0; i < ctx->chunks.size(); ++i) {
      if (ctx->cache->chunk(i) != nullptr && !EvictChunkLocked(ctx, i, &lock).ok()) return false;
    }
    return true;
  }
  return EvictChunkLocked(ctx, victim->chunk, &lock).ok();
}

// Drops a resident chunk, writing it first when the flash copy is missing or stale (unless the
// policy keeps nothing on flash). REQUIRES: *lock holds mu_; it is released around the write.
Status KvManager::EvictChunkLocked(Context* ctx, size_t index, std::unique_lock<std::mutex>* lock) {
  ChunkState& s = ctx->chunks[index];
  if (options_.policy.keep_on_flash && (s.dirty || !s.on_flash)) {
    LLMS_RETURN_IF_ERROR(WriteChunkNow(ctx, index, lock));
  }
  const uint64_t id = ctx->id;
  auto it = contexts_.find(id);
  if (it == contexts_.end() || it->second.get() != ctx) return Status::Ok();  // deleted meanwhile
  KvChunk* chunk = ctx->cache->chunk(index);
  if (chunk == nullptr) return Status::Ok();
  s.prob_sum = chunk->prob_sum();
  s.prob_count = chunk->prob_count();
  s.density = chunk->Density();
  if (!options_.policy.keep_on_flash) s.on_flash = false;
  queues_.Remove({id, static_cast<uint32_t>(index)});
  ctx->cache->TakeChunk(index);  // releases its bytes
  return Status::Ok();
}

Status KvManager::WriteChunkNow(Context* ctx, size_t index, std::unique_lock<std::mutex>* lock) {
  WriteJob job = MakeWriteJob(*ctx, index);
  const size_t bytes = job.bytes.size();
  lock->unlock();
  const Stopwatch writing;
  Status st = WriteJobNow(std::move(job));
  const double seconds = writing.Seconds();
  lock->lock();
  call_write_seconds_ += seconds;
  if (st.ok()) call_bytes_written_ += bytes;
  return st;
}

// A copy of a resident chunk and its metadata, to write without holding mu_.
KvManager::WriteJob KvManager::MakeWriteJob(const Context& ctx, size_t index) const {
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
  job.meta.tokens_hash = ChunkTokensHash(ctx, index, chunk->valid_tokens());
  job.bytes.assign(chunk->data(), chunk->data() + chunk->bytes());
  return job;
}

// ---- Ahead-of-time swap-out ---------------------------------------------------------------------

void KvManager::QueueWrites(Context* ctx) {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<size_t> dirty;
  for (size_t i = 0; i < ctx->chunks.size(); ++i) {
    if (ctx->cache->chunk(i) != nullptr && ctx->chunks[i].dirty) dirty.push_back(i);
  }
  if (!options_.background_writer) {
    for (size_t i : dirty) (void)WriteChunkNow(ctx, i, &lock);
    return;
  }
  for (size_t i : dirty) {
    WriteJob job = MakeWriteJob(*ctx, i);
    write_queue_.push_back(std::move(job));
  }
  lock.unlock();
  write_cv_.notify_all();
}

void KvManager::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    write_cv_.wait(lock, [&] { return stop_writer_ || !write_queue_.empty(); });
    if (write_queue_.empty()) return;  // stopping, nothing left
    WriteJob job = std::move(write_queue_.front());
    write_queue_.pop_front();
    ++writes_in_flight_;
    lock.unlock();
    Status s = WriteJobNow(std::move(job));
    lock.lock();
    --writes_in_flight_;
    if (!s.ok()) writer_status_ = s;
    write_cv_.notify_all();
  }
}

// Writes one chunk version unless a newer one has been written meanwhile. Lock order:
// write_mu_, then mu_ (never the reverse).
Status KvManager::WriteJobNow(WriteJob job) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = contexts_.find(job.context);
    if (it == contexts_.end() || job.index >= it->second->chunks.size()) return Status::Ok();
    const ChunkState& s = it->second->chunks[job.index];
    if (s.version != job.version || !s.dirty) return Status::Ok();  // stale or already written
  }
  StatusOr<ChunkMeta> written = store_->WriteChunk(job.meta, job.bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (!written.ok()) {
    return written.status().code() == StatusCode::kNotFound ? Status::Ok() : written.status();
  }
  auto it = contexts_.find(job.context);
  if (it == contexts_.end() || job.index >= it->second->chunks.size()) return Status::Ok();
  ChunkState& s = it->second->chunks[job.index];
  s.meta = std::move(written).value();
  s.on_flash = true;
  if (s.version == job.version) s.dirty = false;
  return Status::Ok();
}

Status KvManager::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  write_cv_.wait(lock, [&] { return write_queue_.empty() && writes_in_flight_ == 0; });
  Status s = writer_status_;
  writer_status_ = Status::Ok();
  return s;
}

Status KvManager::EvictAll() {
  LLMS_RETURN_IF_ERROR(Flush());
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<uint64_t> ids;
  for (const auto& [id, ctx] : contexts_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = contexts_.find(id);
    if (it == contexts_.end() || id == calling_) continue;
    Context* ctx = it->second.get();
    for (size_t i = 0; i < ctx->chunks.size(); ++i) {
      if (ctx->cache->chunk(i) != nullptr) LLMS_RETURN_IF_ERROR(EvictChunkLocked(ctx, i, &lock));
    }
  }
  return Status::Ok();
}

Status KvManager::TEST_EvictChunks(uint64_t id, const std::vector<size_t>& chunks) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = contexts_.find(id);
  if (it == contexts_.end()) return Status::NotFound("context " + std::to_string(id));
  Context* ctx = it->second.get();
  for (size_t i : chunks) {
    if (i < ctx->chunks.size() && ctx->cache->chunk(i) != nullptr) {
      LLMS_RETURN_IF_ERROR(EvictChunkLocked(ctx, i, &lock));
    }
  }
  return Status::Ok();
}

// ---- Restore ------------------------------------------------------------------------------------

Status KvManager::PrepareRestore(Context* ctx, size_t new_rows, Restore* restore, CallStats* stats,
                                 const Stopwatch& call) {
  const KvLayout& layout = engine_->kv_layout();
  const size_t T = layout.chunk_tokens, kv = ctx->cache->num_tokens();
  const size_t layers = engine_->config().n_layers;
  std::vector<MissingChunk> missing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats->chunks = ctx->cache->num_chunks();
    ctx->chunks.resize(stats->chunks);
    for (size_t i = 0; i < stats->chunks; ++i) {
      if (ctx->cache->chunk(i) != nullptr) {
        ++stats->chunks_resident;
        continue;
      }
      const ChunkState& s = ctx->chunks[i];
      const size_t tokens = std::min(T, kv - i * T);
      // The stored copy must hold every token the context has in that chunk, of this text.
      const bool readable = options_.policy.restore != RestoreMode::kRecomputeOnly &&
                            FlashCopyMatches(*ctx, i, tokens);
      missing.push_back(
          {i, tokens, readable ? s.meta.data_bytes() : 0,
           readable ? CeilDiv(layers, LayersPerRead(s.meta.layer_bytes, layers)) : 0});
    }
  }
  const double mean_position = static_cast<double>(kv) / 2.0;
  if (options_.policy.restore == RestoreMode::kPipelined) {
    RestorePlan plan = PlanRestore(missing, new_rows, mean_position, cost_);
    restore->recompute = std::move(plan.recompute);
    restore->bulk = plan.bulk_read;
  } else {
    for (const MissingChunk& m : missing) {
      if (m.read_bytes == 0) restore->recompute.push_back(m.index);
    }
    restore->bulk = true;  // everything is read before the pass anyway
  }
  for (const MissingChunk& m : missing) {
    if (!std::binary_search(restore->recompute.begin(), restore->recompute.end(), m.index)) {
      restore->load.push_back(m.index);
    }
  }
  stats->chunks_recomputed = restore->recompute.size();
  stats->chunks_loaded = restore->load.size();
  // Room for the chunks to read (recomputed ones are allocated by the pass itself).
  for (size_t c : restore->load) {
    ChunkMeta meta;
    std::vector<float> sum, count;
    {
      std::lock_guard<std::mutex> lock(mu_);
      meta = ctx->chunks[c].meta;
      sum = ctx->chunks[c].prob_sum;
      count = ctx->chunks[c].prob_count;
    }
    LLMS_ASSIGN_OR_RETURN(auto chunk, ctx->cache->NewChunk(static_cast<KvLevel>(meta.level)));
    chunk->set_valid_tokens(meta.valid_tokens);
    if (sum.size() == T) chunk->prob_sum() = sum;
    if (count.size() == T) chunk->prob_count() = count;
    ctx->cache->PutChunk(c, std::move(chunk));
    restore->metas.push_back(std::move(meta));
    stats->bytes_read += restore->metas.back().data_bytes();
  }
  if (restore->load.empty()) return Status::Ok();
  const Stopwatch io;
  restore->io_start_seconds = call.Seconds();
  if (restore->bulk) {
    ReadWholeChunks(ctx, restore);
    restore->io_seconds = io.Seconds();
    return Status::Ok();
  }
  // Each step reads a group of layers of every chunk, one request per chunk, large enough for
  // the device (the smallest chunk's slices set the group).
  size_t smallest = SIZE_MAX;
  for (const ChunkMeta& m : restore->metas) smallest = std::min<size_t>(smallest, m.layer_bytes);
  const size_t group = LayersPerRead(smallest, layers);
  auto read_group = [this, restore, ctx, group, layers](size_t first) {
    const size_t count = std::min(group, layers - first);
    std::vector<ChunkStore::LayerRead> reads;
    for (size_t k = 0; k < restore->load.size(); ++k) {
      KvChunk* chunk = ctx->cache->chunk(restore->load[k]);
      reads.push_back({&restore->metas[k],
                       static_cast<uint32_t>(first),
                       std::span<uint8_t>(chunk->layer(first), count * chunk->layer_bytes()),
                       {}});
    }
    (void)store_->ReadLayers(reads, static_cast<uint32_t>(count));
    std::lock_guard<std::mutex> lock(restore->mu);
    for (size_t k = 0; k < reads.size(); ++k) {
      if (reads[k].status.ok()) continue;
      if (restore->status.ok()) restore->status = reads[k].status;
      restore->failed.push_back(restore->load[k]);
    }
    restore->layers_done = first + count;
  };
  // Pipelined: the pass computes layer l while the next group is read.
  restore->io = std::thread([=] {
    for (size_t l = 0; l < layers; l += group) {
      read_group(l);
      restore->cv.notify_all();
    }
    restore->io_seconds = io.Seconds();
  });
  return Status::Ok();
}

// The bulk read of a restore: every chunk to load, whole, in large merged requests.
void KvManager::ReadWholeChunks(Context* ctx, Restore* restore) {
  std::vector<ChunkStore::ChunkRead> reads;
  for (size_t k = 0; k < restore->load.size(); ++k) {
    KvChunk* chunk = ctx->cache->chunk(restore->load[k]);
    reads.push_back({&restore->metas[k], std::span<uint8_t>(chunk->data(), chunk->bytes()), {}});
  }
  (void)store_->ReadChunks(reads);
  std::lock_guard<std::mutex> lock(restore->mu);
  for (size_t k = 0; k < reads.size(); ++k) {
    if (reads[k].status.ok()) continue;
    if (restore->status.ok()) restore->status = reads[k].status;
    restore->failed.push_back(restore->load[k]);
  }
  restore->layers_done = engine_->config().n_layers;
}

}  // namespace llms
