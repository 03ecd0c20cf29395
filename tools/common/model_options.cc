#include "tools/common/model_options.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace llms::cli {

std::string DefaultModelPath() {
  const std::string relative = "shared/models/stories260K.gguf";
  if (const char* env = std::getenv("LLMS_MODEL"); env != nullptr && *env != '\0') return env;
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> starts = {fs::current_path(ec)};
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) starts.push_back(fs::path(std::string(exe, static_cast<size_t>(n))).parent_path());
  for (const fs::path& start : starts) {
    // The repository sits beside ../shared; walk up from here to find it.
    for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
      const fs::path candidate = dir.parent_path() / relative;
      if (fs::exists(candidate, ec)) return candidate.string();
      if (dir == dir.parent_path()) break;
    }
  }
  return "../" + relative;
}

void AddModelOptions(CLI::App* cmd, ModelOptions* options) {
  options->model = DefaultModelPath();
  cmd->add_option("-m,--model", options->model, "GGUF model file")->capture_default_str();
  cmd->add_option("-t,--threads", options->threads,
                  "compute threads (0: one per core; more than the cores only adds contention)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--chunk-tokens", options->chunk_tokens,
                  "tokens per KV chunk, a multiple of 8 (16: the paper's best; larger chunks "
                  "cost less bookkeeping but compress and swap more coarsely)")
      ->check(CLI::Range(8, 256))
      ->capture_default_str();
}

StatusOr<LoadedModel> LoadModel(const ModelOptions& options) {
  LoadedModel loaded;
  LLMS_ASSIGN_OR_RETURN(loaded.model, LlamaModel::Load(Env::Default(), options.model));
  EngineOptions engine_options;
  engine_options.threads = options.threads;
  engine_options.chunk_tokens = options.chunk_tokens;
  LLMS_ASSIGN_OR_RETURN(loaded.engine, Engine::Create(loaded.model.get(), engine_options));
  return loaded;
}

StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open text file " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int Fail(const std::string& command, const Status& status) {
  std::fprintf(stderr, "llms %s: %s\n", command.c_str(), status.ToString().c_str());
  return 1;
}

}  // namespace llms::cli
