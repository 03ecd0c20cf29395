// GgufFile: a validated, memory-mapped view of a GGUF (v2 or v3) model file. Opening checks every
// count, length, type, dimension, offset and alignment against the file's size before anything is
// used, so a malformed, truncated or hostile file is an error that names the problem, never a
// crash, hang or huge allocation. The byte grammar is in docs/gguf_format.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "env/env.h"
#include "formats/weight_types.h"

namespace llms {

// Value types of GGUF metadata; numeric values are the on-disk tags.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// One metadata value. Scalars are widened into the matching field; strings and array elements
// are views into the mapped file (valid while the GgufFile lives).
struct GgufValue {
  GgufType type = GgufType::kUint8;
  int64_t i = 0;       // every integer type and bool (uint64 above INT64_MAX is rejected)
  double f = 0;        // float32 / float64
  std::string_view s;  // string
  GgufType elem_type = GgufType::kUint8;  // arrays: element type (never kArray)
  uint64_t count = 0;                     // arrays: number of elements
  std::span<const uint8_t> raw;           // arrays of fixed-size elements: their bytes
  std::vector<std::string_view> strings;  // arrays of strings: each element
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the innermost (row length)
  WeightType type = WeightType::kF32;
  uint64_t offset = 0;            // from the start of the file, aligned
  uint64_t size_bytes = 0;        // rows * RowBytes(type, dims[0])
  const uint8_t* data = nullptr;  // into the mapping; valid while the GgufFile lives

  uint64_t num_elements() const;
  uint64_t rows() const;  // product of dims[1..]
};

// Thread safety: immutable after Open; safe to read from any thread.
class GgufFile {
 private:
  // Lets std::make_unique reach the constructor while only GgufFile and GgufParser can call it.
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  explicit GgufFile(Passkey) {}

  // Maps and validates `path`. Errors: NotFound / IOError from the file system, Corruption for
  // malformed bytes, InvalidArgument for a well-formed file using an unsupported tensor type.
  static StatusOr<std::unique_ptr<GgufFile>> Open(Env* env, const std::string& path);
  // Validates bytes already in memory; `name` is used in error messages.
  static StatusOr<std::unique_ptr<GgufFile>> FromRegion(std::unique_ptr<ReadOnlyRegion> region,
                                                        std::string name);

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  const GgufValue* FindOrNull(std::string_view key) const;
  bool Has(std::string_view key) const { return FindOrNull(key) != nullptr; }
  // Typed getters: NotFound when missing, InvalidArgument when of another type. GetInt accepts
  // every integer type and bool; GetFloat accepts float32/64 and integers.
  StatusOr<int64_t> GetInt(std::string_view key) const;
  StatusOr<double> GetFloat(std::string_view key) const;
  StatusOr<std::string_view> GetString(std::string_view key) const;
  StatusOr<std::vector<std::string_view>> GetStringArray(std::string_view key) const;
  StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;  // float32 elements
  StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;  // integer elements
  const std::vector<std::string>& keys() const { return keys_; }           // in file order

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensorOrNull(std::string_view name) const;

 private:
  friend class GgufParser;

  std::unique_ptr<ReadOnlyRegion> region_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::string> keys_;
  std::unordered_map<std::string, GgufValue> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace llms
