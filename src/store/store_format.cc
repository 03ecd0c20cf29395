#include "store/store_format.h"

#include <string>

#include "xxhash.h"

namespace llms::store_format {

uint64_t LayerChecksum(std::span<const uint8_t> slice) {
  return XXH3_64bits(slice.data(), slice.size());
}

std::vector<uint8_t> EncodeInt32s(std::span<const int32_t> values) {
  std::vector<uint8_t> out(values.size() * 4);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint32_t v = static_cast<uint32_t>(values[i]);
    for (int b = 0; b < 4; ++b) out[4 * i + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  return out;
}

std::vector<uint8_t> EncodeUint64s(std::span<const uint64_t> values) {
  std::vector<uint8_t> out(values.size() * 8);
  for (size_t i = 0; i < values.size(); ++i) {
    for (int b = 0; b < 8; ++b) out[8 * i + b] = static_cast<uint8_t>(values[i] >> (8 * b));
  }
  return out;
}

namespace {

template <typename T>
StatusOr<std::vector<T>> DecodeLittleEndian(std::span<const uint8_t> blob, const char* field) {
  if (blob.size() % sizeof(T) != 0) {
    return Status::Corruption(std::string(field) + ": blob of " + std::to_string(blob.size()) +
                              " bytes is not a whole number of " + std::to_string(sizeof(T)) +
                              "-byte values");
  }
  std::vector<T> out(blob.size() / sizeof(T));
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t v = 0;
    for (size_t b = 0; b < sizeof(T); ++b) v |= uint64_t{blob[sizeof(T) * i + b]} << (8 * b);
    out[i] = static_cast<T>(v);
  }
  return out;
}

}  // namespace

StatusOr<std::vector<int32_t>> DecodeInt32s(std::span<const uint8_t> blob, const char* field) {
  return DecodeLittleEndian<int32_t>(blob, field);
}

StatusOr<std::vector<uint64_t>> DecodeUint64s(std::span<const uint8_t> blob, const char* field) {
  return DecodeLittleEndian<uint64_t>(blob, field);
}

}  // namespace llms::store_format
