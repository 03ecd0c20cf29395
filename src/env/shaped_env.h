// ShapedEnv: an Env whose random-access files (the chunk store's chunks.dat) are as slow as a
// flash device class (env/flash_device.h): every read, write and sync runs on the base Env and
// then waits until the class's device would have finished it. A request never completes sooner
// than the base device does, so a class can only slow this machine down.
//
// Shaped: RandomRWFile Read, ReadMany (a batch shares the queue; its real reads run with up to
// min(queue depth, 8) in flight, so this disk's one-at-a-time speed never caps a deep-queued
// class), Write, Sync. Not shaped:
// mapped files (the model), WritableFile, directories, and meta.sqlite, which SQLite reads and
// writes through its own file layer (each commit pays this machine's fsync, not the class's).
#pragma once

#include <functional>
#include <memory>

#include "base/clock.h"
#include "env/env.h"
#include "env/flash_device.h"

namespace llms {

class ShapedEnv final : public Env {
 public:
  // Waits until `clock` reads at least the given monotonic time. The default sleeps.
  using SleepUntil = std::function<void(double seconds)>;

  // `base` and `clock` must outlive this Env and its files. REQUIRES: `flash.shaped()`.
  ShapedEnv(Env* base, const FlashClass& flash, const Clock* clock = Clock::Real(),
            SleepUntil sleep_until = nullptr);
  ~ShapedEnv() override;

  const FlashClass& flash() const { return flash_; }

  StatusOr<std::unique_ptr<ReadOnlyRegion>> MapFile(const std::string& path) override {
    return base_->MapFile(path);
  }
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return base_->NewWritableFile(path);
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    return base_->RenameFile(from, to);
  }
  Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }
  Status CreateDir(const std::string& path) override { return base_->CreateDir(path); }
  Status SyncDir(const std::string& path) override { return base_->SyncDir(path); }
  StatusOr<std::unique_ptr<RandomRWFile>> OpenRandomRWFile(const std::string& path,
                                                           bool direct_io) override;

  struct Device;  // the shared timeline and its lock (shaped_env.cc)

 private:
  Env* const base_;
  const FlashClass flash_;
  std::shared_ptr<Device> device_;  // shared with the files, which may outlive a call
};

}  // namespace llms
