// The restore benchmark behind `llms bench --workload restore`: a long context is prefilled,
// written to the flash store and evicted; then a call with a new prompt brings it back, once per
// read path (the cost model's choice, bulk and pipelined, interleaved) and once on the resident
// context. It prints the time to first token of each, which path the planner chose and whether
// it was the faster, and the time to ready against (a) reading the same bytes at the device's
// bandwidth and (b) recomputing the context from its text (../shared/spec/LLMS.md §4). Each
// measured call is rolled back, so every one starts from the same context.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace llms {

struct RestoreBenchOptions {
  std::string model;     // GGUF file
  std::string data_dir;  // store directory (default: a fresh temporary one)
  size_t context_tokens = 2048;
  int threads = 0;
  std::string policy = "llms";
  int repetitions = 3;
  // New prompts of the measured call, and flash classes of the store (env/flash_device.h):
  // every combination is measured, on one context built once.
  std::vector<size_t> prompt_tokens = {1};
  std::vector<std::string> flash = {"native"};
};

Status RunRestoreBench(const RestoreBenchOptions& options);

}  // namespace llms
