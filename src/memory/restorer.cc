#include "memory/restorer.h"

#include <algorithm>

namespace llms {
namespace {

// Layers per read request of the pipeline: enough for kPipelineReadBytes (below that the device
// is latency-bound: docs/store_format.md), at most all of them.
constexpr size_t kPipelineReadBytes = size_t{64} << 10;

size_t LayersPerRead(size_t layer_bytes, size_t layers) {
  return std::clamp<size_t>((kPipelineReadBytes + std::max<size_t>(layer_bytes, 1) - 1) /
                                std::max<size_t>(layer_bytes, 1),
                            1, std::max<size_t>(layers, 1));
}

}  // namespace

Restorer::~Restorer() { Finish(); }

void Restorer::Plan(std::vector<MissingChunkState> missing, size_t new_rows, double mean_position,
                    const CostModel& cost, RestoreMode mode, ReadPath path) {
  std::vector<MissingChunk> planned;
  for (const MissingChunkState& m : missing) {
    const bool readable = m.readable && mode != RestoreMode::kRecomputeOnly;
    planned.push_back({m.index, m.tokens, readable ? m.meta.data_bytes() : 0,
                       readable ? (layers_ + LayersPerRead(m.meta.layer_bytes, layers_) - 1) /
                                      LayersPerRead(m.meta.layer_bytes, layers_)
                                : 0});
  }
  if (mode == RestoreMode::kPipelined) {
    RestorePlan plan = PlanRestore(planned, new_rows, mean_position, cost, path);
    recompute_ = std::move(plan.recompute);
    bulk_ = plan.bulk_read;
  } else {
    for (const MissingChunk& m : planned) {
      if (m.read_bytes == 0) recompute_.push_back(m.index);
    }
    bulk_ = true;  // everything is read before the pass anyway
  }
  for (MissingChunkState& m : missing) {
    if (std::binary_search(recompute_.begin(), recompute_.end(), m.index)) continue;
    load_.push_back(m.index);
    metas_.push_back(std::move(m.meta));
    sums_.push_back(std::move(m.prob_sum));
    counts_.push_back(std::move(m.prob_count));
  }
}

Status Restorer::Start(KvCache* cache, const Stopwatch& call) {
  const size_t T = cache->chunk_tokens();
  for (size_t k = 0; k < load_.size(); ++k) {
    LLMS_ASSIGN_OR_RETURN(auto chunk, cache->NewChunk(static_cast<KvLevel>(metas_[k].level)));
    chunk->set_valid_tokens(metas_[k].valid_tokens);
    if (sums_[k].size() == T) chunk->prob_sum() = sums_[k];
    if (counts_[k].size() == T) chunk->prob_count() = counts_[k];
    cache->PutChunk(load_[k], std::move(chunk));
  }
  if (load_.empty()) return Status::Ok();
  clock_ = call.clock();
  io_start_ = call.Seconds();
  const Stopwatch io(call.clock());
  if (bulk_) {
    ReadWhole(cache);
    io_seconds_ = io.Seconds();
    return Status::Ok();
  }
  // Each step reads a group of layers of every chunk, one request per chunk, large enough for
  // the device (the smallest chunk's slices set the group).
  uint32_t smallest = UINT32_MAX;
  for (const ChunkMeta& m : metas_) smallest = std::min(smallest, m.layer_bytes);
  const size_t group = LayersPerRead(smallest, layers_);
  io_ = std::thread([this, cache, group, io] {
    for (size_t l = 0; l < layers_; l += group)
      ReadLayerGroup(cache, l, std::min(group, layers_ - l));
    io_seconds_ = io.Seconds();
  });
  return Status::Ok();
}

void Restorer::Record(std::span<const size_t> chunks, std::span<const Status> results,
                      size_t layers_done) {
  {
    MutexLock lock(&mu_);
    for (size_t k = 0; k < results.size(); ++k) {
      if (results[k].ok()) continue;
      if (status_.ok()) status_ = results[k];
      failed_.push_back(chunks[k]);
    }
    layers_done_ = layers_done;
  }
  cv_.NotifyAll();
}

// The bulk read: every chunk to load, whole, in large merged requests.
void Restorer::ReadWhole(KvCache* cache) {
  std::vector<ChunkStore::ChunkRead> reads;
  for (size_t k = 0; k < load_.size(); ++k) {
    KvChunk* chunk = cache->chunk(load_[k]);
    reads.push_back({&metas_[k], std::span<uint8_t>(chunk->data(), chunk->bytes()), {}});
  }
  (void)store_->ReadChunks(reads);
  std::vector<Status> results;
  for (const auto& r : reads) results.push_back(r.status);
  Record(load_, results, layers_);
}

void Restorer::ReadLayerGroup(KvCache* cache, size_t first, size_t count) {
  std::vector<ChunkStore::LayerRead> reads;
  for (size_t k = 0; k < load_.size(); ++k) {
    KvChunk* chunk = cache->chunk(load_[k]);
    reads.push_back({&metas_[k],
                     static_cast<uint32_t>(first),
                     std::span<uint8_t>(chunk->layer(first), count * chunk->layer_bytes()),
                     {}});
  }
  (void)store_->ReadLayers(reads, static_cast<uint32_t>(count));
  std::vector<Status> results;
  for (const auto& r : reads) results.push_back(r.status);
  Record(load_, results, first + count);
}

std::function<Status(size_t)> Restorer::BeforeLayer(KvCache* cache) {
  if (load_.empty()) return nullptr;
  return [this, cache, clock = clock_](size_t layer) -> Status {
    const Stopwatch wait(clock);
    MutexLock lock(&mu_);
    while (layers_done_ <= layer) cv_.Wait(&lock);
    io_wait_ += wait.Seconds();
    if (!status_.ok()) return status_;
    for (size_t c : load_) cache->chunk(c)->set_layer_present(layer, true);
    return Status::Ok();
  };
}

size_t Restorer::load_bytes() const {
  size_t bytes = 0;
  for (const ChunkMeta& m : metas_) bytes += m.data_bytes();
  return bytes;
}

void Restorer::Finish() {
  if (io_.joinable()) io_.join();
}

void Restorer::DropLoaded(KvCache* cache) const {
  for (size_t c : load_) cache->TakeChunk(c);
}

std::vector<size_t> Restorer::failed() {
  MutexLock lock(&mu_);
  return failed_;
}

Status Restorer::status() {
  MutexLock lock(&mu_);
  return status_;
}

size_t Restorer::bytes_read() const {
  size_t bytes = 0;
  for (const ChunkMeta& m : metas_) bytes += m.data_bytes();
  return bytes;
}

}  // namespace llms
