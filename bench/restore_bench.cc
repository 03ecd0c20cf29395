#include "bench/restore_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bench/bench_util.h"
#include "memory/kv_manager.h"

namespace llms {
namespace {

using bench::Clock;
using bench::Median;
using bench::Seconds;

// Seconds to read every layer of every stored chunk of `context` with the store's own batched
// direct reads: the disk's bound for a restore that reads everything.
StatusOr<double> ReadAllSeconds(ChunkStore* store, uint64_t context, size_t* bytes) {
  LLMS_ASSIGN_OR_RETURN(std::vector<ChunkMeta> metas, store->ListChunks(context));
  if (metas.empty()) return Status::NotFound("no stored chunks to read");
  std::vector<std::vector<uint8_t>> buffers;
  for (const ChunkMeta& m : metas) buffers.emplace_back(m.layer_bytes);
  *bytes = 0;
  const auto start = Clock::now();
  for (uint32_t l = 0; l < metas[0].num_layers; ++l) {
    std::vector<ChunkStore::LayerRead> reads;
    for (size_t i = 0; i < metas.size(); ++i) reads.push_back({&metas[i], l, buffers[i], {}});
    LLMS_RETURN_IF_ERROR(store->ReadLayers(reads));
    for (const ChunkMeta& m : metas) *bytes += m.layer_bytes;
  }
  return Seconds(start);
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
  auto start = Clock::now();
  LLMS_ASSIGN_OR_RETURN(CallResult first, manager->Call("bench", id, text, g, nullptr));
  const double prefill = Seconds(start);
  LLMS_RETURN_IF_ERROR(manager->Flush());
  LLMS_ASSIGN_OR_RETURN(ContextInfo info, manager->GetContextInfo("bench", id));
  std::printf(
      "context: %zu tokens, %zu chunks (f16 %d, int8 %d, int4 %d, int2 %d), prefill "
      "(= recompute from text) %.2f s\n",
      info.tokens, info.chunks, info.chunks_per_level[0], info.chunks_per_level[1],
      info.chunks_per_level[2], info.chunks_per_level[3], prefill);

  std::vector<double> ready, first_token, read_bound;
  size_t bytes = 0;
  const std::vector<int32_t> next = {static_cast<int32_t>(5)};
  for (int r = 0; r < o.repetitions; ++r) {
    LLMS_RETURN_IF_ERROR(manager->EvictAll());
    LLMS_ASSIGN_OR_RETURN(double bound, ReadAllSeconds(store.get(), id, &bytes));
    read_bound.push_back(bound);
    LLMS_RETURN_IF_ERROR(manager->EvictAll());
    g.max_tokens = 1;
    LLMS_ASSIGN_OR_RETURN(CallResult call, manager->Call("bench", id, next, g, nullptr));
    ready.push_back(call.stats.ready_seconds);
    first_token.push_back(call.stats.first_token_seconds);
    std::printf(
        "  run %d: loaded %zu chunks, recomputed %zu, ready %.1f ms, first token %.1f ms, "
        "read bound %.1f ms\n",
        r + 1, call.stats.chunks_loaded, call.stats.chunks_recomputed,
        1e3 * call.stats.ready_seconds, 1e3 * call.stats.first_token_seconds, 1e3 * bound);
  }
  const double bound = Median(read_bound), rdy = Median(ready);
  std::printf(
      "restore of %zu tokens (%.1f MiB on flash): ready %.1f ms = %.2fx the read bound "
      "(%.1f ms at %.2f GB/s measured now); first token %.1f ms; recompute from text "
      "%.0f ms (%.1fx slower than ready)\n",
      o.context_tokens, bytes / 1048576.0, 1e3 * rdy, rdy / bound, 1e3 * bound, bytes / bound / 1e9,
      1e3 * Median(first_token), 1e3 * prefill, prefill / rdy);
  manager.reset();
  store.reset();
  if (o.data_dir.empty()) std::filesystem::remove_all(dir, ec);
  (void)first;
  return Status::Ok();
}

}  // namespace llms
