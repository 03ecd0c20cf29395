// What the `llms` command line and the `llmsd` daemon share: the default model, the options of
// a model-running program and loading them into an engine, reading a text file, and failing
// with a message.
#pragma once

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "base/status.h"
#include "engine/engine.h"
#include "model/llama_model.h"

namespace llms::cli {

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
