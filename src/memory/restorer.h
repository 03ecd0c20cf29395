// Restorer: brings back the chunks of a context that a call needs, once per call. It plans which
// missing chunks to read and which to recompute (restore_plan.h), allocates the chunks to read
// (from the budget, before any pass runs), reads them in bulk before the pass or a group of
// layers at a time on an I/O thread while the pass computes, and gives the pass its per-layer
// hook, which waits for that layer and times the wait.
#pragma once

#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "base/status.h"
#include "engine/kv_cache.h"
#include "memory/policy.h"
#include "memory/restore_plan.h"
#include "store/chunk_store.h"

namespace llms {

// A chunk of the context that is not resident.
struct MissingChunkState {
  size_t index = 0;
  size_t tokens = 0;                        // positions it covers
  bool readable = false;                    // its stored copy holds exactly this text
  ChunkMeta meta;                           // that copy
  std::vector<float> prob_sum, prob_count;  // its attention statistics
};

// Thread safety: one thread drives it (the call's); its own I/O thread reads beside the pass.
class Restorer {
 public:
  // `store` (may be null with nothing readable) must outlive the restorer.
  Restorer(ChunkStore* store, size_t layers) : store_(store), layers_(layers) {}
  ~Restorer();  // waits for the I/O thread
  Restorer(const Restorer&) = delete;
  Restorer& operator=(const Restorer&) = delete;

  // Decides what to read and what to recompute for a pass of `new_rows` rows that also rebuilds
  // the recomputed chunks (`mean_position`: where those rows sit, for the attention cost).
  void Plan(std::vector<MissingChunkState> missing, size_t new_rows, double mean_position,
            const CostModel& cost, RestoreMode mode, ReadPath path = ReadPath::kPlanned);
  // Allocates the chunks to read in `cache` and starts reading (a bulk read finishes here).
  // The allocations may evict other contexts' chunks, so this runs before the pass. `call`
  // times the call (ready_seconds counts from its start; the reads are timed on its clock).
  Status Start(KvCache* cache, const Stopwatch& call);
  // ForwardOptions::before_layer for the pass: waits for layer `l` of every chunk read.
  std::function<Status(size_t)> BeforeLayer(KvCache* cache);
  // Waits for the I/O thread; then the counters below are final.
  void Finish();
  // Takes the chunks that were being read out of `cache` again (the pass failed).
  void DropLoaded(KvCache* cache) const;

  const std::vector<size_t>& load() const { return load_; }
  const std::vector<size_t>& recompute() const { return recompute_; }
  bool bulk_read() const { return bulk_; }
  // Resident bytes of the chunks to read (what Start allocates).
  size_t load_bytes() const;
  std::vector<size_t> failed();  // chunks whose read failed
  Status status();               // the first read failure
  size_t bytes_read() const;
  double ready_seconds() const { return load_.empty() ? 0.0 : io_start_ + io_seconds_; }
  double io_wait_seconds() const { return io_wait_; }
  // Seconds Start spent reading in bulk (0 for a pipelined read).
  double bulk_read_seconds() const { return bulk_ ? io_seconds_ : 0.0; }

 private:
  void ReadWhole(KvCache* cache);
  void ReadLayerGroup(KvCache* cache, size_t first, size_t count);
  void Record(std::span<const size_t> chunks, std::span<const Status> results, size_t layers_done);

  ChunkStore* const store_;
  const size_t layers_;
  std::vector<size_t> load_, recompute_;  // chunk indices, ascending
  std::vector<ChunkMeta> metas_;          // stored copies of load_, parallel to it
  std::vector<std::vector<float>> sums_, counts_;
  bool bulk_ = false;
  const Clock* clock_ = Clock::Real();  // the call's
  double io_start_ = 0, io_seconds_ = 0, io_wait_ = 0;
  Mutex mu_;
  CondVar cv_;
  size_t layers_done_ GUARDED_BY(mu_) = 0;
  std::vector<size_t> failed_ GUARDED_BY(mu_);
  Status status_ GUARDED_BY(mu_);
  std::thread io_;
};

}  // namespace llms
