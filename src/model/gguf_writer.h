// GgufWriter: builds GGUF v3 files (byte grammar in docs/gguf_format.md) for tests and the
// synthetic-model generator. Tensor bytes are produced by callbacks at write time, so writing a
// multi-GB file holds one tensor in memory at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "env/env.h"
#include "formats/weight_types.h"
#include "model/gguf.h"

namespace llms {

// Usage:
//   GgufWriter w;
//   w.AddString("general.architecture", "llama");
//   w.AddTensor("token_embd.weight", WeightType::kF32, {64, 512}, [&](std::span<uint8_t> out) {
//     ...write 64 * 512 floats...
//   });
//   LLMS_RETURN_IF_ERROR(w.Write(Env::Default(), "model.gguf"));
//
// The Add* methods never fail: a bad argument (empty, over-long or duplicate key or tensor name,
// bad dims, unsupported type, bad alignment) is remembered and reported by Write/WriteToString
// as InvalidArgument before any byte is written.
// Thread safety: none; build and write from one thread.
class GgufWriter {
 public:
  // Writes one tensor's bytes into `out`, which is exactly the tensor's size and pre-zeroed.
  // Called once per Write/WriteToString, in AddTensor order.
  using FillFn = std::function<void(std::span<uint8_t> out)>;

  GgufWriter() = default;
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, written in the order added. A "general.alignment" uint32 sets the tensor data
  // alignment (a nonzero power of two; default 32).
  void AddUint8(std::string key, uint8_t v);
  void AddInt8(std::string key, int8_t v);
  void AddUint16(std::string key, uint16_t v);
  void AddInt16(std::string key, int16_t v);
  void AddUint32(std::string key, uint32_t v);
  void AddInt32(std::string key, int32_t v);
  void AddUint64(std::string key, uint64_t v);  // readers reject values above INT64_MAX
  void AddInt64(std::string key, int64_t v);
  void AddFloat32(std::string key, float v);
  void AddFloat64(std::string key, double v);
  void AddBool(std::string key, bool v);
  void AddString(std::string key, std::string_view v);
  void AddStringArray(std::string key, const std::vector<std::string>& values);
  void AddFloat32Array(std::string key, const std::vector<float>& values);
  void AddInt32Array(std::string key, const std::vector<int32_t>& values);
  // An array of any fixed-size element type (not string or array): `bytes` holds `count`
  // little-endian elements.
  void AddArray(std::string key, GgufType elem_type, uint64_t count,
                std::span<const uint8_t> bytes);

  // A tensor of `dims` (ggml order: dims[0] is the row length, 1..4 dims, dims[0] a multiple of
  // the type's block size) whose bytes `fill` writes. `fill` must stay callable until the last
  // Write.
  void AddTensor(std::string name, WeightType type, std::vector<uint64_t> dims, FillFn fill);

  // Writes the file to `path` through `path + ".tmp"`, synced, closed and renamed, so `path`
  // never names a partial file. Errors: InvalidArgument for a bad Add* argument (before any
  // file is created); IOError / ResourceExhausted from `env`, after which the temporary file
  // has been removed. Two writers must not target the same path at once.
  Status Write(Env* env, const std::string& path) const;
  // The same bytes, in memory (the whole file: for tests and small files).
  StatusOr<std::string> WriteToString() const;

 private:
  struct Kv {
    std::string key;
    GgufType type;
    std::string payload;  // the encoded value that follows the type tag
  };
  struct Tensor {
    std::string name;
    WeightType type;
    std::vector<uint64_t> dims;
    FillFn fill;
  };
  // What Write needs after validation: everything before the tensor data, and where each
  // tensor's bytes go.
  struct Plan {
    std::string head;  // header, KVs, tensor infos and padding up to the data section
    uint64_t alignment = 0;
    std::vector<uint64_t> sizes;    // per tensor, bytes
    std::vector<uint64_t> offsets;  // per tensor, from the start of the data section
  };
  using AppendFn = std::function<Status(std::span<const uint8_t>)>;

  void AddKv(std::string key, GgufType type, std::string payload);
  void Fail(const std::string& problem);
  StatusOr<uint64_t> Alignment() const;
  Status CheckNames() const;
  StatusOr<uint64_t> TensorSize(const Tensor& t) const;
  StatusOr<Plan> MakePlan() const;
  Status Stream(const Plan& plan, const AppendFn& append) const;

  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  Status status_;  // the first bad Add* argument
};

}  // namespace llms
