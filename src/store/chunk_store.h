// ChunkStore: the flash persistence layer of contexts and their KV chunks. Contexts (token
// text, owner, settings) and chunk metadata live in SQLite (meta.sqlite); chunk bytes live in
// aligned extents of one data file (chunks.dat), each layer slice with its own checksum so a
// layer can be read and verified alone. Format and recovery rules: docs/store_format.md.
//
// Goals: a chunk write is durable when WriteChunk returns and never damages the version it
// replaces; a crash or power loss at any moment leaves every committed chunk readable; reads
// bypass the page cache. Non-goals: compression or interpretation of chunk bytes (opaque
// here), sharing one store between processes, chunk data through the Env of SQLite (meta.sqlite
// goes through SQLite's own file layer, so FaultEnv faults reach chunks.dat only).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "base/thread_annotations.h"
#include "env/env.h"
#include "store/extent_map.h"
#include "store/store_types.h"

namespace llms {

class MetaDb;
class UringReader;

// Thread safety: every method may be called from any thread concurrently (a background writer,
// an I/O reader and the main thread). One mutex guards the SQLite connection and the extent
// map; chunk bytes are written and read outside it, on extents that are reserved for the
// writer or pinned by the reader, so a rewrite or delete never reuses an extent under a read.
class ChunkStore {
 public:
  struct Options {
    // Read every chunk at Open and drop those whose checksums fail (costs a full read).
    bool verify_on_open = false;
    // Open chunks.dat with O_DIRECT (falls back to buffered + fadvise(DONTNEED) when the file
    // system refuses; see StoreStats::direct_io).
    bool direct_io = true;
    // Batched reads (ReadLayers) go through io_uring with this queue depth when the kernel
    // allows it; 0 always uses pread. 8 saturated the measured device (docs/store_format.md).
    unsigned io_uring_depth = 8;
    // Bytes kept in the `reserve` file for deletes on a full disk (0: none). 256 KiB holds the
    // WAL frames of deleting a context of thousands of chunks (a few dozen 4 KiB pages).
    uint64_t reserve_bytes = uint64_t{256} << 10;
  };

  // One request of ReadLayers.
  struct LayerRead {
    const ChunkMeta* meta = nullptr;  // must outlive the call
    uint32_t layer = 0;
    std::span<uint8_t> out;  // meta->layer_bytes bytes
    Status status;           // out: this request's result
  };

  // One chunk of WriteChunks: `meta` as for WriteChunk, `bytes` its data_bytes() bytes. With
  // `padded`, the caller promises that `bytes` starts on a kDirectIoAlignment boundary and that
  // AlignUp(data_bytes()) bytes are readable there, zero past the data (an AlignedBuffer of the
  // chunk): they are written as they are instead of being copied into an aligned buffer first.
  struct ChunkWrite {
    ChunkMeta meta;
    std::span<const uint8_t> bytes;
    bool padded = false;
  };

  // Opens the store in directory `dir` (created if missing) through `env`, which must outlive
  // the store, and runs recovery (see recovery()). Unavailable when another ChunkStore (in this
  // or another process) has it open; InvalidArgument for another schema version; IOError or
  // Corruption when meta.sqlite cannot be read.
  static StatusOr<std::unique_ptr<ChunkStore>> Open(Env* env, const std::string& dir,
                                                    const Options& options);
  // REQUIRES: no call of this store is running.
  ~ChunkStore();

  // Contexts. Unknown ids are NotFound. `origin` is kept for the owner ("native", "http").
  StatusOr<uint64_t> CreateContext(const std::string& app, std::span<const int32_t> tokens,
                                   const std::string& origin = "native");
  // Replaces the token text and the KV length (tokens whose chunks may be stored) in one
  // transaction. With drop_chunks_from set, chunks with index >= it are deleted in the same
  // transaction (for a token text that shrank or changed from that chunk on). REQUIRES:
  // kv_tokens <= tokens.size().
  static constexpr uint32_t kKeepChunks = UINT32_MAX;
  Status UpdateContext(uint64_t id, std::span<const int32_t> tokens, uint64_t kv_tokens,
                       uint32_t drop_chunks_from = kKeepChunks);
  // By id. Records whose row is damaged are returned with ContextRecord::damage set (listed,
  // not fatal); an error means the database itself could not be read.
  StatusOr<std::vector<ContextRecord>> ListContexts();
  // Deletes the context and all its chunks; their extents go back to the file system. Works on
  // a full disk: the reserve file gives SQLite the room it needs.
  Status DeleteContext(uint64_t id);

  // Stores one chunk (`bytes`: num_layers slices of layer_bytes, layer-major) and returns its
  // metadata with the store's fields filled. Durable on return; replaces any previous version
  // of (context_id, chunk_index), which stays intact until the new one is committed.
  // InvalidArgument for bad sizes; NotFound for an unknown context; ResourceExhausted when the
  // disk is full (nothing stored is lost); IOError otherwise.
  StatusOr<ChunkMeta> WriteChunk(const ChunkMeta& meta, std::span<const uint8_t> bytes);
  // WriteChunk for several chunks with one data sync and one transaction: all or nothing.
  // InvalidArgument when two writes name the same chunk.
  StatusOr<std::vector<ChunkMeta>> WriteChunks(std::span<const ChunkWrite> writes);

  // The stored chunks of a context, by chunk_index (empty when none is stored). NotFound for
  // an unknown context.
  StatusOr<std::vector<ChunkMeta>> ListChunks(uint64_t context_id);
  // Deletes one chunk. NotFound when it is not stored or the context is unknown.
  Status DeleteChunk(uint64_t context_id, uint32_t chunk_index);

  // One request of ReadChunks.
  struct ChunkRead {
    const ChunkMeta* meta = nullptr;  // must outlive the call
    std::span<uint8_t> out;           // meta->data_bytes() bytes
    Status status;                    // out: this chunk's result
  };
  // Reads many whole chunks at once: extents that lie close together on disk are merged into
  // requests of up to kMaxMergedReadBytes (the small gaps between them are read and dropped),
  // because the device reaches its bandwidth only with large requests (docs/store_format.md).
  // Each chunk is verified and copied out as soon as its request completes, while later ones
  // are still in flight. Each request gets its own status; returns the first failure, or OK.
  Status ReadChunks(std::span<ChunkRead> reads);
  static constexpr uint64_t kMaxMergedReadBytes = uint64_t{1} << 20;
  static constexpr uint64_t kMaxMergedGapBytes = uint64_t{64} << 10;
  // Reads many layers at once (io_uring when available), each after checking its checksum:
  // Corruption naming context, chunk, layer and offset on a mismatch or a short read; NotFound
  // when a `meta` is no longer the stored version (rewritten or deleted since); InvalidArgument
  // for a bad layer or size. Each request gets its own status; returns the first failure, or OK.
  // With `layers` > 1 each request reads that many consecutive layers from its `layer` on (fewer at
  // the chunk's end) in one device request, and `out` holds them all: a restore pipeline reads a
  // group of layers per step that way.
  Status ReadLayers(std::span<LayerRead> reads, uint32_t layers = 1);

  StoreStats stats() const;
  const RecoveryReport& recovery() const { return recovery_; }
  const std::string& dir() const { return dir_; }

  // Test hook: WriteChunks fails with IOError after syncing the data and before committing
  // the metadata, as a crash at that moment would (STYLE rule 21).
  void TEST_FailBeforeCommit(bool fail) { test_fail_before_commit_ = fail; }
  // Test hook: UpdateContext fails with ResourceExhausted, as on a full disk, changing nothing.
  void TEST_FailContextUpdates(bool fail) { test_fail_context_updates_ = fail; }

 private:
  struct OpenKey {
    explicit OpenKey() = default;
  };
  struct Pinned;  // a read request with its pinned extent range (chunk_store_internal.h)

 public:
  // Use Open.
  ChunkStore(OpenKey, Env* env, std::string dir, const Options& options);

 private:
  Status Recover();
  // Why the committed row `c` cannot be trusted, or empty; `file_size` is chunks.dat's size.
  std::string CheckRecoveredRow(const ChunkMeta& c, uint64_t file_size) REQUIRES(mu_);

  StatusOr<std::vector<ChunkMeta>> PrepareWrites(std::span<const ChunkWrite> writes) const;
  Status WriteExtents(std::span<const ChunkMeta> metas, std::span<const ChunkWrite> writes);
  Status FullStatusLocked(const Status& s, uint64_t need) const REQUIRES(mu_);
  // Gives the extents of deleted or replaced rows back and shrinks chunks.dat if its tail is
  // free. REQUIRES: mu_ held.
  void RetireLocked(std::span<const ChunkMeta> rows) REQUIRES(mu_);
  void ShrinkLocked() REQUIRES(mu_);
  // Creates the reserve file when it is missing and the disk has room (best effort).
  void EnsureReserveLocked() REQUIRES(mu_);

  // The read pipeline: pin (under mu_), read and verify (outside it), unpin. With `merge`,
  // requests close together on disk share one device request.
  Status Read(std::span<Pinned> reqs, bool merge);
  void ReadPinned(std::span<Pinned> reqs, bool merge);
  // Checks and copies out `p` from `bytes`, its range as read (`got` bytes of it valid).
  void Verify(Pinned& p, const uint8_t* bytes, uint64_t got);

  Env* const env_;
  const std::string dir_;
  const std::string data_path_;
  const Options options_;
  std::unique_ptr<RandomRWFile> data_;  // set in Open, then immutable
  RecoveryReport recovery_;             // set in Open, then immutable

  mutable Mutex mu_;
  std::unique_ptr<MetaDb> meta_ GUARDED_BY(mu_);
  ExtentMap extents_ GUARDED_BY(mu_);
  uint64_t file_size_ GUARDED_BY(mu_) = 0;  // upper bound of chunks.dat's size

  // Set in Open, then immutable; null without io_uring. uring_mu_ lets one batch use the ring
  // at a time; a batch that finds it busy uses pread rather than wait.
  std::unique_ptr<UringReader> uring_;
  std::mutex uring_mu_;
  // Bounce buffers of ReadPinned's io_uring path, reused across batches (guarded by
  // uring_mu_): at most kReadBufferPool of kMaxMergedReadBytes each.
  static constexpr size_t kReadBufferPool = 16;
  std::vector<AlignedBuffer> read_buffers_;

  std::atomic<uint64_t> reads_{0}, bytes_read_{0}, writes_{0}, bytes_written_{0}, syncs_{0};
  std::atomic<uint64_t> context_updates_{0};
  std::atomic<uint64_t> checksum_failures_{0};
  std::atomic<bool> test_fail_before_commit_{false};
  std::atomic<bool> test_fail_context_updates_{false};
};

}  // namespace llms
