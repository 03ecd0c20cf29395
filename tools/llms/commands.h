// Subcommands of the `llms` program. Each Add* function declares its options on the CLI11 app
// and returns the function that runs it (returning the process exit code).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/status.h"
#include "engine/engine.h"
#include "model/llama_model.h"

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

// The default model: $LLMS_MODEL, else ../shared/models/stories260K.gguf found from the current
// directory or from the directory of this executable upwards.
std::string DefaultModelPath();

// Options every model-running subcommand shares.
struct ModelOptions {
  std::string model;
  int threads = 0;
  size_t chunk_tokens = 16;
};
void AddModelOptions(CLI::App* cmd, ModelOptions* options);

struct LoadedModel {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Engine> engine;
};
// Loads the model and creates an engine; on failure prints "llms: <error>" and returns nullopt.
StatusOr<LoadedModel> LoadModel(const ModelOptions& options);

// The whole text of `path`; NotFound naming it when it cannot be opened.
StatusOr<std::string> ReadTextFile(const std::string& path);

// Prints "llms <command>: <status>" to stderr and returns exit code 1.
int Fail(const std::string& command, const Status& status);

}  // namespace llms::cli
