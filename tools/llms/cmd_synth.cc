// `llms synth`: write a random-weight GGUF model of a real shape.
#include <cstdio>
#include <memory>

#include "model/synthetic_model.h"
#include "tools/llms/commands.h"

namespace llms::cli {
namespace {

struct SynthFlags {
  std::string shape = "tinyllama";
  std::string type = "Q8_0";
  std::string output;
  uint64_t seed = 1;
  int threads = 0;
};

int RunSynth(const SynthFlags& f) {
  const auto shape = FindSyntheticShape(f.shape);
  if (!shape) {
    return Fail("synth",
                Status::InvalidArgument("unknown shape '" + f.shape +
                                        "' (known: tinyllama, llama2-7b, llama2-7b-8l, small)"));
  }
  const auto type = ParseWeightType(f.type);
  if (!type) {
    return Fail("synth", Status::InvalidArgument("unknown type '" + f.type +
                                                 "' (known: F32, F16, BF16, Q8_0, Q4_0, Q4_K)"));
  }
  SyntheticOptions options;
  options.type = *type;
  options.seed = f.seed;
  options.threads = f.threads;
  options.progress = [](size_t done, size_t total) {
    std::fprintf(stderr, "\rwriting tensor %zu/%zu", done, total);
    if (done == total) std::fputc('\n', stderr);
  };
  const std::string path =
      f.output.empty() ? "synthetic-" + f.shape + "-" + f.type + ".gguf" : f.output;
  Status s = WriteSyntheticModel(Env::Default(), path, *shape, options);
  if (!s.ok()) return Fail("synth", s);
  std::printf("%s\n", path.c_str());
  return 0;
}

}  // namespace

Runner AddSynth(CLI::App& app) {
  auto flags = std::make_shared<SynthFlags>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "write a random-weight GGUF model of a real shape (for speed and memory work)");
  cmd->add_option(
         "--shape", flags->shape,
         "tinyllama (1.1B), llama2-7b, llama2-7b-8l, llama2-7b-2l (8 or 2 of its layers) or small")
      ->capture_default_str();
  cmd->add_option("--type", flags->type, "weight type: F32, F16, BF16, Q8_0, Q4_0 or Q4_K")
      ->capture_default_str();
  cmd->add_option("-o,--output", flags->output,
                  "output file (default: synthetic-SHAPE-TYPE.gguf in this directory)");
  cmd->add_option("--seed", flags->seed, "random seed; the same seed writes the same bytes")
      ->capture_default_str();
  cmd->add_option("-t,--threads", flags->threads, "quantizing threads (0: one per core)")
      ->capture_default_str();
  return [flags] { return RunSynth(*flags); };
}

}  // namespace llms::cli
