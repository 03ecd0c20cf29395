// GgufFile: parsing and validation of GGUF v2/v3. The grammar, limits and error rules are in
// docs/gguf_format.md; every read below is bounds-checked against the bytes left first.
#include "model/gguf.h"

#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

namespace llms {

// Values are copied from the file as-is, which is right only on a little-endian host.
static_assert(std::endian::native == std::endian::little, "GGUF is little-endian");

namespace {

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
// llama.cpp's names are under 64 bytes (GGML_MAX_NAME); 64 KiB only trips on garbage and keeps
// error messages and the key table small.
constexpr uint64_t kMaxNameBytes = 64 << 10;
constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// Smallest encodings, used to reject counts before reserving memory for them. A KV is a key
// (u64 length + >= 1 byte), a u32 type and >= 1 byte of value; a tensor info is a name (u64
// length + >= 1 byte), u32 n_dims, >= 1 u64 dim, u32 type and u64 offset; a string is its u64
// length.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;
constexpr uint64_t kMinStringBytes = 8;

// Facts about each GgufType, indexed by its tag.
struct TypeFacts {
  const char* name;
  uint8_t size;  // on disk; 0 for string and array
  bool integer;  // bool is not, though GetInt accepts it
};
constexpr TypeFacts kTypeFacts[] = {
    {"uint8", 1, true},   {"int8", 1, true},   {"uint16", 2, true},   {"int16", 2, true},
    {"uint32", 4, true},  {"int32", 4, true},  {"float32", 4, false}, {"bool", 1, false},
    {"string", 0, false}, {"array", 0, false}, {"uint64", 8, true},   {"int64", 8, true},
    {"float64", 8, false}};

bool IsKnownType(uint32_t raw) { return raw < std::size(kTypeFacts); }
// REQUIRES (these three): t is a known type.
bool IsInteger(GgufType t) { return kTypeFacts[static_cast<uint32_t>(t)].integer; }
uint64_t FixedSize(GgufType t) { return kTypeFacts[static_cast<uint32_t>(t)].size; }
const char* TypeName(GgufType t) { return kTypeFacts[static_cast<uint32_t>(t)].name; }
bool IsFloat(GgufType t) { return t == GgufType::kFloat32 || t == GgufType::kFloat64; }

// ggml's names for type ids llms may not support, so "type 13" reads as "type 13 (Q5_K)".
const char* GgmlTypeName(uint32_t id) {
  // clang-format off
  static constexpr const char* kNames[] = {
      "F32", "F16", "Q4_0", "Q4_1", "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0", "Q5_1", "Q8_0",
      "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
      "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
      "BF16"};
  // clang-format on
  return id < std::size(kNames) ? kNames[id] : "unknown";
}

// "F32, F16, ..." for every type GetWeightTypeInfo accepts, so the message tracks the kernels.
std::string SupportedTypeList() {
  std::string out;
  for (uint32_t id = 0; id < 64; ++id) {
    if (auto info = GetWeightTypeInfo(id)) {
      out += (out.empty() ? "" : ", ") + std::string(info->name);
    }
  }
  return out;
}

// A key or name from the file, quoted and made printable for an error message.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 64;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > kMaxShown) out += "...";
  return out + "'";
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));  // the file gives no alignment guarantee
  return v;
}

// REQUIRES: IsInteger(t) or t == kBool, and FixedSize(t) readable bytes at p.
int64_t LoadInt(GgufType t, const uint8_t* p) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kBool:
      return Load<uint8_t>(p);
    case GgufType::kInt8:
      return Load<int8_t>(p);
    case GgufType::kUint16:
      return Load<uint16_t>(p);
    case GgufType::kInt16:
      return Load<int16_t>(p);
    case GgufType::kUint32:
      return Load<uint32_t>(p);
    case GgufType::kInt32:
      return Load<int32_t>(p);
    case GgufType::kUint64:  // checked <= INT64_MAX when parsed
      return static_cast<int64_t>(Load<uint64_t>(p));
    case GgufType::kInt64:
      return Load<int64_t>(p);
    default:
      return 0;
  }
}

// REQUIRES: IsFloat(t) and FixedSize(t) readable bytes at p.
double LoadFloat(GgufType t, const uint8_t* p) {
  return t == GgufType::kFloat32 ? Load<float>(p) : Load<double>(p);
}

// a * b, or false when it does not fit in 64 bits.
bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

std::string N(uint64_t v) { return std::to_string(v); }

std::string DimsString(const std::vector<uint64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + N(dims[i]);
  return s;
}

}  // namespace

// Fills a GgufFile from its region. Not thread-safe; used once per file by FromRegion.
class GgufParser {
 public:
  // `file` must outlive the parser and already hold its region and name.
  explicit GgufParser(GgufFile* file) : file_(file), bytes_(file->region_->bytes()) {}

  Status Parse() {
    uint64_t n_tensors = 0, n_kv = 0;
    LLMS_RETURN_IF_ERROR(ParseHeader(&n_tensors, &n_kv));
    file_->keys_.reserve(n_kv);  // bounded by the file size in ParseHeader
    for (uint64_t i = 0; i < n_kv; ++i) LLMS_RETURN_IF_ERROR(ParseKv(i));
    file_->tensors_.reserve(n_tensors);
    offset_at_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) LLMS_RETURN_IF_ERROR(ParseTensorInfo(i));
    return PlaceTensors();
  }

 private:
  std::string Where(uint64_t at, std::string_view field) const {
    return file_->name_ + ": offset " + N(at) + ": " + std::string(field) + ": ";
  }
  Status Corrupt(uint64_t at, std::string_view field, const std::string& problem) const {
    return Status::Corruption(Where(at, field) + problem);
  }
  Status Unsupported(uint64_t at, std::string_view field, const std::string& problem) const {
    return Status::InvalidArgument(Where(at, field) + problem);
  }
  Status Truncated(std::string_view field, uint64_t need) const {
    return Corrupt(pos_, field,
                   "needs " + N(need) + " bytes but only " + N(left()) + " are left (truncated?)");
  }
  uint64_t left() const { return bytes_.size() - pos_; }
  const uint8_t* here() const { return bytes_.data() + pos_; }

  template <typename T>
  StatusOr<T> Read(std::string_view field) {
    if (left() < sizeof(T)) return Truncated(field, sizeof(T));
    const T v = Load<T>(here());
    pos_ += sizeof(T);
    return v;
  }

  StatusOr<std::string_view> ReadString(std::string_view field, uint64_t max_len) {
    const uint64_t at = pos_;
    LLMS_ASSIGN_OR_RETURN(const uint64_t len, Read<uint64_t>(field));
    if (len > left()) {
      return Corrupt(at, field,
                     "string length " + N(len) + " exceeds the " + N(left()) + " bytes left");
    }
    if (len > max_len) {
      return Corrupt(at, field, "length " + N(len) + " exceeds the limit of " + N(max_len));
    }
    std::string_view s(reinterpret_cast<const char*>(here()), len);
    pos_ += len;
    return s;
  }

  Status ParseHeader(uint64_t* n_tensors, uint64_t* n_kv);
  Status ParseKv(uint64_t index);
  Status ParseValue(std::string_view field, GgufValue* value);
  Status ParseFixed(std::string_view field, GgufValue* value);
  Status ParseArray(std::string_view field, GgufValue* value);
  Status CheckFixed(GgufType t, uint64_t at, std::string_view field, uint64_t element) const;
  Status SetAlignment(uint64_t at, std::string_view field, const GgufValue& value);
  Status ParseTensorInfo(uint64_t index);
  Status ParseDims(const std::string& field, GgufTensorInfo* info);
  Status SizeTensor(uint64_t at, const std::string& field, const WeightTypeInfo& type,
                    GgufTensorInfo* info) const;
  Status PlaceTensors();

  GgufFile* file_;                   // being filled; outlives the parser
  std::span<const uint8_t> bytes_;   // the whole file
  uint64_t pos_ = 0;                 // next byte to read
  std::vector<uint64_t> offset_at_;  // per tensor: where its offset field is, for messages
};

Status GgufParser::ParseHeader(uint64_t* n_tensors, uint64_t* n_kv) {
  if (bytes_.size() < sizeof(kMagic)) {
    return Corrupt(0, "header: magic",
                   "file is " + N(bytes_.size()) + " bytes, too short for GGUF");
  }
  if (std::memcmp(bytes_.data(), kMagic, sizeof(kMagic)) != 0) {
    char got[32];
    std::snprintf(got, sizeof(got), "%02x %02x %02x %02x", bytes_[0], bytes_[1], bytes_[2],
                  bytes_[3]);
    return Corrupt(0, "header: magic",
                   std::string("bad magic ") + got + ", expected 47 47 55 46 (\"GGUF\")");
  }
  pos_ = sizeof(kMagic);
  LLMS_ASSIGN_OR_RETURN(const uint32_t version, Read<uint32_t>("header: version"));
  if (version == 1) {
    return Unsupported(4, "header: version",
                       "GGUF version 1 is not supported (it used 32-bit counts); llms reads "
                       "versions 2 and 3");
  }
  if (version == 0x02000000 || version == 0x03000000) {  // 2 or 3 written big-endian
    return Unsupported(4, "header: version", "big-endian GGUF files are not supported");
  }
  if (version != 2 && version != 3) {
    return Unsupported(4, "header: version",
                       "unsupported GGUF version " + N(version) + "; llms reads versions 2 and 3");
  }
  file_->version_ = version;
  LLMS_ASSIGN_OR_RETURN(*n_tensors, Read<uint64_t>("header: tensor_count"));
  LLMS_ASSIGN_OR_RETURN(*n_kv, Read<uint64_t>("header: kv_count"));
  if (*n_tensors > left() / kMinTensorInfoBytes) {
    return Corrupt(8, "header: tensor_count",
                   N(*n_tensors) + " tensor infos cannot fit in the " + N(left()) +
                       " bytes left (each takes at least " + N(kMinTensorInfoBytes) + ")");
  }
  if (*n_kv > left() / kMinKvBytes) {
    return Corrupt(16, "header: kv_count",
                   N(*n_kv) + " key-value pairs cannot fit in the " + N(left()) +
                       " bytes left (each takes at least " + N(kMinKvBytes) + ")");
  }
  return Status::Ok();
}

Status GgufParser::ParseKv(uint64_t index) {
  const uint64_t at = pos_;
  std::string field = "key #" + N(index);
  LLMS_ASSIGN_OR_RETURN(const std::string_view key, ReadString(field, kMaxNameBytes));
  if (key.empty()) return Corrupt(at, field, "empty key");
  std::string key_str(key);
  field += " " + Quote(key);
  if (file_->values_.count(key_str) != 0) return Corrupt(at, field, "duplicate key");
  const uint64_t type_at = pos_;
  LLMS_ASSIGN_OR_RETURN(const uint32_t raw_type, Read<uint32_t>(field));
  if (!IsKnownType(raw_type)) return Corrupt(type_at, field, "unknown value type " + N(raw_type));
  GgufValue value;
  value.type = static_cast<GgufType>(raw_type);
  LLMS_RETURN_IF_ERROR(ParseValue(field, &value));
  if (key == "general.alignment") LLMS_RETURN_IF_ERROR(SetAlignment(at, field, value));
  file_->keys_.push_back(key_str);
  file_->values_.emplace(std::move(key_str), std::move(value));
  return Status::Ok();
}

Status GgufParser::ParseValue(std::string_view field, GgufValue* value) {
  switch (value->type) {
    case GgufType::kString: {
      LLMS_ASSIGN_OR_RETURN(value->s, ReadString(field, kNoLimit));
      return Status::Ok();
    }
    case GgufType::kArray:
      return ParseArray(field, value);
    default:
      return ParseFixed(field, value);
  }
}

Status GgufParser::ParseFixed(std::string_view field, GgufValue* value) {
  const uint64_t size = FixedSize(value->type);
  if (left() < size) return Truncated(field, size);
  LLMS_RETURN_IF_ERROR(CheckFixed(value->type, pos_, field, kNoLimit));
  if (IsFloat(value->type)) {
    value->f = LoadFloat(value->type, here());
  } else {
    value->i = LoadInt(value->type, here());
  }
  pos_ += size;
  return Status::Ok();
}

// Rejects the fixed-size values whose bytes can be invalid. `element` is the array index, or
// kNoLimit for a scalar. REQUIRES: FixedSize(t) bytes readable at `at`.
Status GgufParser::CheckFixed(GgufType t, uint64_t at, std::string_view field,
                              uint64_t element) const {
  auto what = [element] { return element == kNoLimit ? "" : "element #" + N(element) + ": "; };
  if (t == GgufType::kBool && bytes_[at] > 1) {
    return Corrupt(at, field, what() + "bool value " + N(bytes_[at]) + " is not 0 or 1");
  }
  if (t == GgufType::kUint64) {
    const uint64_t v = Load<uint64_t>(bytes_.data() + at);
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Unsupported(at, field, what() + "uint64 value " + N(v) + " exceeds INT64_MAX");
    }
  }
  return Status::Ok();
}

Status GgufParser::ParseArray(std::string_view field, GgufValue* value) {
  const uint64_t at = pos_;
  LLMS_ASSIGN_OR_RETURN(const uint32_t raw_elem, Read<uint32_t>(field));
  if (raw_elem == static_cast<uint32_t>(GgufType::kArray)) {
    return Corrupt(at, field, "arrays of arrays are not supported");
  }
  if (!IsKnownType(raw_elem))
    return Corrupt(at, field, "unknown array element type " + N(raw_elem));
  const auto elem = static_cast<GgufType>(raw_elem);
  const uint64_t count_at = pos_;
  LLMS_ASSIGN_OR_RETURN(const uint64_t count, Read<uint64_t>(field));
  const bool strings = elem == GgufType::kString;
  const uint64_t min_size = strings ? kMinStringBytes : FixedSize(elem);
  if (count > left() / min_size) {
    return Corrupt(count_at, field,
                   "array count " + N(count) + " of " + TypeName(elem) + " cannot fit in the " +
                       N(left()) + " bytes left");
  }
  value->elem_type = elem;
  value->count = count;
  if (strings) {
    value->strings.reserve(count);  // <= left() / 8 elements, checked above
    for (uint64_t i = 0; i < count; ++i) {
      LLMS_ASSIGN_OR_RETURN(const std::string_view s, ReadString(field, kNoLimit));
      value->strings.push_back(s);
    }
    return Status::Ok();
  }
  if (elem == GgufType::kBool || elem == GgufType::kUint64) {
    for (uint64_t i = 0; i < count; ++i) {
      LLMS_RETURN_IF_ERROR(CheckFixed(elem, pos_ + i * min_size, field, i));
    }
  }
  value->raw = bytes_.subspan(pos_, count * min_size);  // count * min_size <= left()
  pos_ += count * min_size;
  return Status::Ok();
}

Status GgufParser::SetAlignment(uint64_t at, std::string_view field, const GgufValue& value) {
  if (value.type != GgufType::kUint32) {
    return Corrupt(at, field,
                   std::string("general.alignment must be a uint32, not ") + TypeName(value.type));
  }
  const auto a = static_cast<uint64_t>(value.i);
  if (!std::has_single_bit(a)) {
    return Corrupt(at, field, "alignment " + N(a) + " is not a nonzero power of two");
  }
  file_->alignment_ = a;
  return Status::Ok();
}

Status GgufParser::ParseTensorInfo(uint64_t index) {
  const uint64_t at = pos_;
  std::string field = "tensor #" + N(index);
  LLMS_ASSIGN_OR_RETURN(const std::string_view name, ReadString(field + ": name", kMaxNameBytes));
  if (name.empty()) return Corrupt(at, field, "empty tensor name");
  field += " " + Quote(name);
  GgufTensorInfo info;
  info.name = std::string(name);
  if (file_->tensor_index_.count(info.name) != 0)
    return Corrupt(at, field, "duplicate tensor name");
  const uint64_t dims_at = pos_;
  LLMS_RETURN_IF_ERROR(ParseDims(field, &info));
  const uint64_t type_at = pos_;
  LLMS_ASSIGN_OR_RETURN(const uint32_t raw_type, Read<uint32_t>(field + ": type"));
  const std::optional<WeightTypeInfo> type = GetWeightTypeInfo(raw_type);
  if (!type) {
    return Unsupported(type_at, field + ": type",
                       "tensor type " + N(raw_type) + " (" + GgmlTypeName(raw_type) +
                           ") is not supported; llms reads " + SupportedTypeList());
  }
  info.type = static_cast<WeightType>(raw_type);
  offset_at_.push_back(pos_);
  LLMS_ASSIGN_OR_RETURN(info.offset, Read<uint64_t>(field + ": offset"));
  LLMS_RETURN_IF_ERROR(SizeTensor(dims_at, field, *type, &info));
  file_->tensor_index_.emplace(info.name, file_->tensors_.size());
  file_->tensors_.push_back(std::move(info));
  return Status::Ok();
}

Status GgufParser::ParseDims(const std::string& field, GgufTensorInfo* info) {
  const uint64_t at = pos_;
  LLMS_ASSIGN_OR_RETURN(const uint32_t n_dims, Read<uint32_t>(field + ": n_dims"));
  if (n_dims == 0 || n_dims > kMaxDims) {
    return Corrupt(at, field + ": n_dims", "n_dims " + N(n_dims) + " is outside 1.." + N(kMaxDims));
  }
  info->dims.resize(n_dims);
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t dim_at = pos_;
    const std::string dim_field = field + ": dims[" + N(d) + "]";
    LLMS_ASSIGN_OR_RETURN(info->dims[d], Read<uint64_t>(dim_field));
    if (info->dims[d] == 0) return Corrupt(dim_at, dim_field, "dimension is 0");
  }
  return Status::Ok();
}

// Sets size_bytes from dims and type, refusing shapes whose byte size overflows or exceeds the
// file. `at` is where the dims start.
Status GgufParser::SizeTensor(uint64_t at, const std::string& field, const WeightTypeInfo& type,
                              GgufTensorInfo* info) const {
  const std::vector<uint64_t>& dims = info->dims;
  const auto block = static_cast<uint64_t>(type.block_size);
  if (dims[0] % block != 0) {
    return Corrupt(at, field,
                   "dims[0] = " + N(dims[0]) + " is not a multiple of the " + type.name +
                       " block size " + N(block));
  }
  uint64_t elements = 1;
  for (uint64_t d : dims) {
    if (!CheckedMul(elements, d, &elements)) {
      return Corrupt(at, field, "dims " + DimsString(dims) + " overflow 64 bits");
    }
  }
  uint64_t row_bytes = 0, size = 0;
  if (!CheckedMul(dims[0] / block, static_cast<uint64_t>(type.block_bytes), &row_bytes) ||
      !CheckedMul(elements / dims[0], row_bytes, &size)) {
    return Corrupt(at, field, "byte size of dims " + DimsString(dims) + " overflows 64 bits");
  }
  if (size > bytes_.size()) {
    return Corrupt(at, field,
                   "dims " + DimsString(dims) + " of " + type.name + " need " + N(size) +
                       " bytes, more than the whole file (" + N(bytes_.size()) + ")");
  }
  info->size_bytes = size;
  return Status::Ok();
}

// Turns each tensor's data-relative offset into a file offset and checks it against the file.
Status GgufParser::PlaceTensors() {
  const uint64_t align = file_->alignment_;
  const uint64_t size = bytes_.size();
  // pos_ <= size and align <= 2^31, so this cannot overflow.
  const uint64_t data_start = (pos_ + align - 1) / align * align;
  for (size_t i = 0; i < file_->tensors_.size(); ++i) {
    GgufTensorInfo& t = file_->tensors_[i];
    const std::string field = "tensor #" + N(i) + " " + Quote(t.name) + ": offset";
    const uint64_t rel = t.offset;
    if (rel % align != 0) {
      return Corrupt(offset_at_[i], field,
                     "data offset " + N(rel) + " is not a multiple of the alignment " + N(align));
    }
    if (data_start > size || rel > size - data_start || t.size_bytes > size - data_start - rel) {
      return Corrupt(offset_at_[i], field,
                     N(t.size_bytes) + " bytes at data offset " + N(rel) +
                         " (data section starts at " + N(data_start) +
                         ") extend past the end of the file (" + N(size) + " bytes)");
    }
    t.offset = data_start + rel;
    t.data = bytes_.data() + t.offset;
  }
  return Status::Ok();
}

uint64_t GgufTensorInfo::num_elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;  // cannot overflow for a validated tensor
  return n;
}

uint64_t GgufTensorInfo::rows() const {
  uint64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(Env* env, const std::string& path) {
  LLMS_ASSIGN_OR_RETURN(auto region, env->MapFile(path));
  return FromRegion(std::move(region), path);
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromRegion(std::unique_ptr<ReadOnlyRegion> region,
                                                         std::string name) {
  if (region == nullptr) return Status::InvalidArgument(name + ": no bytes to read");
  auto file = std::make_unique<GgufFile>(Passkey());
  file->region_ = std::move(region);
  file->name_ = std::move(name);
  GgufParser parser(file.get());
  LLMS_RETURN_IF_ERROR(parser.Parse());
  return file;
}

const GgufValue* GgufFile::FindOrNull(std::string_view key) const {
  auto it = values_.find(std::string(key));
  return it == values_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::FindTensorOrNull(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// The value of `key`, or NotFound.
StatusOr<const GgufValue*> Find(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.FindOrNull(key);
  if (v == nullptr) return Status::NotFound(f.name() + ": no key '" + std::string(key) + "'");
  return v;
}

Status WrongType(const GgufFile& f, std::string_view key, const GgufValue& v,
                 std::string_view wanted) {
  std::string got = TypeName(v.type);
  if (v.type == GgufType::kArray) got += std::string(" of ") + TypeName(v.elem_type);
  return Status::InvalidArgument(f.name() + ": key '" + std::string(key) + "' is " + got +
                                 ", not " + std::string(wanted));
}

}  // namespace

StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  LLMS_ASSIGN_OR_RETURN(const GgufValue* v, Find(*this, key));
  if (!IsInteger(v->type) && v->type != GgufType::kBool)
    return WrongType(*this, key, *v, "integer");
  return v->i;
}

StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  LLMS_ASSIGN_OR_RETURN(const GgufValue* v, Find(*this, key));
  if (IsFloat(v->type)) return v->f;
  if (IsInteger(v->type)) return static_cast<double>(v->i);
  return WrongType(*this, key, *v, "a number");
}

StatusOr<std::string_view> GgufFile::GetString(std::string_view key) const {
  LLMS_ASSIGN_OR_RETURN(const GgufValue* v, Find(*this, key));
  if (v->type != GgufType::kString) return WrongType(*this, key, *v, "string");
  return v->s;
}

StatusOr<std::vector<std::string_view>> GgufFile::GetStringArray(std::string_view key) const {
  LLMS_ASSIGN_OR_RETURN(const GgufValue* v, Find(*this, key));
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kString) {
    return WrongType(*this, key, *v, "array of string");
  }
  return v->strings;
}

StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  LLMS_ASSIGN_OR_RETURN(const GgufValue* v, Find(*this, key));
  if (v->type != GgufType::kArray || !IsFloat(v->elem_type)) {
    return WrongType(*this, key, *v, "array of float32");
  }
  const uint64_t size = FixedSize(v->elem_type);
  std::vector<float> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) {
    out[i] = static_cast<float>(LoadFloat(v->elem_type, v->raw.data() + i * size));
  }
  return out;
}

StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  LLMS_ASSIGN_OR_RETURN(const GgufValue* v, Find(*this, key));
  if (v->type != GgufType::kArray ||
      (!IsInteger(v->elem_type) && v->elem_type != GgufType::kBool)) {
    return WrongType(*this, key, *v, "array of integers");
  }
  const uint64_t size = FixedSize(v->elem_type);
  std::vector<int64_t> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = LoadInt(v->elem_type, v->raw.data() + i * size);
  return out;
}

}  // namespace llms
