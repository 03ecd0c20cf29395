#include "memory/policy.h"

namespace llms {

Policy Policy::Llms() { return Policy{}; }

Policy Policy::NoCompression() {
  Policy p;
  p.name = "llms-no-compression";
  p.compression = CompressionMode::kUniform;
  p.uniform_level = KvLevel::kInt8;
  return p;
}

Policy Policy::NoPipeline() {
  Policy p;
  p.name = "llms-no-pipeline";
  p.restore = RestoreMode::kLoadThenRun;
  return p;
}

Policy Policy::NoLifecycle() {
  Policy p;
  p.name = "llms-no-lifecycle";
  p.ahead_of_time_swap = false;
  p.order = EvictionOrder::kLru;
  return p;
}

Policy Policy::LruOnly() {
  Policy p;
  p.name = "llms-lru";
  p.order = EvictionOrder::kLru;
  return p;
}

Policy Policy::Lmk() {
  Policy p;
  p.name = "lmk";
  p.compression = CompressionMode::kUniform;
  p.uniform_level = KvLevel::kInt8;
  p.ahead_of_time_swap = false;
  p.keep_on_flash = false;
  p.order = EvictionOrder::kLru;
  p.unit = EvictionUnit::kContext;
  p.restore = RestoreMode::kRecomputeOnly;
  return p;
}

Policy Policy::Swap() {
  Policy p;
  p.name = "swap";
  p.compression = CompressionMode::kUniform;
  p.uniform_level = KvLevel::kInt8;
  p.ahead_of_time_swap = false;
  p.order = EvictionOrder::kLru;
  p.unit = EvictionUnit::kContext;
  p.restore = RestoreMode::kLoadThenRun;
  return p;
}

Policy Policy::VllmS() {
  Policy p;
  p.name = "vllm-s";
  p.compression = CompressionMode::kUniform;
  p.uniform_level = KvLevel::kF16;
  p.ahead_of_time_swap = false;
  p.order = EvictionOrder::kLru;
  p.restore = RestoreMode::kLoadThenRun;
  return p;
}

Policy Policy::VllmSQ() {
  Policy p = VllmS();
  p.name = "vllm-sq";
  p.uniform_level = KvLevel::kInt8;
  return p;
}

Policy Policy::Int4Lru() {
  Policy p = VllmS();
  p.name = "int4-lru";
  p.uniform_level = KvLevel::kInt4;
  return p;
}

const std::vector<std::string>& Policy::Names() {
  static const std::vector<std::string> names = {"llms",
                                                 "llms-no-compression",
                                                 "llms-no-pipeline",
                                                 "llms-no-lifecycle",
                                                 "llms-lru",
                                                 "lmk",
                                                 "swap",
                                                 "vllm-s",
                                                 "vllm-sq",
                                                 "int4-lru"};
  return names;
}

std::optional<Policy> Policy::ByName(std::string_view name) {
  for (Policy p : {Llms(), NoCompression(), NoPipeline(), NoLifecycle(), LruOnly(), Lmk(), Swap(),
                   VllmS(), VllmSQ(), Int4Lru()}) {
    if (p.name == name) return p;
  }
  return std::nullopt;
}

}  // namespace llms
