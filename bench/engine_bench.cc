#include "bench/engine_bench.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "base/thread_pool.h"
#include "bench/bench_util.h"
#include "bench/read_probe.h"
#include "engine/engine.h"
#include "model/llama_model.h"
#include "model/synthetic_model.h"

namespace llms {
namespace {

using bench::Median;

std::string DefaultSynthDir() {
  if (const char* dir = std::getenv("LLMS_SYNTH_DIR"); dir != nullptr && *dir) return dir;
  if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache != nullptr && *cache) {
    return std::string(cache) + "/llms/synth";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home) {
    return std::string(home) + "/.cache/llms/synth";
  }
  return "/tmp/llms-synth";
}

// The synthetic model file for (shape, type), written on first use.
StatusOr<std::string> SyntheticModelPath(const EngineBenchOptions& o, const std::string& type) {
  const auto shape = FindSyntheticShape(o.shape);
  if (!shape) return Status::InvalidArgument("unknown synthetic shape '" + o.shape + "'");
  const auto wtype = ParseWeightType(type);
  if (!wtype) return Status::InvalidArgument("unknown weight type '" + type + "'");
  const std::string dir = o.synth_dir.empty() ? DefaultSynthDir() : o.synth_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  const std::string path = dir + "/" + o.shape + "-" + type + ".gguf";
  if (Env::Default()->FileExists(path)) return path;
  std::fprintf(stderr, "writing synthetic model %s (once)\n", path.c_str());
  SyntheticOptions so;
  so.type = *wtype;
  so.progress = [](size_t done, size_t total) {
    std::fprintf(stderr, "\r  tensor %zu/%zu", done, total);
    if (done == total) std::fputc('\n', stderr);
  };
  LLMS_RETURN_IF_ERROR(WriteSyntheticModel(Env::Default(), path, *shape, so));
  return path;
}

std::vector<int32_t> PromptTokens(size_t n, size_t vocab) {
  std::vector<int32_t> t(n);
  t[0] = 1;
  for (size_t i = 1; i < n; ++i) t[i] = static_cast<int32_t>(3 + (i * 7919) % (vocab - 3));
  return t;
}

struct Measured {
  double prefill_tok_s, decode_tok_s, attention_share, attention_ms;
};

StatusOr<Measured> MeasureOnce(Engine* engine, const EngineBenchOptions& o, size_t context,
                               KvLevel kv) {
  const size_t vocab = engine->config().vocab_size;
  std::vector<float> logits;
  // Prefill: one pass over a fresh prompt.
  auto tokens = PromptTokens(o.prefill_tokens, vocab);
  auto cache = engine->NewCache();
  Stopwatch start;
  LLMS_RETURN_IF_ERROR(engine->Forward(cache.get(), tokens, {}, &logits));
  const double prefill = start.Seconds();
  // Decode: after a `context`-token prompt, one token per pass.
  tokens = PromptTokens(context, vocab);
  cache = engine->NewCache();
  LLMS_RETURN_IF_ERROR(engine->Forward(cache.get(), tokens, {}, &logits));
  for (size_t c = 0; c + 1 < cache->num_chunks(); ++c) {
    LLMS_RETURN_IF_ERROR(cache->chunk(c)->ConvertTo(kv));
  }
  engine->ResetCounters();
  start.Restart();
  for (size_t i = 0; i < o.decode_tokens; ++i) {
    tokens.push_back(static_cast<int32_t>(3 + (i * 31) % (vocab - 3)));
    LLMS_RETURN_IF_ERROR(engine->Forward(cache.get(), tokens, {}, &logits));
  }
  const double decode = start.Seconds();
  return Measured{
      static_cast<double>(o.prefill_tokens) / prefill,
      static_cast<double>(o.decode_tokens) / decode, engine->counters().attention_seconds / decode,
      engine->counters().attention_seconds * 1e3 / static_cast<double>(o.decode_tokens)};
}

}  // namespace

double MeasureReadBandwidth(int threads, size_t bytes) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buffer(n, 1.0f);  // touches every page before timing
  ThreadPool pool(threads);
  std::vector<float> sinks(static_cast<size_t>(threads) * 16);  // one cache line each
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    Stopwatch start;
    pool.Run(static_cast<size_t>(threads), [&](size_t task, int) {
      const size_t begin = n * task / static_cast<size_t>(threads);
      const size_t end = n * (task + 1) / static_cast<size_t>(threads);
      sinks[task * 16] = SumFloats(buffer.data() + begin, end - begin);
    });
    best = std::max(best, static_cast<double>(n * sizeof(float)) / start.Seconds() / 1e9);
  }
  return best;
}

StatusOr<std::vector<EngineBenchRow>> RunEngineBench(const EngineBenchOptions& o) {
  std::vector<KvLevel> levels;
  for (const std::string& name : o.kv) {
    const auto level = ParseKvLevel(name);
    if (!level)
      return Status::InvalidArgument("kv '" + name + "': expected f16, int8, int4 or int2");
    levels.push_back(*level);
  }
  if (levels.empty()) levels.push_back(KvLevel::kF16);
  const size_t bw_bytes = o.quick ? (size_t{256} << 20) : (size_t{1} << 30);
  std::vector<double> bandwidth;
  for (int t : o.threads) {
    bandwidth.push_back(MeasureReadBandwidth(t, bw_bytes));
    std::printf("memory read bandwidth, %d thread%s: %.1f GB/s\n", t, t == 1 ? "" : "s",
                bandwidth.back());
  }
  std::vector<std::pair<std::string, std::string>> models;  // (path, type label)
  if (!o.models.empty()) {
    for (const std::string& m : o.models) models.emplace_back(m, "");
  } else {
    for (const std::string& type : o.types) {
      LLMS_ASSIGN_OR_RETURN(std::string path, SyntheticModelPath(o, type));
      models.emplace_back(path, type);
    }
  }
  std::printf("%-28s %-5s %3s %5s %4s %12s %11s %10s %8s %7s %11s\n", "model", "type", "thr", "ctx",
              "kv", "prefill t/s", "decode t/s", "GB/s", "of max", "attn", "attn ms/tok");
  std::vector<EngineBenchRow> rows;
  for (const auto& [path, type] : models) {
    LLMS_ASSIGN_OR_RETURN(auto model, LlamaModel::Load(Env::Default(), path));
    for (size_t ti = 0; ti < o.threads.size(); ++ti) {
      // The machine's bandwidth drifts (other tenants), so it is probed again before every
      // model and the highest figure so far is the one decode is compared with.
      if (&path != &models.front().first) {
        bandwidth[ti] = std::max(bandwidth[ti], MeasureReadBandwidth(o.threads[ti], bw_bytes));
      }
      EngineOptions eo;
      eo.threads = o.threads[ti];
      LLMS_ASSIGN_OR_RETURN(auto engine, Engine::Create(model.get(), eo));
      for (size_t context : o.contexts) {
        const size_t n = levels.size();
        std::vector<std::vector<double>> prefill(n), decode(n), share(n), attention_ms(n);
        // Repetitions interleave the levels, so a drift of the machine hits them alike.
        for (int r = 0; r < (o.quick ? 1 : o.repetitions); ++r) {
          for (size_t k = 0; k < n; ++k) {
            LLMS_ASSIGN_OR_RETURN(Measured m, MeasureOnce(engine.get(), o, context, levels[k]));
            prefill[k].push_back(m.prefill_tok_s);
            decode[k].push_back(m.decode_tok_s);
            share[k].push_back(m.attention_share);
            attention_ms[k].push_back(m.attention_ms);
          }
        }
        for (size_t k = 0; k < n; ++k) {
          EngineBenchRow row;
          row.kv = KvLevelName(levels[k]);
          row.model = std::filesystem::path(path).filename().string();
          row.type =
              type.empty() ? GetWeightTypeInfo(model->weights().layers[0].wq.type)->name : type;
          row.threads = o.threads[ti];
          row.context = context;
          row.prefill_tok_s = Median(prefill[k]);
          row.decode_tok_s = Median(decode[k]);
          const KvLayout& L = engine->kv_layout();
          const double kv_bytes = static_cast<double>(context) / L.chunk_tokens *
                                  L.LayerBytes(levels[k]) * model->config().n_layers;
          row.decode_gb_s =
              (static_cast<double>(model->WeightBytes()) + kv_bytes) * row.decode_tok_s / 1e9;
          row.bandwidth_fraction = row.decode_gb_s / bandwidth[ti];
          row.attention_share = Median(share[k]);
          row.attention_ms = Median(attention_ms[k]);
          std::printf("%-28s %-5s %3d %5zu %4s %12.1f %11.2f %10.1f %7.0f%% %6.1f%% %11.3f",
                      row.model.c_str(), row.type.c_str(), row.threads, row.context, row.kv.c_str(),
                      row.prefill_tok_s, row.decode_tok_s, row.decode_gb_s,
                      100 * row.bandwidth_fraction, 100 * row.attention_share, row.attention_ms);
          if (k > 0 && row.attention_ms > 0) {
            std::printf("  attention %.2fx faster than %s",
                        rows[rows.size() - k].attention_ms / row.attention_ms,
                        rows[rows.size() - k].kv.c_str());
          }
          std::printf("\n");
          std::fflush(stdout);
          rows.push_back(row);
        }
      }
    }
  }
  // Rows printed before a later probe found more bandwidth were compared with less: restate
  // every row against the highest figure of the whole run.
  for (size_t ti = 0; ti < o.threads.size(); ++ti) {
    std::printf("highest read bandwidth probed, %d thread%s: %.1f GB/s\n", o.threads[ti],
                o.threads[ti] == 1 ? "" : "s", bandwidth[ti]);
  }
  for (EngineBenchRow& row : rows) {
    const size_t ti = static_cast<size_t>(
        std::find(o.threads.begin(), o.threads.end(), row.threads) - o.threads.begin());
    row.bandwidth_fraction = row.decode_gb_s / bandwidth[ti];
    std::printf("  %s %s %d thread%s ctx %zu: decode %.1f GB/s = %.0f%% of it\n", row.model.c_str(),
                row.kv.c_str(), row.threads, row.threads == 1 ? "" : "s", row.context,
                row.decode_gb_s, 100 * row.bandwidth_fraction);
  }
  return rows;
}

}  // namespace llms
