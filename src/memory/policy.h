// Policy: every strategy choice of the memory manager in one value, so that the paper's system,
// its ablations and the baselines of ../shared/spec/LLMS.md §6 run the same code with a different
// policy, never a copy of it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/kv_format.h"  // KvLevel

namespace llms {

enum class CompressionMode {
  kUniform,              // every completed chunk at `uniform_level` (f16 = no compression)
  kToleranceGlobal,      // levels from density, all contexts ranked together
  kTolerancePerContext,  // levels from density, each context ranked alone (the paper's mode)
};

enum class EvictionOrder {
  kLctru,  // one LRU queue per level, heaviest level first (LLMS)
  kLru,    // one LRU queue
};

enum class EvictionUnit { kChunk, kContext };

enum class RestoreMode {
  kPipelined,      // load some chunks and recompute others, layer by layer, with the new prompt
  kLoadThenRun,    // load every missing chunk, then run the prompt (no overlap, no recompute)
  kRecomputeOnly,  // recompute every missing chunk from its text
};

struct Policy {
  std::string name = "llms";
  CompressionMode compression = CompressionMode::kToleranceGlobal;
  KvLevel uniform_level = KvLevel::kInt8;
  double target_bits = 4.0;        // tolerance modes: average nominal bits per value
  bool ahead_of_time_swap = true;  // write changed chunks when a call returns
  bool keep_on_flash = true;       // false: an evicted chunk is dropped (LMK)
  EvictionOrder order = EvictionOrder::kLctru;
  EvictionUnit unit = EvictionUnit::kChunk;
  RestoreMode restore = RestoreMode::kPipelined;

  // The paper's system and its ablations.
  static Policy Llms();
  static Policy NoCompression();  // INT8 everywhere (the paper's default KV), rest as LLMS
  static Policy NoPipeline();     // load everything, then run
  static Policy NoLifecycle();    // no ahead-of-time swap-out, plain LRU
  static Policy LruOnly();        // ahead-of-time swap-out kept, plain LRU instead of LCTRU
  // Baselines.
  static Policy Lmk();      // kill whole contexts; recompute from text
  static Policy Swap();     // whole contexts out and in, INT8
  static Policy VllmS();    // 16-token blocks, f16, LRU, written on eviction
  static Policy VllmSQ();   // vLLM-S with INT8 blocks
  static Policy Int4Lru();  // vLLM-S with INT4 blocks: static compression, no other technique

  static const std::vector<std::string>& Names();
  static std::optional<Policy> ByName(std::string_view name);
};

}  // namespace llms
