// On-disk constants and byte encodings of the flash chunk store. The format (extent grammar,
// SQLite schema, commit order, recovery rules, worked example) is docs/store_format.md.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "env/env.h"

namespace llms::store_format {

inline constexpr char kDataFileName[] = "chunks.dat";
inline constexpr char kMetaFileName[] = "meta.sqlite";
// Zeros kept on disk so that deleting a context works on a full disk: SQLite needs room in its
// WAL to commit a delete. Given up when a delete finds the disk full, made again after.
inline constexpr char kReserveFileName[] = "reserve";

// Bumped on any incompatible change of the schema or of the extent layout; a store written
// with a newer version is refused (InvalidArgument) rather than guessed at, an older one is
// migrated at Open (docs/store_format.md). Version 2: contexts.kv_tokens (an INTEGER column in
// place of the free-text `settings`), contexts.origin, chunks.tokens_hash.
inline constexpr int64_t kSchemaVersion = 2;

// Extents start and end on this boundary so a layer can be read with direct I/O.
inline constexpr uint64_t kExtentAlignment = kDirectIoAlignment;

// Sanity bounds on a chunk row, so a damaged row cannot make the store allocate absurd
// buffers: 1024 layers is 10x any on-device model; a 256 MiB layer slice is 16x the f16 slice
// of a 70B model's 16-token chunk.
inline constexpr uint32_t kMaxLayers = 1024;
inline constexpr uint32_t kMaxLayerBytes = 256u << 20;

// XXH3_64 of one layer slice (the bytes as written, without padding).
uint64_t LayerChecksum(std::span<const uint8_t> slice);

// Little-endian blobs: token ids are int32, layer checksums uint64.
std::vector<uint8_t> EncodeInt32s(std::span<const int32_t> values);
std::vector<uint8_t> EncodeUint64s(std::span<const uint64_t> values);
// Corruption naming `field` when the blob's size is not a whole number of values.
StatusOr<std::vector<int32_t>> DecodeInt32s(std::span<const uint8_t> blob, const char* field);
StatusOr<std::vector<uint64_t>> DecodeUint64s(std::span<const uint8_t> blob, const char* field);

}  // namespace llms::store_format
