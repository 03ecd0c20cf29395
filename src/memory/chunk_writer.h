// ChunkWriter: puts chunk versions on flash. Jobs are queued for a background thread (the
// paper's ahead-of-time swap-out) or written at once (an eviction of a dirty chunk, which must
// be on flash before its memory goes). A job holds the one copy of the chunk's bytes, already in
// an aligned, padded buffer that the store writes as it is. A job whose version is no longer the
// chunk's newest is skipped, so two versions of a chunk never race to the store.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "base/aligned_buffer.h"
#include "base/mutex.h"
#include "base/status.h"
#include "store/chunk_store.h"

namespace llms {

struct WriteJob {
  uint64_t context = 0;
  uint32_t index = 0;
  uint64_t version = 0;  // the chunk version the bytes are of
  ChunkMeta meta;
  AlignedBuffer extent;  // the chunk's bytes, zero-padded to its extent length
};

// The writer asks its owner, under the owner's lock, whether a job is still wanted (its version
// still the chunk's newest and not on flash yet), and tells it what was stored.
struct ChunkWriterHooks {
  std::function<bool(const WriteJob&)> still_wanted;
  std::function<void(const WriteJob&, ChunkMeta stored)> written;
};

// Every Queue without a thread, every WriteNow and every background batch is one store write of
// all its chunks (one data sync, one transaction): a call's changed chunks or an eviction's
// victims cost one sync, not one each.
//
// Thread safety: every method may be called from any thread. Writes are serialized. Lock order:
// the writer's write lock, then the owner's lock inside the hooks; never the reverse.
class ChunkWriter {
 public:
  // `store` must outlive the writer. With `background`, Queue hands jobs to a thread of the
  // writer's; without, Queue writes them before returning (deterministic tests and replay).
  ChunkWriter(ChunkStore* store, bool background, ChunkWriterHooks hooks);
  ~ChunkWriter();  // writes what is queued, then stops

  void Queue(std::vector<WriteJob> jobs);
  // Writes jobs now (the dirty victims of an eviction), as one store batch. The store's error
  // when it fails.
  Status WriteNow(std::vector<WriteJob> jobs);
  // Waits until every queued job has been written. Returns the last failure of a queued write
  // since the previous Flush (a full disk, say), or OK.
  Status Flush();
  // Bytes written and seconds spent writing since the last ResetCallCounters by the writes a
  // call waited for (WriteNow, and Queue without a background thread).
  void ResetCallCounters();
  size_t call_bytes_written();
  double call_write_seconds();

 private:
  void Loop();
  // At most this many queued jobs go into one background batch (bounds one transaction).
  static constexpr size_t kMaxBatchJobs = 256;
  StatusOr<size_t> Write(std::vector<WriteJob> jobs);
  StatusOr<size_t> WriteLocked(std::vector<WriteJob> jobs) REQUIRES(write_mu_);
  Status WriteForCall(std::vector<WriteJob> jobs);

  ChunkStore* const store_;
  const ChunkWriterHooks hooks_;
  Mutex write_mu_;  // held across one job's store write
  Mutex mu_;
  CondVar cv_;
  std::deque<WriteJob> queue_ GUARDED_BY(mu_);
  size_t in_flight_ GUARDED_BY(mu_) = 0;
  Status failure_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  size_t call_bytes_ GUARDED_BY(mu_) = 0;
  double call_seconds_ GUARDED_BY(mu_) = 0;
  std::thread thread_;  // joinable only with `background`
};

}  // namespace llms
