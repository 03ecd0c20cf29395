#include "formats/weight_types.h"

namespace llms {

std::optional<WeightTypeInfo> GetWeightTypeInfo(WeightType type) {
  switch (type) {
    case WeightType::kF32:
      return WeightTypeInfo{"F32", 1, 4};
    case WeightType::kF16:
      return WeightTypeInfo{"F16", 1, 2};
    case WeightType::kBF16:
      return WeightTypeInfo{"BF16", 1, 2};
    case WeightType::kQ8_0:
      return WeightTypeInfo{"Q8_0", kQK8_0, sizeof(BlockQ8_0)};
    case WeightType::kQ4_0:
      return WeightTypeInfo{"Q4_0", kQK8_0, sizeof(BlockQ4_0)};
    case WeightType::kQ4_K:
      return WeightTypeInfo{"Q4_K", kQK_K, sizeof(BlockQ4_K)};
    case WeightType::kQ6_K:
      return WeightTypeInfo{"Q6_K", kQK_K, sizeof(BlockQ6_K)};
  }
  return std::nullopt;
}

std::optional<WeightTypeInfo> GetWeightTypeInfo(uint32_t raw_type) {
  switch (raw_type) {
    case 0:
    case 1:
    case 2:
    case 8:
    case 12:
    case 14:
    case 30:
      return GetWeightTypeInfo(static_cast<WeightType>(raw_type));
    default:
      return std::nullopt;
  }
}

std::optional<WeightType> ParseWeightType(std::string_view name) {
  for (WeightType t : {WeightType::kF32, WeightType::kF16, WeightType::kBF16, WeightType::kQ8_0,
                       WeightType::kQ4_0, WeightType::kQ4_K, WeightType::kQ6_K}) {
    if (name == GetWeightTypeInfo(t)->name) return t;
  }
  return std::nullopt;
}

size_t RowBytes(WeightType type, size_t n) {
  auto info = GetWeightTypeInfo(type);
  if (!info || n % static_cast<size_t>(info->block_size) != 0) return 0;
  return n / static_cast<size_t>(info->block_size) * static_cast<size_t>(info->block_bytes);
}

}  // namespace llms
