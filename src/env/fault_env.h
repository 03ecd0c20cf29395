// FaultEnv: an Env wrapper for tests that injects the failures a flash store must survive:
// a full disk (ENOSPC past a byte budget), failing fsyncs, and power loss (DropUnsyncedData
// forgets every write not yet synced). It also counts reads, writes and syncs.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "env/env.h"

namespace llms {

// Power loss is modelled for RandomRWFile only: its writes are buffered in memory per path
// until Sync applies them to the base Env, and reads see them on top of the base file (as the
// page cache would). Closing a file keeps its unsynced writes (a process exit does not lose
// page-cache data); DropUnsyncedData discards them. Truncate goes to the base file at once and
// clips unsynced writes past the new size. MapFile, WritableFile and anything reading the base
// Env directly see only synced data. ENOSPC and sync failures apply to both file kinds.
//
// Thread safety: every method may be called from any thread; operations on one path are
// serialized by a per-path mutex (tests do not need the concurrency of the real Env).
class FaultEnv final : public Env {
 public:
  struct Counters {
    uint64_t reads = 0;
    uint64_t writes = 0;
    uint64_t syncs = 0;  // file and directory syncs
    uint64_t bytes_read = 0;
    uint64_t bytes_written = 0;
  };
  static constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

  // `base` must outlive this Env and every file opened through it.
  explicit FaultEnv(Env* base);
  ~FaultEnv() override;

  // Writes fail with ENOSPC (ResourceExhausted) once the bytes written through this Env since
  // construction would exceed `limit`; the failing write applies nothing. kNoLimit by default.
  void SetWriteLimit(uint64_t limit);
  // While true, file and directory syncs fail with IOError and apply nothing.
  void SetSyncFailure(bool fail);
  // Simulates power loss: forgets every unsynced RandomRWFile write in every file of this Env.
  // Files stay open and usable and now read the synced content.
  void DropUnsyncedData();
  Counters counters() const;
  // Called on every write and sync that reaches this Env (`op` is "write" or "sync", `what` the
  // path), before it is applied: a test can check when I/O happens. Set before use.
  void SetObserver(std::function<void(const std::string& op, const std::string& what)> observer) {
    observer_ = std::move(observer);
  }

  StatusOr<std::unique_ptr<ReadOnlyRegion>> MapFile(const std::string& path) override;
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status RemoveFile(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  StatusOr<std::unique_ptr<RandomRWFile>> OpenRandomRWFile(const std::string& path,
                                                           bool direct_io) override;
  Status CreateDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;

  struct PathState;  // unsynced writes of one path (fault_env.cc)

  // Used by the files of this Env (fault_env.cc); not for tests.
  Status ChargeWrite(const std::string& path, uint64_t offset, uint64_t bytes);
  Status ChargeSync(const std::string& what);
  void CountRead(uint64_t bytes);

 private:
  std::shared_ptr<PathState> StateFor(const std::string& path);

  Env* const base_;
  mutable std::mutex mu_;
  uint64_t write_limit_ = kNoLimit;                          // guarded by mu_
  bool fail_syncs_ = false;                                  // guarded by mu_
  Counters counters_;                                        // guarded by mu_
  std::map<std::string, std::shared_ptr<PathState>> paths_;  // guarded by mu_
  std::function<void(const std::string&, const std::string&)> observer_;
};

}  // namespace llms
