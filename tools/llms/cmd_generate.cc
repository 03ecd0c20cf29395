// `llms generate`: continue a prompt and print the continuation to stdout, timings to stderr.
#include <cstdio>
#include <memory>

#include "engine/generate.h"
#include "tools/llms/commands.h"

namespace llms::cli {
namespace {

struct GenerateFlags {
  ModelOptions model;
  std::string prompt;
  GenerateOptions gen;
  bool no_bos = false;
};

int RunGenerate(const GenerateFlags& f) {
  auto loaded = LoadModel(f.model);
  if (!loaded.ok()) return Fail("generate", loaded.status());
  Engine* engine = loaded->engine.get();
  const Tokenizer& tok = engine->model().tokenizer();
  const std::vector<int32_t> prompt = tok.Encode(f.prompt, !f.no_bos);
  auto cache = engine->NewCache();
  std::vector<int32_t> context;
  auto result = Generate(engine, cache.get(), &context, prompt, f.gen, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);  // the text ends before the timings on stderr
  if (!result.ok()) return Fail("generate", result.status());
  const size_t decoded = result->tokens.size() > 0 ? result->tokens.size() - 1 : 0;
  std::fprintf(stderr,
               "prompt: %zu tokens in %.3f s (%.1f tok/s); generated: %zu tokens, %zu decode "
               "steps in %.3f s (%.1f tok/s); stop: %s; threads: %d\n",
               result->prompt_tokens, result->prefill_seconds,
               result->prompt_tokens / std::max(result->prefill_seconds, 1e-9),
               result->tokens.size(), decoded, result->decode_seconds,
               decoded / std::max(result->decode_seconds, 1e-9), result->stop_reason.c_str(),
               engine->threads());
  return 0;
}

}  // namespace

Runner AddGenerate(CLI::App& app) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "continue a prompt with the model");
  AddModelOptions(cmd, &flags->model);
  SamplingOptions& s = flags->gen.sampling;
  cmd->add_option("-p,--prompt", flags->prompt, "prompt text (empty: start from BOS alone)");
  cmd->add_option("-n,--max-tokens", flags->gen.max_tokens, "tokens to generate at most")
      ->capture_default_str();
  cmd->add_option("--temp", s.temperature, "temperature; 0 is greedy (argmax)")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0: off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "keep the smallest set holding this probability (1: off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", s.repeat_penalty,
                  "divide logits of recent tokens by this (1: off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "how many recent tokens the penalty sees")
      ->capture_default_str();
  cmd->add_option("--seed", s.seed, "random seed; the same seed repeats a run")
      ->capture_default_str();
  cmd->add_option("--stop", flags->gen.stop, "stop before this text (repeatable)");
  cmd->add_flag("--no-bos", flags->no_bos, "do not put BOS before the prompt");
  cmd->add_flag(
      "--ignore-eos", [flags](int64_t) { flags->gen.stop_at_eos = false; },
      "keep generating past the end-of-sequence token");
  return [flags] { return RunGenerate(*flags); };
}

}  // namespace llms::cli
