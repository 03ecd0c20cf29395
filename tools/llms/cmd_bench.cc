// `llms bench`: memory bandwidth, then prefill and decode speed (bench/engine_bench.h).
#include <memory>

#include "bench/engine_bench.h"
#include "bench/restore_bench.h"
#include "env/flash_device.h"
#include "tools/llms/commands.h"

namespace llms::cli {

Runner AddBench(CLI::App& app) {
  auto o = std::make_shared<EngineBenchOptions>();
  auto r = std::make_shared<RestoreBenchOptions>();
  auto workload = std::make_shared<std::string>("engine");
  CLI::App* cmd =
      app.add_subcommand("bench", "measure memory bandwidth, prefill and decode speed in one run");
  cmd->add_option("-m,--model", o->models,
                  "model files (repeatable); default: synthetic models of --shape in --types");
  cmd->add_option("--shape", o->shape,
                  "synthetic shape: tinyllama, llama2-7b, llama2-7b-8l or small")
      ->capture_default_str();
  cmd->add_option("--types", o->types, "synthetic weight types")->capture_default_str();
  cmd->add_option("--synth-dir", o->synth_dir,
                  "where synthetic models are cached (default: $LLMS_SYNTH_DIR, else "
                  "~/.cache/llms/synth)");
  cmd->add_option("-t,--threads", o->threads, "thread counts to run")->capture_default_str();
  cmd->add_option("-c,--context", o->contexts, "context lengths for decode")->capture_default_str();
  cmd->add_option("--prefill", o->prefill_tokens, "prompt tokens for the prefill measurement")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--decode", o->decode_tokens, "decode steps per measurement")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--repetitions", o->repetitions, "runs per figure; the median is printed")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--kv", o->kv,
                  "KV precisions of completed chunks during decode (several: each row at each, "
                  "repetitions interleaved, attention compared with the first)")
      ->capture_default_str();
  cmd->add_flag("--quick", o->quick, "one repetition, small bandwidth buffer (smoke test)");
  cmd->add_option("--workload", *workload,
                  "engine: bandwidth, prefill and decode; restore: bring a long context back "
                  "from flash (needs one -m model)")
      ->check(CLI::IsMember({"engine", "restore"}))
      ->capture_default_str();
  cmd->add_option("--restore-tokens", r->context_tokens, "restore: context length")
      ->capture_default_str();
  cmd->add_option("--policy", r->policy, "restore: memory policy (llms, vllm-s, swap, ...)")
      ->capture_default_str();
  cmd->add_option("--data-dir", r->data_dir, "restore: store directory (default: temporary)");
  cmd->add_option("--prompt-tokens", r->prompt_tokens,
                  "restore: new prompt of the call that brings the context back (several: "
                  "each is measured)")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--flash", r->flash,
                  "restore: flash classes of the store (several: each is measured): " +
                      FlashClassNames() + " (docs/flash_classes.md)")
      ->capture_default_str();
  return [o, r, workload] {
    if (*workload == "restore") {
      if (o->models.size() != 1) {
        return Fail("bench", Status::InvalidArgument("--workload restore needs one -m MODEL"));
      }
      r->model = o->models[0];
      r->threads = o->threads.empty() ? 0 : o->threads.back();
      r->repetitions = o->quick ? 1 : o->repetitions;
      Status s = RunRestoreBench(*r);
      return s.ok() ? 0 : Fail("bench", s);
    }
    auto rows = RunEngineBench(*o);
    return rows.ok() ? 0 : Fail("bench", rows.status());
  };
}

}  // namespace llms::cli
