// Plain records of the flash chunk store (store/chunk_store.h): a context, a chunk's metadata,
// statistics and the recovery report of Open.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llms {

// One persistent conversation: its owner and its full token text (the authoritative state; KV
// chunks can always be recomputed from it).
struct ContextRecord {
  uint64_t id = 0;  // assigned by the store, never reused
  std::string app;
  std::vector<int32_t> tokens;
  uint64_t kv_tokens = 0;  // leading tokens whose KV chunks the store may hold (<= tokens.size())
  std::string origin;      // who made it: "native" (an app's explicit context) or "http"
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  // Why the row cannot be used (a tokens blob that is not whole int32s, a KV length past the
  // text...), or empty. A damaged row is listed, not fatal: its owner can see and delete it.
  std::string damage;
};

// The metadata of one stored chunk: `num_layers` layer slices of `layer_bytes` each.
struct ChunkMeta {
  // Set by the caller of WriteChunk.
  uint64_t context_id = 0;
  uint32_t chunk_index = 0;
  uint8_t level = 0;         // KV level tag (docs/kv_chunk_format.md); opaque to the store
  uint32_t num_layers = 0;   // in [1, store_format::kMaxLayers]
  uint32_t layer_bytes = 0;  // in [1, store_format::kMaxLayerBytes]
  uint32_t valid_tokens = 0;
  float density = 0;
  std::vector<uint8_t> stats;  // opaque caller bytes (e.g. attention statistics)
  // Opaque to the store: the caller's digest of the text the chunk encodes (its whole token
  // prefix), so a copy left from an older text of the context is never taken for the current one.
  uint64_t tokens_hash = 0;

  // Filled by the store.
  uint64_t extent_offset = 0;             // in chunks.dat; a multiple of 4096
  uint64_t extent_length = 0;             // AlignUp(num_layers * layer_bytes)
  std::vector<uint64_t> layer_checksums;  // XXH3_64 of each layer slice, num_layers entries
  uint64_t generation = 0;                // store-wide sequence number of the write; never reused

  uint64_t data_bytes() const { return uint64_t{num_layers} * layer_bytes; }
};

// Counters since Open plus the current space use. Reads count every Read* request.
struct StoreStats {
  uint64_t reads = 0;
  uint64_t bytes_read = 0;  // device bytes, i.e. the aligned ranges
  uint64_t writes = 0;      // chunks written
  uint64_t bytes_written = 0;
  uint64_t syncs = 0;            // data-file fdatasyncs (one per WriteChunks batch)
  uint64_t context_updates = 0;  // UpdateContext transactions (a context's text committed)
  uint64_t checksum_failures = 0;
  uint64_t data_file_bytes = 0;  // end of the last live or in-flight extent
  uint64_t live_bytes = 0;       // extents of committed chunks
  uint64_t free_bytes = 0;       // holes below data_file_bytes, reused first-fit
  uint64_t chunks = 0;
  bool direct_io = false;  // chunks.dat bypasses the page cache (O_DIRECT took effect)
  bool io_uring = false;   // batched reads go through io_uring
};

// What Open found and repaired. Chunks are a cache of the token text, so a chunk whose row or
// bytes are unusable is dropped (and will be recomputed) rather than failing the whole store.
struct RecoveryReport {
  struct DroppedChunk {
    uint64_t context_id;
    uint32_t chunk_index;
    std::string reason;
  };
  std::vector<DroppedChunk> dropped;  // rows deleted at Open, with why
  uint64_t truncated_bytes = 0;       // unreferenced tail of chunks.dat cut off at Open
  uint64_t verified_chunks = 0;       // chunks whose checksums were read (verify_on_open)
};

}  // namespace llms
