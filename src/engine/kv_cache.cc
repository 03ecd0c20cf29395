#include "engine/kv_cache.h"

#include <algorithm>

#include "formats/kv_quant.h"

namespace llms {

StatusOr<std::unique_ptr<KvChunk>> KvChunk::Create(const KvLayout& layout, size_t num_layers,
                                                   KvLevel level, KvChunkAllocator* allocator) {
  if (allocator != nullptr) {
    LLMS_RETURN_IF_ERROR(allocator->Reserve(num_layers * layout.LayerBytes(level)));
  }
  return std::make_unique<KvChunk>(Passkey{}, layout, num_layers, level, allocator);
}

KvChunk::KvChunk(Passkey, const KvLayout& layout, size_t num_layers, KvLevel level,
                 KvChunkAllocator* allocator)
    : allocator_(allocator),
      layout_(layout),
      num_layers_(num_layers),
      level_(level),
      data_(num_layers * layout.LayerBytes(level)),
      present_(num_layers, 0),
      prob_sum_(layout.chunk_tokens, 0.0f),
      prob_count_(layout.chunk_tokens, 0.0f) {}

StatusOr<std::unique_ptr<KvChunk>> KvChunk::Clone(KvChunkAllocator* allocator) const {
  LLMS_ASSIGN_OR_RETURN(auto copy, Create(layout_, num_layers_, level_, allocator));
  copy->data_ = data_;
  copy->present_ = present_;
  copy->valid_tokens_ = valid_tokens_;
  copy->prob_sum_ = prob_sum_;
  copy->prob_count_ = prob_count_;
  return copy;
}

KvChunk::~KvChunk() {
  if (allocator_ != nullptr) allocator_->Release(data_.size());
}

void KvChunk::SetAllLayersPresent(bool present) {
  std::fill(present_.begin(), present_.end(), present ? 1 : 0);
}

float KvChunk::Density() const {
  double sum = 0;
  size_t n = 0;
  for (size_t t = 0; t < valid_tokens_; ++t) {
    if (prob_count_[t] > 0) {
      sum += prob_sum_[t] / prob_count_[t];
      ++n;
    }
  }
  return n == 0 ? 0.0f : static_cast<float>(sum / static_cast<double>(n));
}

Status KvChunk::ConvertTo(KvLevel level) {
  if (level == level_) return Status::Ok();
  const size_t new_bytes = num_layers_ * layout_.LayerBytes(level);
  if (allocator_ != nullptr && new_bytes > data_.size()) {
    LLMS_RETURN_IF_ERROR(allocator_->Reserve(new_bytes - data_.size()));
  }
  const size_t n = layout_.width() * layout_.chunk_tokens;
  std::vector<float> k(n), v(n);
  std::vector<uint8_t> out(num_layers_ * layout_.LayerBytes(level));
  for (size_t l = 0; l < num_layers_; ++l) {
    if (!layer_present(l)) continue;
    DecodeKvSlice(layout_, level_, layer(l), k.data(), v.data());
    EncodeKvSlice(layout_, level, k.data(), v.data(), valid_tokens_,
                  out.data() + l * layout_.LayerBytes(level));
  }
  if (allocator_ != nullptr && new_bytes < data_.size()) {
    allocator_->Release(data_.size() - new_bytes);
  }
  data_ = std::move(out);
  level_ = level;
  return Status::Ok();
}

void KvCache::set_num_tokens(size_t n) {
  num_tokens_ = n;
  if (chunks_.size() < num_chunks()) chunks_.resize(num_chunks());
}

std::unique_ptr<KvChunk> KvCache::TakeChunk(size_t i) {
  if (i >= chunks_.size()) return nullptr;
  return std::move(chunks_[i]);
}

void KvCache::PutChunk(size_t i, std::unique_ptr<KvChunk> chunk) {
  if (chunks_.size() <= i) chunks_.resize(i + 1);
  chunks_[i] = std::move(chunk);
}

void KvCache::Truncate(size_t n) {
  if (n >= num_tokens_) return;
  num_tokens_ = n;
  chunks_.resize(num_chunks());
  if (n % chunk_tokens() != 0 && chunks_.back() != nullptr) {
    KvChunk& last = *chunks_.back();
    last.set_valid_tokens(std::min(last.valid_tokens(), n % chunk_tokens()));
  }
}

size_t KvCache::ResidentBytes() const {
  size_t total = 0;
  for (const auto& c : chunks_) total += c ? c->bytes() : 0;
  return total;
}

}  // namespace llms
