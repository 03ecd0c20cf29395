#include "bench/restore_bench.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bench/bench_util.h"
#include "memory/kv_manager.h"
#include "store/uring_reader.h"

namespace llms {
namespace {

using bench::Median;

// Seconds to read every layer of every stored chunk of `context` with the store's layer-wise
// batched reads, as the pipelined restore issues them (many small requests).
StatusOr<double> LayerReadSeconds(ChunkStore* store, uint64_t context) {
  LLMS_ASSIGN_OR_RETURN(std::vector<ChunkMeta> metas, store->ListChunks(context));
  if (metas.empty()) return Status::NotFound("no stored chunks to read");
  std::vector<std::vector<uint8_t>> buffers;
  for (const ChunkMeta& m : metas) buffers.emplace_back(m.layer_bytes);
  Stopwatch start;
  for (uint32_t l = 0; l < metas[0].num_layers; ++l) {
    std::vector<ChunkStore::LayerRead> reads;
    for (size_t i = 0; i < metas.size(); ++i) reads.push_back({&metas[i], l, buffers[i], {}});
    LLMS_RETURN_IF_ERROR(store->ReadLayers(reads));
  }
  return start.Seconds();
}

// The disk's bandwidth on the very bytes a restore of `context` reads: the file range of
// chunks.dat that holds its stored chunks, read with 1 MiB O_DIRECT requests through io_uring at
// the store's queue depth (the request size at which the device reaches its bandwidth,
// docs/store_format.md). Returns bytes/s.
StatusOr<double> RangeReadBandwidth(ChunkStore* store, uint64_t context) {
  LLMS_ASSIGN_OR_RETURN(std::vector<ChunkMeta> metas, store->ListChunks(context));
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const ChunkMeta& m : metas) {
    lo = std::min(lo, m.extent_offset);
    hi = std::max(hi, m.extent_offset + m.extent_length);
  }
  if (hi <= lo) return Status::NotFound("no stored chunks to read");
  const std::string path = store->dir() + "/chunks.dat";
  LLMS_ASSIGN_OR_RETURN(auto file, Env::Default()->OpenRandomRWFile(path, /*direct_io=*/true));
  LLMS_ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::Allocate(hi - lo));
  LLMS_ASSIGN_OR_RETURN(auto ring, UringReader::Create(ChunkStore::Options{}.io_uring_depth));
  constexpr uint64_t kRequest = uint64_t{1} << 20;
  std::vector<UringReader::Request> requests;
  for (uint64_t at = lo; at < hi; at += kRequest) {
    requests.push_back({at, buf.span().subspan(at - lo, std::min(kRequest, hi - at)), 0, {}});
  }
  Stopwatch start;
  LLMS_RETURN_IF_ERROR(ring->Read(file->NativeHandleOrMinusOne(), path.c_str(), requests));
  const double seconds = start.Seconds();
  for (const auto& r : requests) LLMS_RETURN_IF_ERROR(r.status);
  return static_cast<double>(hi - lo) / seconds;
}

}  // namespace

Status RunRestoreBench(const RestoreBenchOptions& o) {
  const auto policy = Policy::ByName(o.policy);
  if (!policy) return Status::InvalidArgument("unknown policy '" + o.policy + "'");
  LLMS_ASSIGN_OR_RETURN(auto model, LlamaModel::Load(Env::Default(), o.model));
  EngineOptions eo;
  eo.threads = o.threads;
  LLMS_ASSIGN_OR_RETURN(auto engine, Engine::Create(model.get(), eo));
  std::string dir = o.data_dir;
  std::error_code ec;
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() /
           ("llms-restore-bench-" + std::to_string(getpid())))
              .string();
  }
  std::filesystem::create_directories(dir, ec);
  LLMS_ASSIGN_OR_RETURN(auto store, ChunkStore::Open(Env::Default(), dir, ChunkStore::Options{}));
  KvManagerOptions mo;
  mo.policy = *policy;
  mo.budget_bytes = size_t{8} << 30;
  std::fprintf(stderr, "measuring the cost model...\n");
  LLMS_ASSIGN_OR_RETURN(auto manager, KvManager::Open(engine.get(), store.get(), mo));
  const CostModel& c = manager->cost();
  std::printf(
      "cost model: compute %.2f ms/token, attention %.3f us/token-pair, read %.2f GB/s "
      "+ %.0f us/request\n",
      c.compute_seconds_per_token * 1e3, c.attend_seconds_per_token_pair * 1e6,
      1e-9 / c.read_seconds_per_byte, c.read_seconds_per_request * 1e6);

  std::vector<int32_t> text(o.context_tokens);
  const size_t vocab = model->config().vocab_size;
  text[0] = 1;
  for (size_t i = 1; i < text.size(); ++i)
    text[i] = static_cast<int32_t>(3 + (i * 7919) % (vocab - 3));
  LLMS_ASSIGN_OR_RETURN(uint64_t id, manager->CreateContext("bench", {}));
  GenerateOptions g;
  g.max_tokens = 0;
  std::fprintf(stderr, "prefilling %zu tokens...\n", text.size());
  Stopwatch start;
  LLMS_RETURN_IF_ERROR(manager->Call("bench", id, text, g, nullptr).status());
  const double prefill = start.Seconds();
  LLMS_RETURN_IF_ERROR(manager->Flush());
  LLMS_ASSIGN_OR_RETURN(ContextInfo info, manager->GetContextInfo("bench", id));
  std::printf(
      "context: %zu tokens, %zu chunks (f16 %d, int8 %d, int4 %d, int2 %d), prefill "
      "(= recompute from text) %.2f s\n",
      info.tokens, info.chunks, info.chunks_per_level[0], info.chunks_per_level[1],
      info.chunks_per_level[2], info.chunks_per_level[3], prefill);

  std::vector<double> ready, first_token, bandwidth, layer_reads;
  size_t read_bytes = 0;
  const std::vector<int32_t> next = {static_cast<int32_t>(5)};
  for (int r = 0; r < o.repetitions; ++r) {
    LLMS_RETURN_IF_ERROR(manager->EvictAll());
    LLMS_ASSIGN_OR_RETURN(double bw_before, RangeReadBandwidth(store.get(), id));
    LLMS_ASSIGN_OR_RETURN(double layered, LayerReadSeconds(store.get(), id));
    layer_reads.push_back(layered);
    LLMS_RETURN_IF_ERROR(manager->EvictAll());
    g.max_tokens = 1;
    const uint64_t requests_before = store->stats().reads;
    LLMS_ASSIGN_OR_RETURN(CallResult call, manager->Call("bench", id, next, g, nullptr));
    const uint64_t requests = store->stats().reads - requests_before;
    // Measured before and after, so neither side gains from a cache the other warmed.
    LLMS_ASSIGN_OR_RETURN(double bw_after, RangeReadBandwidth(store.get(), id));
    const double bw = (bw_before + bw_after) / 2;
    bandwidth.push_back(bw);
    read_bytes = call.stats.bytes_read;
    ready.push_back(call.stats.ready_seconds);
    first_token.push_back(call.stats.first_token_seconds);
    std::printf(
        "  run %d: loaded %zu chunks (%.1f MiB in %llu device reads), recomputed %zu, ready %.1f "
        "ms, first token %.1f ms; disk %.2f GB/s; layer-wise reads of the same chunks %.1f ms\n",
        r + 1, call.stats.chunks_loaded, call.stats.bytes_read / 1048576.0,
        static_cast<unsigned long long>(requests), call.stats.chunks_recomputed,
        1e3 * call.stats.ready_seconds, 1e3 * call.stats.first_token_seconds, bw / 1e9,
        1e3 * layered);
  }
  const double bw = Median(bandwidth), rdy = Median(ready);
  const double bound = static_cast<double>(read_bytes) / bw;
  std::printf(
      "restore of %zu tokens (%.1f MiB read from flash): ready %.1f ms = %.2fx the read bound "
      "(%.1f ms at the %.2f GB/s of 1 MiB direct reads of the same file range, measured now); "
      "first token %.1f ms; "
      "layer-wise reads %.1f ms; recompute from text %.0f ms (%.1fx slower than ready)\n",
      o.context_tokens, read_bytes / 1048576.0, 1e3 * rdy, rdy / bound, 1e3 * bound, bw / 1e9,
      1e3 * Median(first_token), 1e3 * Median(layer_reads), 1e3 * prefill, prefill / rdy);
  manager.reset();
  store.reset();
  if (o.data_dir.empty()) std::filesystem::remove_all(dir, ec);
  return Status::Ok();
}

}  // namespace llms
