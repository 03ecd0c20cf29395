// GgufWriter: validation, layout and streaming of GGUF v3 files.
#include "model/gguf_writer.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

namespace llms {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian");

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;    // GGUF_DEFAULT_ALIGNMENT
constexpr uint64_t kMaxNameBytes = 64 << 10;  // what GgufFile accepts
constexpr size_t kMaxDims = 4;

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

template <typename T>
std::string Encode(T v) {
  std::string s;
  Put(&s, v);
  return s;
}

void PutString(std::string* out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out->append(s);
}

// a * b, or false when it does not fit in 64 bits.
bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

uint64_t AlignUp(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }

// Bytes of one element of a fixed-size type; 0 for string and array.
uint64_t ElementSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

// Header of an array payload: element type and count.
std::string ArrayHead(GgufType elem, uint64_t count) {
  std::string s;
  Put<uint32_t>(&s, static_cast<uint32_t>(elem));
  Put<uint64_t>(&s, count);
  return s;
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Appends `n` zero bytes in bounded chunks (padding can be up to alignment - 1 bytes).
Status AppendZeros(const std::function<Status(std::span<const uint8_t>)>& append, uint64_t n) {
  static constexpr uint8_t kZeros[4096] = {};
  while (n > 0) {
    const uint64_t k = std::min<uint64_t>(n, sizeof(kZeros));
    LLMS_RETURN_IF_ERROR(append({kZeros, static_cast<size_t>(k)}));
    n -= k;
  }
  return Status::Ok();
}

Status CheckName(std::string_view what, std::string_view name) {
  if (name.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (name.size() > kMaxNameBytes) {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(name.substr(0, 64)) +
                                   "...' is longer than " + std::to_string(kMaxNameBytes) +
                                   " bytes");
  }
  return Status::Ok();
}

}  // namespace

void GgufWriter::AddKv(std::string key, GgufType type, std::string payload) {
  kvs_.push_back(Kv{std::move(key), type, std::move(payload)});
}

void GgufWriter::Fail(const std::string& problem) {
  if (status_.ok()) status_ = Status::InvalidArgument(problem);
}

void GgufWriter::AddUint8(std::string key, uint8_t v) {
  AddKv(std::move(key), GgufType::kUint8, Encode(v));
}
void GgufWriter::AddInt8(std::string key, int8_t v) {
  AddKv(std::move(key), GgufType::kInt8, Encode(v));
}
void GgufWriter::AddUint16(std::string key, uint16_t v) {
  AddKv(std::move(key), GgufType::kUint16, Encode(v));
}
void GgufWriter::AddInt16(std::string key, int16_t v) {
  AddKv(std::move(key), GgufType::kInt16, Encode(v));
}
void GgufWriter::AddUint32(std::string key, uint32_t v) {
  AddKv(std::move(key), GgufType::kUint32, Encode(v));
}
void GgufWriter::AddInt32(std::string key, int32_t v) {
  AddKv(std::move(key), GgufType::kInt32, Encode(v));
}
void GgufWriter::AddUint64(std::string key, uint64_t v) {
  AddKv(std::move(key), GgufType::kUint64, Encode(v));
}
void GgufWriter::AddInt64(std::string key, int64_t v) {
  AddKv(std::move(key), GgufType::kInt64, Encode(v));
}
void GgufWriter::AddFloat32(std::string key, float v) {
  AddKv(std::move(key), GgufType::kFloat32, Encode(v));
}
void GgufWriter::AddFloat64(std::string key, double v) {
  AddKv(std::move(key), GgufType::kFloat64, Encode(v));
}
void GgufWriter::AddBool(std::string key, bool v) {
  AddKv(std::move(key), GgufType::kBool, Encode<uint8_t>(v ? 1 : 0));
}

void GgufWriter::AddString(std::string key, std::string_view v) {
  std::string payload;
  PutString(&payload, v);
  AddKv(std::move(key), GgufType::kString, std::move(payload));
}

void GgufWriter::AddStringArray(std::string key, const std::vector<std::string>& values) {
  std::string payload = ArrayHead(GgufType::kString, values.size());
  for (const std::string& v : values) PutString(&payload, v);
  AddKv(std::move(key), GgufType::kArray, std::move(payload));
}

void GgufWriter::AddFloat32Array(std::string key, const std::vector<float>& values) {
  AddArray(std::move(key), GgufType::kFloat32, values.size(),
           {reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float)});
}

void GgufWriter::AddInt32Array(std::string key, const std::vector<int32_t>& values) {
  AddArray(std::move(key), GgufType::kInt32, values.size(),
           {reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(int32_t)});
}

void GgufWriter::AddArray(std::string key, GgufType elem_type, uint64_t count,
                          std::span<const uint8_t> bytes) {
  const uint64_t size = ElementSize(elem_type);
  if (size == 0) return Fail("AddArray '" + key + "': element type must be fixed-size");
  if (bytes.size() / size != count || bytes.size() % size != 0) {
    return Fail("AddArray '" + key + "': " + std::to_string(bytes.size()) + " bytes are not " +
                std::to_string(count) + " elements of " + std::to_string(size) + " bytes");
  }
  std::string payload = ArrayHead(elem_type, count);
  payload.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  AddKv(std::move(key), GgufType::kArray, std::move(payload));
}

void GgufWriter::AddTensor(std::string name, WeightType type, std::vector<uint64_t> dims,
                           FillFn fill) {
  tensors_.push_back(Tensor{std::move(name), type, std::move(dims), std::move(fill)});
}

StatusOr<uint64_t> GgufWriter::Alignment() const {
  for (const Kv& kv : kvs_) {
    if (kv.key != "general.alignment") continue;
    if (kv.type != GgufType::kUint32) {
      return Status::InvalidArgument("general.alignment must be added with AddUint32");
    }
    uint32_t a = 0;
    std::memcpy(&a, kv.payload.data(), sizeof(a));
    if (!std::has_single_bit(a)) {
      return Status::InvalidArgument("general.alignment " + std::to_string(a) +
                                     " is not a nonzero power of two");
    }
    return uint64_t{a};
  }
  return kDefaultAlignment;
}

// Keys and tensor names: non-empty, not over-long, unique.
Status GgufWriter::CheckNames() const {
  std::set<std::string_view> seen;
  for (const Kv& kv : kvs_) {
    LLMS_RETURN_IF_ERROR(CheckName("key", kv.key));
    if (!seen.insert(kv.key).second) {
      return Status::InvalidArgument("duplicate key '" + kv.key + "'");
    }
  }
  seen.clear();
  for (const Tensor& t : tensors_) {
    LLMS_RETURN_IF_ERROR(CheckName("tensor name", t.name));
    if (!seen.insert(t.name).second) {
      return Status::InvalidArgument("duplicate tensor name '" + t.name + "'");
    }
  }
  return Status::Ok();
}

// Bytes of `t`, or InvalidArgument for a shape or type GgufFile would refuse.
StatusOr<uint64_t> GgufWriter::TensorSize(const Tensor& t) const {
  const std::string what = "tensor '" + t.name + "': ";
  const auto info = GetWeightTypeInfo(t.type);
  if (!info) {
    return Status::InvalidArgument(what + "unsupported type " +
                                   std::to_string(static_cast<uint32_t>(t.type)));
  }
  if (t.dims.empty() || t.dims.size() > kMaxDims) {
    return Status::InvalidArgument(what + "needs 1 to 4 dims, has " +
                                   std::to_string(t.dims.size()));
  }
  if (!t.fill) return Status::InvalidArgument(what + "no fill function");
  if (t.dims[0] % static_cast<uint64_t>(info->block_size) != 0) {
    return Status::InvalidArgument(what + "dims[0] = " + std::to_string(t.dims[0]) +
                                   " is not a multiple of the " + info->name + " block size " +
                                   std::to_string(info->block_size));
  }
  for (uint64_t d : t.dims) {
    if (d == 0) return Status::InvalidArgument(what + "has a dimension of 0");
  }
  // Elements and bytes, every product checked (the reader refuses either overflowing).
  uint64_t elements = 1, size = 0;
  for (uint64_t d : t.dims) {
    if (!CheckedMul(elements, d, &elements)) {
      return Status::InvalidArgument(what + "element count overflows 64 bits");
    }
  }
  if (!CheckedMul(t.dims[0] / static_cast<uint64_t>(info->block_size),
                  static_cast<uint64_t>(info->block_bytes), &size) ||
      !CheckedMul(size, elements / t.dims[0], &size)) {
    return Status::InvalidArgument(what + "byte size overflows 64 bits");
  }
  return size;
}

StatusOr<GgufWriter::Plan> GgufWriter::MakePlan() const {
  LLMS_RETURN_IF_ERROR(status_);
  LLMS_RETURN_IF_ERROR(CheckNames());
  Plan plan;
  LLMS_ASSIGN_OR_RETURN(plan.alignment, Alignment());
  uint64_t end = 0;  // of the data section so far
  for (const Tensor& t : tensors_) {
    LLMS_ASSIGN_OR_RETURN(const uint64_t size, TensorSize(t));
    const uint64_t offset = AlignUp(end, plan.alignment);
    if (offset < end || size > std::numeric_limits<uint64_t>::max() - offset) {
      return Status::InvalidArgument("tensor '" + t.name + "': data section overflows 64 bits");
    }
    plan.sizes.push_back(size);
    plan.offsets.push_back(offset);
    end = offset + size;
  }
  std::string& h = plan.head;
  h.append("GGUF");
  Put<uint32_t>(&h, kVersion);
  Put<uint64_t>(&h, tensors_.size());
  Put<uint64_t>(&h, kvs_.size());
  for (const Kv& kv : kvs_) {
    PutString(&h, kv.key);
    Put<uint32_t>(&h, static_cast<uint32_t>(kv.type));
    h.append(kv.payload);
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    PutString(&h, t.name);
    Put<uint32_t>(&h, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) Put<uint64_t>(&h, d);
    Put<uint32_t>(&h, static_cast<uint32_t>(t.type));
    Put<uint64_t>(&h, plan.offsets[i]);
  }
  // The data section starts aligned; a file without tensors has none and ends here.
  if (!tensors_.empty()) h.resize(AlignUp(h.size(), plan.alignment), '\0');
  return plan;
}

// Appends the head, then each tensor padded to its offset. No padding follows the last tensor:
// the file ends where the data does, so any truncation is detectable.
Status GgufWriter::Stream(const Plan& plan, const AppendFn& append) const {
  LLMS_RETURN_IF_ERROR(append(AsBytes(plan.head)));
  std::vector<uint8_t> buf;  // one tensor at a time; capacity grows to the largest
  uint64_t end = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    LLMS_RETURN_IF_ERROR(AppendZeros(append, plan.offsets[i] - end));
    buf.assign(static_cast<size_t>(plan.sizes[i]), 0);
    tensors_[i].fill(std::span<uint8_t>(buf));
    LLMS_RETURN_IF_ERROR(append(buf));
    end = plan.offsets[i] + plan.sizes[i];
  }
  return Status::Ok();
}

StatusOr<std::string> GgufWriter::WriteToString() const {
  LLMS_ASSIGN_OR_RETURN(const Plan plan, MakePlan());
  std::string out;
  LLMS_RETURN_IF_ERROR(Stream(plan, [&out](std::span<const uint8_t> b) {
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
    return Status::Ok();
  }));
  return out;
}

Status GgufWriter::Write(Env* env, const std::string& path) const {
  LLMS_ASSIGN_OR_RETURN(const Plan plan, MakePlan());
  return WriteFileAtomically(env, path, [&](WritableFile* file) {
    return Stream(plan, [file](std::span<const uint8_t> b) { return file->Append(b); });
  });
}

}  // namespace llms
