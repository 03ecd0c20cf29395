// `llms synth`: random-weight GGUF models of real shapes (pending the GGUF writer).
#include "tools/llms/commands.h"

namespace llms::cli {
Runner AddSynth(CLI::App& app) {
  app.add_subcommand("synth", "write a random-weight GGUF model of a real shape");
  return [] { return Fail("synth", Status::Unavailable("not built yet")); };
}
}  // namespace llms::cli
