// The restore benchmark behind `llms bench --workload restore`: a long context is prefilled,
// written to the flash store and evicted; then one call brings it back. It prints the time to
// ready against (a) reading the same bytes at the direct-I/O bandwidth measured in the same run
// and (b) recomputing the context from its text (../shared/spec/LLMS.md §4).
#pragma once

#include <string>

#include "base/status.h"

namespace llms {

struct RestoreBenchOptions {
  std::string model;     // GGUF file
  std::string data_dir;  // store directory (default: a fresh temporary one)
  size_t context_tokens = 2048;
  int threads = 0;
  std::string policy = "llms";
  int repetitions = 3;
};

Status RunRestoreBench(const RestoreBenchOptions& options);

}  // namespace llms
