// Subcommands of the `llms` program. Each Add* function declares its options on the CLI11 app
// and returns the function that runs it (returning the process exit code).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/status.h"
#include "tools/common/model_options.h"

namespace llms::cli {

using Runner = std::function<int()>;

Runner AddGenerate(CLI::App& app);
Runner AddPerplexity(CLI::App& app);
Runner AddSynth(CLI::App& app);
Runner AddBench(CLI::App& app);
Runner AddReport(CLI::App& app);
Runner AddTrace(CLI::App& app);
// new, call, chat, list, delete, stats: clients of a running llmsd. Returns (name, runner).
std::vector<std::pair<std::string, Runner>> AddServiceCommands(CLI::App& app);

}  // namespace llms::cli
