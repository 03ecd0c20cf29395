// `llms perplexity`: mean teacher-forced loss and perplexity of a text file, by the golden
// protocol (consecutive windows, each starting with BOS, every prediction scored).
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "engine/perplexity.h"
#include "tools/llms/commands.h"

namespace llms::cli {
namespace {

struct PerplexityFlags {
  ModelOptions model;
  std::string file;
  size_t context = 512;
  size_t windows = 0;
  std::string kv = "f16";
};

int RunPerplexity(const PerplexityFlags& f) {
  const auto level = ParseKvLevel(f.kv);
  if (!level)
    return Fail("perplexity", Status::InvalidArgument("--kv must be f16, int8, int4 or int2"));
  StatusOr<std::string> text = ReadTextFile(f.file);
  if (!text.ok()) return Fail("perplexity", text.status());
  auto loaded = LoadModel(f.model);
  if (!loaded.ok()) return Fail("perplexity", loaded.status());
  Engine* engine = loaded->engine.get();
  const std::vector<int32_t> stream = engine->model().tokenizer().Encode(*text, false);
  LossOptions options;
  options.window = f.context;
  options.max_windows = f.windows;
  options.kv_level = *level;
  options.progress = [](size_t done, size_t total) {
    std::fprintf(stderr, "\rwindow %zu/%zu", done, total);
    if (done == total) std::fputc('\n', stderr);
  };
  auto result = EvaluateLoss(engine, stream, options);
  if (!result.ok()) return Fail("perplexity", result.status());
  std::printf("windows %zu, scored tokens %zu, kv %s\n", result->windows, result->scored_tokens,
              f.kv.c_str());
  std::printf("loss %.4f nats/token, perplexity %.3f\n", result->mean_nll, result->perplexity);
  return 0;
}

}  // namespace

Runner AddPerplexity(CLI::App& app) {
  auto flags = std::make_shared<PerplexityFlags>();
  CLI::App* cmd = app.add_subcommand("perplexity", "mean loss and perplexity of a text file");
  AddModelOptions(cmd, &flags->model);
  cmd->add_option("-f,--file", flags->file, "text file to score")->required();
  cmd->add_option("-c,--context", flags->context, "tokens per window, BOS included")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--windows", flags->windows, "score at most this many windows (0: all)")
      ->capture_default_str();
  cmd->add_option("--kv", flags->kv, "KV precision of completed chunks: f16, int8, int4 or int2")
      ->capture_default_str();
  return [flags] { return RunPerplexity(*flags); };
}

}  // namespace llms::cli
