// Private state of KvManager, shared by its two source files (kv_manager.cc: contexts, calls and
// compression; kv_manager_io.cc: eviction, the background writer and the restore pipeline).
#pragma once

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "memory/kv_manager.h"

namespace llms {

struct KvManager::ChunkState {
  KvLevel level = KvLevel::kF16;  // assigned level (of the resident copy, or of the flash copy)
  bool dirty = true;              // the resident copy is newer than the flash copy
  bool on_flash = false;          // `meta` names a stored copy
  ChunkMeta meta;
  uint64_t version = 0;  // bumps whenever the resident copy changes
  float density = 0;
  std::vector<float> prob_sum, prob_count;  // statistics while not resident
};

// While a call runs, the engine thread changes `tokens` and `cache` without holding mu_; other
// threads then read the snapshot taken when the call started.
struct KvManager::Context {
  uint64_t id = 0;
  std::string app;
  std::string origin;
  int64_t last_used_unix_ms = 0;
  std::string damage;                // non-empty: quarantined (see ContextInfo::damage)
  std::vector<int32_t> tokens;       // the text: durable in the store
  std::unique_ptr<KvCache> cache;    // KV of tokens [0, cache->num_tokens())
  std::vector<ChunkState> chunks;    // one per chunk of the cache
  ContextInfo busy_info;             // during a call: the state at its start
  std::vector<int32_t> busy_tokens;  // during a call: the text at its start
};

struct KvManager::WriteJob {
  uint64_t context = 0;
  uint32_t index = 0;
  uint64_t version = 0;
  ChunkMeta meta;
  std::vector<uint8_t> bytes;
};

// The restore of one call: chunks read by the I/O thread while the pass computes.
struct KvManager::Restore {
  std::vector<size_t> load;       // chunk indices read from flash
  std::vector<ChunkMeta> metas;   // their stored copies, parallel to `load`
  std::vector<size_t> recompute;  // chunk indices rebuilt from text
  bool bulk = false;              // `load` is read whole before the pass (RestorePlan)
  std::mutex mu;
  std::condition_variable cv;
  size_t layers_done = 0;       // guarded by mu
  std::vector<size_t> failed;   // chunk indices whose read failed; guarded by mu
  Status status;                // first read failure; guarded by mu
  double io_start_seconds = 0;  // when reading began, from the call's start
  double io_seconds = 0;        // reading time until the last layer arrived
  std::thread io;
};

// Statistics of a chunk packed into ChunkMeta::stats: prob_sum then prob_count, f32 each.
inline std::vector<uint8_t> PackStats(const std::vector<float>& sum,
                                      const std::vector<float>& count) {
  std::vector<uint8_t> out((sum.size() + count.size()) * sizeof(float));
  std::memcpy(out.data(), sum.data(), sum.size() * sizeof(float));
  std::memcpy(out.data() + sum.size() * sizeof(float), count.data(), count.size() * sizeof(float));
  return out;
}

inline void UnpackStats(const std::vector<uint8_t>& in, size_t tokens, std::vector<float>* sum,
                        std::vector<float>* count) {
  sum->assign(tokens, 0.0f);
  count->assign(tokens, 0.0f);
  if (in.size() != 2 * tokens * sizeof(float)) return;  // unknown layout: start learning anew
  std::memcpy(sum->data(), in.data(), tokens * sizeof(float));
  std::memcpy(count->data(), in.data() + tokens * sizeof(float), tokens * sizeof(float));
}

inline size_t CeilDiv(size_t a, size_t b) { return (a + b - 1) / b; }

inline int64_t UnixMillisNow() { return Clock::Real()->UnixMillis(); }

}  // namespace llms
