#include "memory/cost_model.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "base/clock.h"
#include "engine/engine.h"
#include "store/chunk_store.h"
#include "store/store_format.h"

namespace llms {
namespace {

// Seconds of one pass computing `rows` new tokens after a `prefix`-token context.
StatusOr<double> TimePass(Engine* engine, size_t prefix, size_t rows) {
  const size_t vocab = engine->config().vocab_size;
  std::vector<int32_t> tokens(prefix + rows);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(1 + i % (vocab - 1));
  auto cache = engine->NewCache();
  std::vector<float> logits;
  ForwardOptions options;
  options.logits = LogitsMode::kNone;
  options.collect_attention_stats = false;
  const std::span<const int32_t> all(tokens);
  if (prefix > 0)
    LLMS_RETURN_IF_ERROR(engine->Forward(cache.get(), all.first(prefix), options, &logits));
  const Stopwatch pass;
  LLMS_RETURN_IF_ERROR(engine->Forward(cache.get(), all, options, &logits));
  return pass.Seconds();
}

// Writes `chunks` scratch chunks of `layer_bytes` per layer to context `scratch`.
StatusOr<std::vector<ChunkMeta>> WriteScratchChunks(ChunkStore* store, uint64_t scratch,
                                                    uint32_t first_index, size_t layers,
                                                    size_t layer_bytes, size_t chunks) {
  std::vector<uint8_t> bytes(layers * layer_bytes, 0x5A);
  std::vector<ChunkMeta> metas;
  for (size_t c = 0; c < chunks; ++c) {
    ChunkMeta meta;
    meta.context_id = scratch;
    meta.chunk_index = first_index + static_cast<uint32_t>(c);
    meta.num_layers = static_cast<uint32_t>(layers);
    meta.layer_bytes = static_cast<uint32_t>(layer_bytes);
    LLMS_ASSIGN_OR_RETURN(ChunkMeta written, store->WriteChunk(meta, bytes));
    metas.push_back(std::move(written));
  }
  return metas;
}

// Times reading `metas` back the way a pipelined restore does (one batch per layer over all
// chunks) and returns the seconds per (chunk, layer).
StatusOr<double> TimeLayerReads(ChunkStore* store, const std::vector<ChunkMeta>& metas) {
  const size_t layers = metas[0].num_layers;
  std::vector<std::vector<uint8_t>> out(metas.size(), std::vector<uint8_t>(metas[0].layer_bytes));
  std::vector<ChunkStore::LayerRead> reads;
  for (size_t c = 0; c < metas.size(); ++c) reads.push_back({&metas[c], 0, out[c], {}});
  const Stopwatch reading;
  for (size_t l = 0; l < layers; ++l) {
    for (auto& r : reads) r.layer = static_cast<uint32_t>(l);
    LLMS_RETURN_IF_ERROR(store->ReadLayers(reads));
  }
  return reading.Seconds() / static_cast<double>(layers * metas.size());
}

// Times reading `metas` whole in merged requests, as a bulk restore does; seconds per byte.
StatusOr<double> TimeChunkReads(ChunkStore* store, const std::vector<ChunkMeta>& metas) {
  std::vector<std::vector<uint8_t>> out;
  std::vector<ChunkStore::ChunkRead> reads;
  size_t bytes = 0;
  for (const ChunkMeta& m : metas) out.emplace_back(m.data_bytes());
  for (size_t c = 0; c < metas.size(); ++c) {
    reads.push_back({&metas[c], out[c], {}});
    bytes += metas[c].data_bytes();
  }
  const Stopwatch reading;
  LLMS_RETURN_IF_ERROR(store->ReadChunks(reads));
  return reading.Seconds() / static_cast<double>(bytes);
}

// Sets layer-wise read time = bytes * b + requests * r from the seconds per layer read of slices
// of `big` and `small` bytes (equal sizes: per byte only, the request cost kept).
void FitLayerReads(double t_big, size_t big, double t_small, size_t small, CostModel* cost) {
  const double per_byte =
      big > small ? std::max(0.0, (t_big - t_small) / static_cast<double>(big - small)) : 0.0;
  cost->read_seconds_per_byte = per_byte > 0 ? per_byte : t_big / static_cast<double>(big);
  if (big > small) {
    cost->read_seconds_per_request =
        std::max(0.0, t_big - static_cast<double>(big) * cost->read_seconds_per_byte);
  }
}

// Times layer-wise and whole-chunk reads of `big` (the largest slices) and `small` chunks.
Status TimeReads(ChunkStore* store, const std::vector<ChunkMeta>& big,
                 const std::vector<ChunkMeta>& small, CostModel* cost) {
  LLMS_ASSIGN_OR_RETURN(double t_big, TimeLayerReads(store, big));
  LLMS_ASSIGN_OR_RETURN(double t_small, TimeLayerReads(store, small));
  // Twice, timing the second: the first also allocates the store's bounce buffers.
  LLMS_RETURN_IF_ERROR(TimeChunkReads(store, big).status());
  LLMS_ASSIGN_OR_RETURN(cost->bulk_read_seconds_per_byte, TimeChunkReads(store, big));
  FitLayerReads(t_big, big[0].layer_bytes, t_small, small[0].layer_bytes, cost);
  return Status::Ok();
}

// Fits the read costs from batched reads of the largest (f16) and the smallest (int2) layer
// slices this model has, as the restore pipeline issues them, written to a scratch context.
Status MeasureScratchReads(Engine* engine, ChunkStore* store, CostModel* cost) {
  const KvLayout& layout = engine->kv_layout();
  const size_t layers = engine->config().n_layers;
  const size_t big = layout.LayerBytes(KvLevel::kF16), small = layout.LayerBytes(KvLevel::kInt2);
  constexpr size_t kChunks = 16;
  LLMS_ASSIGN_OR_RETURN(uint64_t scratch, store->CreateContext("llms-cost-model", {}));
  auto measure = [&]() -> Status {
    LLMS_ASSIGN_OR_RETURN(auto big_chunks,
                          WriteScratchChunks(store, scratch, 0, layers, big, kChunks));
    LLMS_ASSIGN_OR_RETURN(auto small_chunks,
                          WriteScratchChunks(store, scratch, kChunks, layers, small, kChunks));
    return TimeReads(store, big_chunks, small_chunks, cost);
  };
  Status measured = measure();
  Status deleted = store->DeleteContext(scratch);
  LLMS_RETURN_IF_ERROR(measured);
  return deleted;
}

// The same fit from chunks the store already holds, writing nothing (a daemon must start on a
// full disk): up to 16 chunks of the largest and of the smallest slice size found. With no
// chunk stored, or one that fails to read, `cost` keeps its read figures.
void MeasureStoredReads(ChunkStore* store, CostModel* cost) {
  constexpr size_t kChunks = 16;
  std::map<uint32_t, std::vector<ChunkMeta>> by_size;  // layer_bytes -> chunks
  StatusOr<std::vector<ContextRecord>> contexts = store->ListContexts();
  if (!contexts.ok()) return;
  for (const ContextRecord& r : *contexts) {
    StatusOr<std::vector<ChunkMeta>> chunks = store->ListChunks(r.id);
    if (!chunks.ok()) continue;
    for (ChunkMeta& m : *chunks) {
      std::vector<ChunkMeta>& group = by_size[m.layer_bytes];
      if (group.size() < kChunks && (group.empty() || group[0].num_layers == m.num_layers)) {
        group.push_back(std::move(m));
      }
    }
  }
  if (by_size.empty()) return;
  CostModel measured = *cost;
  if (TimeReads(store, by_size.rbegin()->second, by_size.begin()->second, &measured).ok()) {
    *cost = measured;
  }
}

// Seconds per byte of checking and copying read bytes, as the store does with each read layer.
double TimeVerify() {
  constexpr size_t kBytes = size_t{8} << 20, kSlice = size_t{64} << 10;
  std::vector<uint8_t> from(kBytes, 0x5A), to(kBytes);
  uint64_t sink = 0;
  double seconds = 0;
  for (int round = 0; round < 2; ++round) {  // the first faults the pages in
    const Stopwatch verifying;
    for (size_t at = 0; at < kBytes; at += kSlice) {
      sink += store_format::LayerChecksum(std::span<const uint8_t>(from).subspan(at, kSlice));
      std::memcpy(to.data() + at, from.data() + at, kSlice);
    }
    seconds = verifying.Seconds();
  }
  // The checksums feed the result (by at most a picosecond), so the compiler keeps them.
  return (seconds + static_cast<double>(sink & 1) * 1e-12) / static_cast<double>(kBytes);
}

}  // namespace

StatusOr<CostModel> CostModel::Measure(Engine* engine, ChunkStore* store) {
  return Measure(engine, store, /*write_scratch=*/true, CostModel());
}

StatusOr<CostModel> CostModel::Measure(Engine* engine, ChunkStore* store, bool write_scratch,
                                       const CostModel& defaults) {
  CostModel cost = defaults;
  constexpr size_t kRows = 32, kPrefix = 256;
  // A first, untimed pass faults the weights in and warms the caches: timed cold, compute
  // read about 2x too slow and plans never recomputed (found by the trace replay).
  LLMS_RETURN_IF_ERROR(TimePass(engine, 0, kRows).status());
  LLMS_ASSIGN_OR_RETURN(double short_pass, TimePass(engine, 0, kRows));
  LLMS_ASSIGN_OR_RETURN(double long_pass, TimePass(engine, kPrefix, kRows));
  cost.compute_seconds_per_token = short_pass / kRows;
  cost.attend_seconds_per_token_pair =
      std::max(0.0, (long_pass - short_pass) / (static_cast<double>(kRows) * kPrefix));
  if (store == nullptr) return cost;
  cost.verify_seconds_per_byte = TimeVerify();
  if (write_scratch) {
    LLMS_RETURN_IF_ERROR(MeasureScratchReads(engine, store, &cost));
  } else {
    MeasureStoredReads(store, &cost);
  }
  return cost;
}

}  // namespace llms
