// `llms bench`: engine speed (pending).
#include "tools/llms/commands.h"

namespace llms::cli {
Runner AddBench(CLI::App& app) {
  app.add_subcommand("bench", "measure prefill and decode speed");
  return [] { return Fail("bench", Status::Unavailable("not built yet")); };
}
}  // namespace llms::cli
