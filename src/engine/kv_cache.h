// The chunked KV cache of one context. Chunk i holds K and V of positions [i*T, (i+1)*T) for
// every layer at one precision level (layout: kernels/kv_format.h). A chunk can be absent
// (evicted) or present for only some layers (while a loader restores it layer by layer); the
// memory manager moves chunks in and out through TakeChunk/PutChunk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "formats/kv_format.h"

namespace llms {

// Accounts for the bytes of KV chunks. The memory manager implements it over its budget (and
// may evict other contexts' chunks inside Reserve); without one, memory is unaccounted.
// Thread safety: implementations must be thread-safe.
class KvChunkAllocator {
 public:
  virtual ~KvChunkAllocator() = default;
  // Makes room for `bytes` more. Errors: ResourceExhausted when it cannot.
  virtual Status Reserve(size_t bytes) = 0;
  // REQUIRES: `bytes` were reserved before.
  virtual void Release(size_t bytes) = 0;
};

// Thread safety: none; owned and used by one thread at a time.
class KvChunk {
 public:
  // A zero-filled chunk with no layer present, its bytes reserved from `allocator` (may be
  // null; must outlive the chunk). REQUIRES: layout.Validate() is empty.
  static StatusOr<std::unique_ptr<KvChunk>> Create(const KvLayout& layout, size_t num_layers,
                                                   KvLevel level, KvChunkAllocator* allocator);
  ~KvChunk();
  KvChunk(const KvChunk&) = delete;
  // A copy of this chunk (bytes, present layers, valid tokens, attention statistics) whose bytes
  // are reserved from `allocator` (may be null). Errors: the allocator's.
  StatusOr<std::unique_ptr<KvChunk>> Clone(KvChunkAllocator* allocator) const;
  KvChunk& operator=(const KvChunk&) = delete;

  const KvLayout& layout() const { return layout_; }
  size_t num_layers() const { return num_layers_; }
  KvLevel level() const { return level_; }
  size_t layer_bytes() const { return layout_.LayerBytes(level_); }
  size_t bytes() const { return data_.size(); }
  uint8_t* layer(size_t l) { return data_.data() + l * layer_bytes(); }
  const uint8_t* layer(size_t l) const { return data_.data() + l * layer_bytes(); }
  uint8_t* data() { return data_.data(); }
  const uint8_t* data() const { return data_.data(); }

  size_t valid_tokens() const { return valid_tokens_; }
  void set_valid_tokens(size_t n) { valid_tokens_ = n; }
  bool full() const { return valid_tokens_ == layout_.chunk_tokens; }

  bool layer_present(size_t l) const { return present_[l] != 0; }
  void set_layer_present(size_t l, bool present) { present_[l] = present ? 1 : 0; }
  void SetAllLayersPresent(bool present);

  // Attention statistics: per token slot, the sum of attention probability it received and the
  // number of (query, head, layer) triples that could see it.
  std::vector<float>& prob_sum() { return prob_sum_; }
  std::vector<float>& prob_count() { return prob_count_; }
  const std::vector<float>& prob_sum() const { return prob_sum_; }
  const std::vector<float>& prob_count() const { return prob_count_; }
  // Information density: mean over valid tokens of prob_sum / prob_count (0 with no samples).
  float Density() const;

  // Re-encodes every present layer at `level` (through floats). Lossy going down; going up
  // keeps the already-lost precision. Errors: the allocator's, when the new size does not fit
  // (the chunk is then unchanged).
  Status ConvertTo(KvLevel level);

 private:
  struct Passkey {};  // only Create constructs chunks (so every byte is reserved first)

 public:
  KvChunk(Passkey, const KvLayout& layout, size_t num_layers, KvLevel level,
          KvChunkAllocator* allocator);

 private:
  KvChunkAllocator* allocator_;  // not owned; may be null
  KvLayout layout_;
  size_t num_layers_;
  KvLevel level_;
  size_t valid_tokens_ = 0;
  std::vector<uint8_t> data_;      // num_layers x layer_bytes()
  std::vector<uint8_t> present_;   // per layer
  std::vector<float> prob_sum_;    // [chunk_tokens]
  std::vector<float> prob_count_;  // [chunk_tokens]
};

// Thread safety: none; one context is used by one call at a time.
class KvCache {
 public:
  // `allocator` (may be null) accounts for every chunk this cache creates; it must outlive them.
  KvCache(const KvLayout& layout, size_t num_layers, KvChunkAllocator* allocator = nullptr)
      : layout_(layout), num_layers_(num_layers), allocator_(allocator) {}

  const KvLayout& layout() const { return layout_; }
  size_t num_layers() const { return num_layers_; }
  size_t chunk_tokens() const { return layout_.chunk_tokens; }
  // Positions [0, num_tokens()) have K/V (resident or not).
  size_t num_tokens() const { return num_tokens_; }
  void set_num_tokens(size_t n);
  size_t num_chunks() const { return (num_tokens_ + chunk_tokens() - 1) / chunk_tokens(); }

  // Null when chunk i is not resident.
  KvChunk* chunk(size_t i) { return i < chunks_.size() ? chunks_[i].get() : nullptr; }
  const KvChunk* chunk(size_t i) const { return i < chunks_.size() ? chunks_[i].get() : nullptr; }
  std::unique_ptr<KvChunk> TakeChunk(size_t i);
  void PutChunk(size_t i, std::unique_ptr<KvChunk> chunk);
  // Drops everything from position `n` on (whole chunks past it; later slots of its chunk).
  void Truncate(size_t n);

  size_t ResidentBytes() const;
  StatusOr<std::unique_ptr<KvChunk>> NewChunk(KvLevel level) const {
    return KvChunk::Create(layout_, num_layers_, level, allocator_);
  }
  KvChunkAllocator* allocator() const { return allocator_; }

 private:
  KvLayout layout_;
  size_t num_layers_;
  KvChunkAllocator* allocator_;  // not owned; may be null
  size_t num_tokens_ = 0;
  std::vector<std::unique_ptr<KvChunk>> chunks_;
};

}  // namespace llms
