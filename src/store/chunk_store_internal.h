// Private pieces of ChunkStore shared by its two source files (chunk_store.cc: open, recovery
// and the write path; chunk_store_read.cc: the read path).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "store/chunk_store.h"
#include "store/uring_reader.h"

namespace llms {

// One read of an aligned range of an extent, and the layers in it to verify and copy out.
struct ChunkStore::Pinned {
  const ChunkMeta* meta = nullptr;
  uint64_t begin = 0;   // offset inside the extent, aligned
  uint64_t length = 0;  // aligned
  uint32_t first_layer = 0;
  uint32_t layers = 0;
  std::span<uint8_t> out;  // layers * layer_bytes
  bool pinned = false;
  Status status;
};

inline std::string ChunkName(const ChunkMeta& m) {
  return "context " + std::to_string(m.context_id) + " chunk " + std::to_string(m.chunk_index);
}

}  // namespace llms
