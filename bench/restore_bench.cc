#include "bench/restore_bench.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bench/bench_util.h"
#include "env/shaped_env.h"
#include "memory/call_session.h"
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

// One measured call on context `id`: `prompt`, one token generated, rolled back afterwards so the
// next measurement starts from the same context. With `evict`, the context is on flash only.
StatusOr<CallStats> MeasureCall(KvManager* manager, uint64_t id, const std::vector<int32_t>& prompt,
                                bool evict) {
  if (evict) LLMS_RETURN_IF_ERROR(manager->EvictAll());
  GenerateOptions g;
  g.max_tokens = 1;
  g.sampling.temperature = 0;
  LLMS_ASSIGN_OR_RETURN(auto session, manager->BeginCall("bench", id, prompt, g));
  LLMS_RETURN_IF_ERROR(session->Step(nullptr).status());
  return session->stats();  // the session ends without End: the context goes back
}

struct PathRuns {
  PathRuns(const char* n, ReadPath p, bool e) : name(n), path(p), evict(e) {}
  const char* name;
  ReadPath path;
  bool evict;
  std::vector<double> first_token, ready;
  size_t bulk_choices = 0, loaded = 0, recomputed = 0, bytes = 0;
};

// Prefills `tokens` tokens of deterministic text into a new context and writes it to flash.
StatusOr<uint64_t> BuildContext(KvManager* manager, const ModelConfig& config, size_t tokens) {
  std::vector<int32_t> text(tokens);
  const size_t vocab = config.vocab_size;
  text[0] = 1;
  for (size_t i = 1; i < text.size(); ++i)
    text[i] = static_cast<int32_t>(3 + (i * 7919) % (vocab - 3));
  LLMS_ASSIGN_OR_RETURN(uint64_t id, manager->CreateContext("bench", {}));
  GenerateOptions g;
  g.max_tokens = 0;
  std::fprintf(stderr, "prefilling %zu tokens...\n", text.size());
  LLMS_RETURN_IF_ERROR(manager->Call("bench", id, text, g, nullptr).status());
  LLMS_RETURN_IF_ERROR(manager->Flush());
  return id;
}

// One cell: the context restored behind `prompt_tokens` new tokens on `flash`, every path
// measured `repetitions` times, interleaved.
Status MeasureCell(KvManager* manager, ChunkStore* store, uint64_t id, const FlashClass& flash,
                   size_t prompt_tokens, const RestoreBenchOptions& o, double prefill) {
  std::vector<int32_t> prompt(std::max<size_t>(prompt_tokens, 1));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(5 + i % 97);
  std::vector<PathRuns> runs = {{"resident", ReadPath::kPlanned, false},
                                {"planned", ReadPath::kPlanned, true},
                                {"bulk", ReadPath::kBulk, true},
                                {"pipelined", ReadPath::kPipelined, true}};
  std::vector<double> layer_reads, bandwidth;
  for (int r = 0; r < o.repetitions; ++r) {
    for (PathRuns& p : runs) {  // interleaved, so drift in the machine hits every path alike
      manager->SetReadPath(p.path);
      if (!p.evict) LLMS_RETURN_IF_ERROR(MeasureCall(manager, id, prompt, true).status());
      LLMS_ASSIGN_OR_RETURN(CallStats s, MeasureCall(manager, id, prompt, p.evict));
      p.first_token.push_back(s.first_token_seconds);
      p.ready.push_back(s.ready_seconds);
      p.bulk_choices += s.bulk_read;
      p.loaded = s.chunks_loaded;
      p.recomputed = s.chunks_recomputed;
      p.bytes = s.bytes_read;
    }
    if (!flash.shaped()) {  // the disk as it is: its bandwidth on the very bytes, now
      LLMS_RETURN_IF_ERROR(manager->EvictAll());
      LLMS_ASSIGN_OR_RETURN(double bw, RangeReadBandwidth(store, id));
      bandwidth.push_back(bw);
      LLMS_ASSIGN_OR_RETURN(double layered, LayerReadSeconds(store, id));
      layer_reads.push_back(layered);
    }
  }
  manager->SetReadPath(ReadPath::kPlanned);
  std::printf("flash %s, new prompt of %zu tokens:\n", flash.name.c_str(), prompt.size());
  const double resident = Median(runs[0].first_token);
  for (const PathRuns& p : runs) {
    std::string chose;
    if (p.evict && p.path == ReadPath::kPlanned) {
      chose = " - the planner read in bulk " + std::to_string(p.bulk_choices) + " of " +
              std::to_string(p.first_token.size()) + " times";
    }
    std::printf(
        "  %-9s first token %8.1f ms (%.2fx resident), ready %7.1f ms; loaded %zu chunks "
        "(%.1f MiB), recomputed %zu%s\n",
        p.name, 1e3 * Median(p.first_token), Median(p.first_token) / resident,
        1e3 * Median(p.ready), p.loaded, p.bytes / 1048576.0, p.recomputed, chose.c_str());
  }
  const bool bulk_faster = Median(runs[2].first_token) <= Median(runs[3].first_token);
  const size_t read_bytes = runs[2].bytes;  // bulk reads every stored chunk
  const double bw = flash.shaped() ? flash.read_bytes_per_second : Median(bandwidth);
  const double bound = static_cast<double>(read_bytes) / bw;
  std::printf(
      "  => faster forced path: %s; planned first token %.2fx resident; bulk ready %.1f ms = "
      "%.2fx the read bound (%.1f MiB at %.2f GB/s%s); recompute from text %.0f ms\n",
      bulk_faster ? "bulk" : "pipelined", Median(runs[1].first_token) / resident,
      1e3 * Median(runs[2].ready), Median(runs[2].ready) / bound, read_bytes / 1048576.0, bw / 1e9,
      flash.shaped() ? ", the class's" : ", 1 MiB direct reads, measured now", 1e3 * prefill);
  if (!layer_reads.empty()) {
    std::printf("  layer-wise reads of the same chunks alone: %.1f ms\n",
                1e3 * Median(layer_reads));
  }
  return Status::Ok();
}

void PrintCost(const FlashClass& flash, const CostModel& c) {
  std::printf(
      "flash class %s; cost model: compute %.2f ms/token, attention %.3f us/token-pair, layer "
      "reads %.2f GB/s + %.0f us/request, bulk reads %.2f GB/s, verify %.1f GB/s\n",
      flash.name.c_str(), c.compute_seconds_per_token * 1e3, c.attend_seconds_per_token_pair * 1e6,
      1e-9 / c.read_seconds_per_byte, c.read_seconds_per_request * 1e6,
      1e-9 / c.bulk_read_seconds_per_byte, 1e-9 / c.verify_seconds_per_byte);
}

}  // namespace

Status RunRestoreBench(const RestoreBenchOptions& o) {
  const auto policy = Policy::ByName(o.policy);
  if (!policy) return Status::InvalidArgument("unknown policy '" + o.policy + "'");
  std::vector<FlashClass> classes;
  for (const std::string& name : o.flash) {
    LLMS_ASSIGN_OR_RETURN(FlashClass flash, ParseFlashClass(name));
    classes.push_back(std::move(flash));
  }
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
  KvManagerOptions mo;
  mo.policy = *policy;
  mo.budget_bytes = size_t{8} << 30;
  mo.background_writer = false;
  // The context is built once, on this machine's disk; every class then reads the same store.
  uint64_t id = 0;
  double prefill = 0;
  {
    LLMS_ASSIGN_OR_RETURN(auto store, ChunkStore::Open(Env::Default(), dir, ChunkStore::Options{}));
    mo.measure_cost = false;
    LLMS_ASSIGN_OR_RETURN(auto manager, KvManager::Open(engine.get(), store.get(), mo));
    const Stopwatch timer;
    LLMS_ASSIGN_OR_RETURN(id, BuildContext(manager.get(), model->config(), o.context_tokens));
    prefill = timer.Seconds();
    LLMS_ASSIGN_OR_RETURN(ContextInfo info, manager->GetContextInfo("bench", id));
    std::printf(
        "context: %zu tokens, %zu chunks (f16 %d, int8 %d, int4 %d, int2 %d), prefill "
        "(= recompute from text) %.2f s\n",
        info.tokens, info.chunks, info.chunks_per_level[0], info.chunks_per_level[1],
        info.chunks_per_level[2], info.chunks_per_level[3], prefill);
  }
  for (const FlashClass& flash : classes) {
    std::unique_ptr<ShapedEnv> shaped;
    if (flash.shaped()) shaped = std::make_unique<ShapedEnv>(Env::Default(), flash);
    LLMS_ASSIGN_OR_RETURN(auto store, ChunkStore::Open(shaped ? shaped.get() : Env::Default(), dir,
                                                       ChunkStore::Options{}));
    mo.measure_cost = true;
    std::fprintf(stderr, "measuring the cost model on flash class %s...\n", flash.name.c_str());
    LLMS_ASSIGN_OR_RETURN(auto manager, KvManager::Open(engine.get(), store.get(), mo));
    PrintCost(flash, manager->cost());
    for (size_t prompt : o.prompt_tokens) {
      LLMS_RETURN_IF_ERROR(MeasureCell(manager.get(), store.get(), id, flash, prompt, o, prefill));
    }
  }
  if (o.data_dir.empty()) std::filesystem::remove_all(dir, ec);
  return Status::Ok();
}

}  // namespace llms
