// The engine benchmark behind `llms bench`: memory read bandwidth of this machine, then prefill
// and decode speed per model, weight type, thread count and context length, all in one run so
// that the ratios between them hold even on a noisy machine. Reports medians.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace llms {

struct EngineBenchOptions {
  // Model files to run. Empty: synthetic TinyLlama-1.1B shapes in `types`, written to
  // `synth_dir` on first use.
  std::vector<std::string> models;
  std::vector<std::string> types = {"Q8_0", "Q4_0", "Q4_K"};
  std::string shape = "tinyllama";
  std::string synth_dir;
  std::vector<int> threads = {1, 2};
  std::vector<size_t> contexts = {128};  // decode measured after a prompt of this many tokens
  size_t prefill_tokens = 128;
  size_t decode_tokens = 16;
  int repetitions = 3;  // the median is reported
  // KV precisions of completed chunks during decode; with several, each row is measured at
  // every one, repetitions interleaved, and attention time is compared with the first.
  std::vector<std::string> kv = {"f16"};
  bool quick = false;  // one repetition and a smaller bandwidth buffer (CI smoke run)
};

struct EngineBenchRow {
  std::string kv;
  std::string model, type;
  int threads = 0;
  size_t context = 0;
  double prefill_tok_s = 0, decode_tok_s = 0;
  double decode_gb_s = 0;         // weight + KV bytes read per decode step x steps/s
  double bandwidth_fraction = 0;  // decode_gb_s / measured read bandwidth at this thread count
  double attention_share = 0;     // fraction of decode time spent in attention
  double attention_ms = 0;        // attention time per decoded token, milliseconds
};

// Runs the benchmark, printing progress to stderr and the table to stdout.
StatusOr<std::vector<EngineBenchRow>> RunEngineBench(const EngineBenchOptions& options);

// Read bandwidth in GB/s (1e9 bytes/s) with `threads` threads over a `bytes` buffer: best of
// several passes.
double MeasureReadBandwidth(int threads, size_t bytes);

}  // namespace llms
