// Env: the seam between llms and the file system (after LevelDB's Env). Everything that touches
// files goes through it, so tests can substitute in-memory files and inject faults
// (env/fault_env.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/aligned_buffer.h"
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

// A file read and written at explicit offsets (pread/pwrite), optionally with direct I/O.
//
// Alignment contract: when the file was opened with direct_io requested, every Read and Write
// must use an offset, a length and a buffer address that are multiples of kDirectIoAlignment
// (use AlignedBuffer); anything else is InvalidArgument and touches nothing. The contract holds
// even when the file system refused O_DIRECT and the file fell back to buffered I/O
// (direct_io_active() false), so code tested on one file system works on the other.
//
// Thread safety: Read, Write, Sync and Size may run concurrently from any threads (they map to
// pread/pwrite/fdatasync/fstat); concurrent writes to overlapping ranges give unspecified bytes.
class RandomRWFile {
 public:
  virtual ~RandomRWFile() = default;

  // Reads up to out.size() bytes at `offset` and returns how many were read: fewer only when
  // the file ends first (0 at or past the end). Errors are IOError naming the path and offset.
  virtual StatusOr<size_t> Read(uint64_t offset, std::span<uint8_t> out) = 0;
  // One range of ReadMany.
  struct ReadRequest {
    uint64_t offset = 0;
    std::span<uint8_t> out;
    size_t done = 0;  // out: bytes read, as Read returns
    Status status;    // out: as Read's
  };
  // Reads several ranges as one batch, as a device with a command queue takes them: each as
  // Read would, with its own result. The default reads them one after another.
  virtual void ReadMany(std::span<ReadRequest> requests);
  // Writes all of `data` at `offset`, extending the file if needed. Not durable until Sync.
  // ResourceExhausted when the file system is full (ENOSPC); some bytes may then be written.
  virtual Status Write(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes every completed Write durable, including a grown size (fdatasync).
  virtual Status Sync() = 0;
  virtual StatusOr<uint64_t> Size() = 0;
  // Sets the size to `size` (drops or zero-extends the tail). Durable after the next Sync.
  virtual Status Truncate(uint64_t size) = 0;
  // Gives the blocks of [offset, offset + length) back to the file system; they read as zeros
  // and the size is unchanged. Unavailable where the file system cannot (the bytes then stay).
  virtual Status PunchHole(uint64_t offset, uint64_t length) {
    return Status::Unavailable(path() + ": punching holes is not supported");
  }

  virtual const std::string& path() const = 0;
  // True when reads and writes bypass the page cache (O_DIRECT took effect). When O_DIRECT was
  // requested but the file system refused it (tmpfs on old kernels, ramfs), this is false and
  // the file drops its pages after each read and sync with posix_fadvise(DONTNEED) instead.
  virtual bool direct_io_active() const = 0;
  // The POSIX descriptor for callers that submit I/O themselves (io_uring), or -1 when this
  // file is not a plain POSIX file (fault-injecting or in-memory wrappers): such callers must
  // then use Read so the wrapper sees every access. Valid while the file is open.
  virtual int NativeHandleOrMinusOne() const { return -1; }
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

  // The methods below have defaults that return Unavailable so that Envs written before they
  // existed still compile; the POSIX Env and FaultEnv implement them all.

  // Opens `path` for reading and writing, creating it (mode 0644) if missing; never truncates.
  // With direct_io, tries O_DIRECT and falls back to buffered I/O when the file system refuses
  // it (see RandomRWFile::direct_io_active). The caller should SyncDir the parent after
  // creating a file that must survive power loss.
  virtual StatusOr<std::unique_ptr<RandomRWFile>> OpenRandomRWFile(const std::string& path,
                                                                   bool direct_io);
  // Creates directory `path` (mode 0755). OK if it already exists as a directory.
  virtual Status CreateDir(const std::string& path);
  // Makes the entries of directory `path` durable (files created, renamed or removed in it).
  virtual Status SyncDir(const std::string& path);
};

// Writes `path` whole or not at all: `write` fills a temporary file beside it, which is synced,
// renamed over `path`, and the directory synced (an Env without directories skips that). On any
// failure the temporary file is removed, `path` is untouched, and the first error is returned.
Status WriteFileAtomically(Env* env, const std::string& path,
                           const std::function<Status(WritableFile*)>& write);
Status WriteFileAtomically(Env* env, const std::string& path, std::string_view bytes);

// A region over bytes held in memory (for tests and generated data).
std::unique_ptr<ReadOnlyRegion> NewMemoryRegion(std::string bytes);

}  // namespace llms
