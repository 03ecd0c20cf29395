// Env: the seam between llms and the file system (after LevelDB's Env). Everything that touches
// files goes through it, so tests can substitute in-memory files and inject faults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/status.h"

namespace llms {

// Read-only bytes of a whole file, memory-mapped or held in memory.
// Thread safety: immutable; safe to read from any thread.
class ReadOnlyRegion {
 public:
  virtual ~ReadOnlyRegion() = default;
  virtual std::span<const uint8_t> bytes() const = 0;
};

// A file opened for appending. Thread safety: none; one writer at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::span<const uint8_t> data) = 0;
  // Makes everything appended so far durable (fsync).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

// Thread safety: every method may be called from any thread.
class Env {
 public:
  virtual ~Env() = default;
  // The process-wide POSIX Env. Never null; never deleted.
  static Env* Default();

  // Maps `path` read-only. A file of size 0 maps to an empty region.
  virtual StatusOr<std::unique_ptr<ReadOnlyRegion>> MapFile(const std::string& path) = 0;
  // Creates or truncates `path`.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
};

// A region over bytes held in memory (for tests and generated data).
std::unique_ptr<ReadOnlyRegion> NewMemoryRegion(std::string bytes);

}  // namespace llms
