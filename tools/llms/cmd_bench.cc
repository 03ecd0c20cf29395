// `llms bench`: memory bandwidth, then prefill and decode speed (bench/engine_bench.h).
#include <memory>

#include "bench/engine_bench.h"
#include "tools/llms/commands.h"

namespace llms::cli {

Runner AddBench(CLI::App& app) {
  auto o = std::make_shared<EngineBenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "measure memory bandwidth, prefill and decode speed in one run");
  cmd->add_option("-m,--model", o->models,
                  "model files (repeatable); default: synthetic models of --shape in --types");
  cmd->add_option("--shape", o->shape, "synthetic shape: tinyllama, llama2-7b or small")
      ->capture_default_str();
  cmd->add_option("--types", o->types, "synthetic weight types")->capture_default_str();
  cmd->add_option("--synth-dir", o->synth_dir,
                  "where synthetic models are cached (default: $LLMS_SYNTH_DIR, else "
                  "~/.cache/llms/synth)");
  cmd->add_option("-t,--threads", o->threads, "thread counts to run")->capture_default_str();
  cmd->add_option("-c,--context", o->contexts, "context lengths for decode")
      ->capture_default_str();
  cmd->add_option("--prefill", o->prefill_tokens, "prompt tokens for the prefill measurement")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--decode", o->decode_tokens, "decode steps per measurement")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--repetitions", o->repetitions, "runs per figure; the median is printed")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--kv", o->kv, "KV precision of completed chunks during decode")
      ->capture_default_str();
  cmd->add_flag("--quick", o->quick, "one repetition, small bandwidth buffer (smoke test)");
  return [o] {
    auto rows = RunEngineBench(*o);
    return rows.ok() ? 0 : Fail("bench", rows.status());
  };
}

}  // namespace llms::cli
