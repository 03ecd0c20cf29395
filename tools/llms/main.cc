// llms: the command line. One program with subcommands, as git and ollama have.
#include <cstdio>
#include <exception>

#include "tools/llms/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"llms: an on-device LLM system service (engine tools and the llmsd client)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "llms 0.1.0");
  const llms::cli::Runner generate = llms::cli::AddGenerate(app);
  const llms::cli::Runner perplexity = llms::cli::AddPerplexity(app);
  const llms::cli::Runner synth = llms::cli::AddSynth(app);
  const llms::cli::Runner bench = llms::cli::AddBench(app);
  const llms::cli::Runner report = llms::cli::AddReport(app);
  const llms::cli::Runner trace = llms::cli::AddTrace(app);
  const auto service = llms::cli::AddServiceCommands(app);
  // CLI11 reports parse errors by exception; they stop here, at the edge.
  CLI11_PARSE(app, argc, argv);
  try {
    if (app.got_subcommand("generate")) return generate();
    if (app.got_subcommand("perplexity")) return perplexity();
    if (app.got_subcommand("synth")) return synth();
    if (app.got_subcommand("bench")) return bench();
    if (app.got_subcommand("report")) return report();
    if (app.got_subcommand("trace")) return trace();
    for (const auto& [name, run] : service) {
      if (app.got_subcommand(name)) return run();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llms: internal error: %s\n", e.what());
    return 2;
  }
  return 1;
}
