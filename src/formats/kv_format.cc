#include "formats/kv_format.h"

namespace llms {

int KvLevelBits(KvLevel level) {
  switch (level) {
    case KvLevel::kF16:
      return 16;
    case KvLevel::kInt8:
      return 8;
    case KvLevel::kInt4:
      return 4;
    case KvLevel::kInt2:
      return 2;
  }
  return 16;
}

const char* KvLevelName(KvLevel level) {
  switch (level) {
    case KvLevel::kF16:
      return "f16";
    case KvLevel::kInt8:
      return "int8";
    case KvLevel::kInt4:
      return "int4";
    case KvLevel::kInt2:
      return "int2";
  }
  return "?";
}

std::optional<KvLevel> ParseKvLevel(std::string_view name) {
  for (int i = 0; i < kNumKvLevels; ++i) {
    const auto level = static_cast<KvLevel>(i);
    if (name == KvLevelName(level)) return level;
  }
  return std::nullopt;
}

size_t KvLayout::KParamsBytes(KvLevel level) const {
  return level == KvLevel::kF16 ? 0 : width() * sizeof(QuantParams);
}

size_t KvLayout::KValuesBytes(KvLevel level) const {
  return width() * chunk_tokens * static_cast<size_t>(KvLevelBits(level)) / 8;
}

size_t KvLayout::VParamsBytes(KvLevel level) const {
  return level == KvLevel::kF16 ? 0 : chunk_tokens * (width() / v_group()) * sizeof(QuantParams);
}

size_t KvLayout::VValuesBytes(KvLevel level) const { return KValuesBytes(level); }

size_t KvLayout::LayerBytes(KvLevel level) const {
  return KParamsBytes(level) + KValuesBytes(level) + VParamsBytes(level) + VValuesBytes(level);
}

std::string_view KvLayout::Validate() const {
  if (kv_heads == 0 || head_dim == 0) return "kv_heads and head_dim must be positive";
  if (head_dim % 8 != 0) return "head_dim must be a multiple of 8";
  if (chunk_tokens < 8 || chunk_tokens > 256 || chunk_tokens % 8 != 0) {
    return "chunk_tokens must be a multiple of 8 between 8 and 256";
  }
  return {};
}

}  // namespace llms
