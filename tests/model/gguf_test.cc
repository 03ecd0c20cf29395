// GgufFile: the real model, a writer round trip of every value and tensor type, and hostile
// files (bad headers, absurd counts and dims, truncation at every offset, random mutations).
#include "model/gguf.h"

#include <cstring>
#include <limits>
#include <random>

#include "model/gguf_writer.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

constexpr uint64_t kHuge62 = uint64_t{1} << 62;
constexpr uint32_t kF32 = 0, kQ8_0 = 8;

// Hand-assembled GGUF bytes, independent of GgufWriter, for files the writer refuses to make.
class Bytes {
 public:
  template <typename T>
  Bytes& Put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s_.append(b, sizeof(T));
    return *this;
  }
  Bytes& U8(uint8_t v) { return Put(v); }
  Bytes& U32(uint32_t v) { return Put(v); }
  Bytes& U64(uint64_t v) { return Put(v); }
  Bytes& Str(std::string_view v) {
    U64(v.size());
    s_.append(v);
    return *this;
  }
  Bytes& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    s_.append("GGUF");
    return U32(version).U64(n_tensors).U64(n_kv);
  }
  Bytes& Key(std::string_view key, GgufType type) {
    return Str(key).U32(static_cast<uint32_t>(type));
  }
  Bytes& Tensor(std::string_view name, const std::vector<uint64_t>& dims, uint32_t type,
                uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    return U32(type).U64(offset);
  }
  Bytes& PadTo(size_t align) {
    s_.resize((s_.size() + align - 1) / align * align, '\0');
    return *this;
  }
  Bytes& Zeros(size_t n) {
    s_.append(n, '\0');
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

StatusOr<std::unique_ptr<GgufFile>> Parse(std::string bytes) {
  return GgufFile::FromRegion(NewMemoryRegion(std::move(bytes)), "t.gguf");
}

// The file fails to parse with `code` and a message naming the file, an offset and `needle`.
::testing::AssertionResult FailsWith(const Bytes& b, StatusCode code, std::string_view needle) {
  auto r = Parse(b.str());
  if (r.ok()) return ::testing::AssertionFailure() << "parsed OK";
  const std::string& msg = r.status().message();
  if (r.status().code() != code || msg.find(needle) == std::string::npos ||
      msg.rfind("t.gguf: offset ", 0) != 0) {
    return ::testing::AssertionFailure() << r.status().ToString() << " (wanted "
                                         << StatusCodeName(code) << " with '" << needle << "')";
  }
  return ::testing::AssertionSuccess() << r.status().ToString();
}

// One F32-or-other tensor "w" of `dims`, with `data_bytes` of zeros after the aligned start.
Bytes OneTensor(const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset,
                size_t data_bytes) {
  Bytes b;
  b.Header(1, 0).Tensor("w", dims, type, offset).PadTo(32).Zeros(data_bytes);
  return b;
}

// A small file touching every section: scalars, a string, arrays, two tensors of two types.
std::string SmallFile() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddUint32("llama.block_count", 2);
  w.AddBool("flag", true);
  w.AddUint64("big", 1234567);
  w.AddStringArray("tokens", {"<unk>", "a", ""});
  w.AddFloat32Array("scores", {0.5f, -1.0f});
  w.AddArray("bools", GgufType::kBool, 2, std::vector<uint8_t>{0, 1});
  w.AddTensor("a", WeightType::kF32, {4, 2}, [](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i);
  });
  w.AddTensor("b", WeightType::kQ8_0, {32}, [](std::span<uint8_t> out) { out[0] = 7; });
  auto bytes = w.WriteToString();
  EXPECT_OK(bytes);
  return bytes.ok() ? *bytes : std::string();
}

TEST(GgufTest, OpensRealModel) {
  auto f = GgufFile::Open(Env::Default(), testing::DefaultModelPath());
  ASSERT_OK(f);
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  auto arch = g.GetString("general.architecture");
  ASSERT_OK(arch);
  EXPECT_EQ(*arch, "llama");
  auto dim = g.GetInt("llama.embedding_length");
  ASSERT_OK(dim);
  EXPECT_EQ(*dim, 64);
  auto layers = g.GetInt("llama.block_count");
  ASSERT_OK(layers);
  EXPECT_EQ(*layers, 5);
  auto tokens = g.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_OK(tokens);
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  auto scores = g.GetFloatArray("tokenizer.ggml.scores");
  ASSERT_OK(scores);
  EXPECT_EQ(scores->size(), 512u);
  const GgufTensorInfo* embd = g.FindTensorOrNull("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<uint64_t>{64, 512}));
  EXPECT_EQ(embd->type, WeightType::kF32);
  EXPECT_EQ(embd->size_bytes, 64u * 512 * 4);
  EXPECT_EQ(embd->rows(), 512u);
  EXPECT_EQ(embd->num_elements(), 64u * 512);
  EXPECT_NE(g.FindTensorOrNull("output.weight"), nullptr);
  EXPECT_EQ(g.FindTensorOrNull("no.such.tensor"), nullptr);
  for (const GgufTensorInfo& t : g.tensors()) {
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(t.size_bytes, t.rows() * RowBytes(t.type, t.dims[0])) << t.name;
  }
}

TEST(GgufTest, OpenMissingFileFails) {
  EXPECT_FALSE(GgufFile::Open(Env::Default(), "/nonexistent/model.gguf").ok());
}

TEST(GgufTest, RoundTripsEveryValueType) {
  GgufWriter w;
  w.AddUint8("u8", 200);
  w.AddInt8("i8", -100);
  w.AddUint16("u16", 60000);
  w.AddInt16("i16", -30000);
  w.AddUint32("u32", 4000000000u);
  w.AddInt32("i32", -2000000000);
  w.AddUint64("u64", std::numeric_limits<int64_t>::max());
  w.AddInt64("i64", std::numeric_limits<int64_t>::min());
  w.AddFloat32("f32", 1.5f);
  w.AddFloat64("f64", -2.25e100);
  w.AddBool("yes", true);
  w.AddBool("no", false);
  w.AddString("str", std::string_view("a\0\xff", 3));  // NUL and invalid UTF-8 are allowed
  w.AddString("empty", "");
  w.AddStringArray("strs", {"x", "", "zz"});
  w.AddFloat32Array("floats", {0.25f, -8.0f});
  w.AddInt32Array("ints", {-1, 7, 1 << 30});
  w.AddInt32Array("none", {});
  const uint64_t u64s[] = {0, uint64_t{1} << 62};
  w.AddArray("u64s", GgufType::kUint64, 2, {reinterpret_cast<const uint8_t*>(u64s), 16});
  w.AddArray("bools", GgufType::kBool, 3, std::vector<uint8_t>{1, 0, 1});
  const double f64s[] = {0.5, 1e300};
  w.AddArray("f64s", GgufType::kFloat64, 2, {reinterpret_cast<const uint8_t*>(f64s), 16});
  auto bytes = w.WriteToString();
  ASSERT_OK(bytes);
  auto f = Parse(*bytes);
  ASSERT_OK(f);
  const GgufFile& g = **f;
  EXPECT_EQ(g.keys().size(), 21u);
  EXPECT_EQ(g.keys().front(), "u8");
  const std::pair<const char*, int64_t> ints[] = {{"u8", 200},
                                                  {"i8", -100},
                                                  {"u16", 60000},
                                                  {"i16", -30000},
                                                  {"u32", 4000000000},
                                                  {"i32", -2000000000},
                                                  {"yes", 1},
                                                  {"no", 0},
                                                  {"u64", std::numeric_limits<int64_t>::max()},
                                                  {"i64", std::numeric_limits<int64_t>::min()}};
  for (const auto& [key, want] : ints) {
    auto v = g.GetInt(key);
    ASSERT_OK(v);
    EXPECT_EQ(*v, want) << key;
  }
  EXPECT_EQ(*g.GetFloat("f32"), 1.5);
  EXPECT_EQ(*g.GetFloat("f64"), -2.25e100);
  EXPECT_EQ(*g.GetFloat("u16"), 60000.0);  // integers widen
  EXPECT_EQ(*g.GetString("str"), std::string_view("a\0\xff", 3));
  EXPECT_EQ(*g.GetString("empty"), "");
  EXPECT_EQ(*g.GetStringArray("strs"), (std::vector<std::string_view>{"x", "", "zz"}));
  EXPECT_EQ(*g.GetFloatArray("floats"), (std::vector<float>{0.25f, -8.0f}));
  EXPECT_EQ(*g.GetFloatArray("f64s"), (std::vector<float>{0.5f, static_cast<float>(1e300)}));
  EXPECT_EQ(*g.GetIntArray("ints"), (std::vector<int64_t>{-1, 7, 1 << 30}));
  EXPECT_TRUE(g.GetIntArray("none")->empty());
  EXPECT_EQ(*g.GetIntArray("u64s"), (std::vector<int64_t>{0, int64_t{1} << 62}));
  EXPECT_EQ(*g.GetIntArray("bools"), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(g.FindOrNull("bools")->elem_type, GgufType::kBool);
  EXPECT_EQ(g.FindOrNull("bools")->count, 3u);
  // Missing keys and wrong types are errors, not crashes.
  EXPECT_EQ(g.GetInt("missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(g.GetInt("str").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetString("u8").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetFloat("strs").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetStringArray("ints").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetFloatArray("ints").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetIntArray("strs").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(g.Has("missing"));
}

TEST(GgufTest, RoundTripsEverySupportedTensorType) {
  const WeightType types[] = {WeightType::kF32,  WeightType::kF16,  WeightType::kBF16,
                              WeightType::kQ4_0, WeightType::kQ8_0, WeightType::kQ4_K,
                              WeightType::kQ6_K};
  const std::vector<std::vector<uint64_t>> shapes = {{256}, {256, 3}, {512, 2, 3}, {256, 1, 2, 2}};
  GgufWriter w;
  std::vector<std::string> names;
  for (WeightType type : types) {
    for (const auto& dims : shapes) {
      const std::string name =
          std::string(GetWeightTypeInfo(type)->name) + "." + std::to_string(names.size());
      const auto seed = static_cast<uint8_t>(names.size());
      w.AddTensor(name, type, dims, [seed](std::span<uint8_t> out) {
        for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 31 + seed);
      });
      names.push_back(name);
    }
  }
  auto bytes = w.WriteToString();
  ASSERT_OK(bytes);
  auto f = Parse(*bytes);
  ASSERT_OK(f);
  ASSERT_EQ((*f)->tensors().size(), names.size());
  for (size_t n = 0; n < names.size(); ++n) {
    const GgufTensorInfo* t = (*f)->FindTensorOrNull(names[n]);
    ASSERT_NE(t, nullptr) << names[n];
    EXPECT_EQ(t->type, types[n / shapes.size()]);
    EXPECT_EQ(t->dims, shapes[n % shapes.size()]);
    EXPECT_EQ(t->offset % 32, 0u);
    EXPECT_EQ(t->size_bytes, t->rows() * RowBytes(t->type, t->dims[0]));
    ASSERT_LE(t->offset + t->size_bytes, bytes->size());
    EXPECT_EQ(std::memcmp(t->data, bytes->data() + t->offset, t->size_bytes), 0);
    bool same = true;
    for (size_t i = 0; i < t->size_bytes; ++i) {
      same = same && t->data[i] == static_cast<uint8_t>(i * 31 + n);
    }
    EXPECT_TRUE(same) << names[n];
  }
}

TEST(GgufTest, AcceptsVersion2) {
  std::string bytes = SmallFile();
  bytes[4] = 2;
  auto f = Parse(bytes);
  ASSERT_OK(f);
  EXPECT_EQ((*f)->version(), 2u);
}

TEST(GgufTest, RejectsBadMagicAndShortFiles) {
  std::string bytes = SmallFile();
  bytes[0] = 'X';
  auto r = Parse(bytes);
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("bad magic 58 47 55 46"), std::string::npos);
  for (std::string s : {"", "G", "GGU"}) {
    EXPECT_NE(Parse(s).status().message().find("too short"), std::string::npos) << s;
  }
}

TEST(GgufTest, RejectsUnsupportedVersions) {
  EXPECT_TRUE(FailsWith(Bytes().Header(0, 0, 1), StatusCode::kInvalidArgument, "version 1"));
  EXPECT_TRUE(FailsWith(Bytes().Header(0, 0, 99), StatusCode::kInvalidArgument, "version 99"));
  EXPECT_TRUE(FailsWith(Bytes().Header(0, 0, 0), StatusCode::kInvalidArgument, "version 0"));
  EXPECT_TRUE(
      FailsWith(Bytes().Header(0, 0, 0x03000000), StatusCode::kInvalidArgument, "big-endian"));
}

TEST(GgufTest, EveryTruncationFails) {
  const std::string full = SmallFile();
  // testutil's ASSERT_OK binds a reference into its argument, so it gets named values only.
  auto whole = Parse(full);
  ASSERT_OK(whole);
  for (size_t len = 0; len < full.size(); ++len) {
    auto r = Parse(full.substr(0, len));
    ASSERT_FALSE(r.ok()) << "prefix of " << len << " of " << full.size() << " bytes parsed";
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  }
}

TEST(GgufTest, RejectsAbsurdCounts) {
  EXPECT_TRUE(FailsWith(Bytes().Header(kHuge62, 0), StatusCode::kCorruption,
                        "offset 8: header: tensor_count: 4611686018427387904 tensor infos"));
  EXPECT_TRUE(FailsWith(Bytes().Header(0, kHuge62), StatusCode::kCorruption,
                        "offset 16: header: kv_count"));
  Bytes array;
  array.Header(0, 1).Key("a", GgufType::kArray).U32(4).U64(kHuge62).Zeros(64);
  EXPECT_TRUE(FailsWith(array, StatusCode::kCorruption, "array count 4611686018427387904"));
  Bytes strings;
  strings.Header(0, 1).Key("a", GgufType::kArray).U32(8).U64(kHuge62).Zeros(64);
  EXPECT_TRUE(FailsWith(strings, StatusCode::kCorruption, "of string cannot fit"));
  Bytes key;
  key.Header(0, 1).U64(uint64_t{1} << 63).Zeros(20);
  EXPECT_TRUE(FailsWith(key, StatusCode::kCorruption,
                        "t.gguf: offset 24: key #0: string length 9223372036854775808 exceeds "
                        "the 20 bytes left"));
  Bytes value;
  value.Header(0, 1).Key("s", GgufType::kString).U64(uint64_t{1} << 63).Zeros(20);
  EXPECT_TRUE(FailsWith(value, StatusCode::kCorruption, "key #0 's': string length"));
  Bytes element;
  element.Header(0, 1).Key("a", GgufType::kArray).U32(8).U64(2).Str("x").U64(~uint64_t{0});
  EXPECT_TRUE(FailsWith(element, StatusCode::kCorruption, "string length 18446744073709551615"));
}

TEST(GgufTest, RejectsAbsurdDims) {
  EXPECT_TRUE(FailsWith(OneTensor({4, 0}, kF32, 0, 16), StatusCode::kCorruption,
                        "'w': dims[1]: dimension is 0"));
  EXPECT_TRUE(FailsWith(OneTensor({uint64_t{1} << 40, uint64_t{1} << 40}, kF32, 0, 16),
                        StatusCode::kCorruption, "overflow 64 bits"));
  EXPECT_TRUE(FailsWith(OneTensor({uint64_t{1} << 62}, kF32, 0, 16), StatusCode::kCorruption,
                        "overflows 64 bits"));
  EXPECT_TRUE(FailsWith(OneTensor({1 << 20, 1 << 20}, kF32, 0, 16), StatusCode::kCorruption,
                        "more than the whole file"));
  EXPECT_TRUE(FailsWith(OneTensor({}, kF32, 0, 16), StatusCode::kCorruption, "n_dims 0"));
  EXPECT_TRUE(
      FailsWith(OneTensor({1, 1, 1, 1, 1}, kF32, 0, 16), StatusCode::kCorruption, "n_dims 5"));
  EXPECT_TRUE(FailsWith(OneTensor({33}, kQ8_0, 0, 64), StatusCode::kCorruption,
                        "dims[0] = 33 is not a multiple of the Q8_0 block size 32"));
}

TEST(GgufTest, RejectsBadTensorOffsets) {
  auto good = Parse(OneTensor({4}, kF32, 0, 16).str());
  EXPECT_OK(good);
  EXPECT_TRUE(FailsWith(OneTensor({4}, kF32, 1 << 20, 16), StatusCode::kCorruption,
                        "extend past the end of the file"));
  EXPECT_TRUE(FailsWith(OneTensor({4}, kF32, 32, 16), StatusCode::kCorruption,
                        "extend past the end of the file"));
  EXPECT_TRUE(FailsWith(OneTensor({4}, kF32, ~uint64_t{31}, 16), StatusCode::kCorruption,
                        "extend past the end of the file"));
  EXPECT_TRUE(FailsWith(OneTensor({4}, kF32, 8, 64), StatusCode::kCorruption,
                        "data offset 8 is not a multiple of the alignment 32"));
}

TEST(GgufTest, RejectsUnsupportedTensorTypes) {
  EXPECT_TRUE(FailsWith(OneTensor({256}, 99, 0, 1024), StatusCode::kInvalidArgument,
                        "'w': type: tensor type 99 (unknown) is not supported"));
  EXPECT_TRUE(FailsWith(OneTensor({256}, 13, 0, 1024), StatusCode::kInvalidArgument,
                        "tensor type 13 (Q5_K) is not supported; llms reads F32"));
}

TEST(GgufTest, Alignment) {
  auto with_alignment = [](GgufType type, uint32_t a, uint64_t offset) {
    Bytes b;
    b.Header(1, 1).Key("general.alignment", type).U32(a);
    b.Tensor("w", {4}, kF32, offset).PadTo(a ? a : 1).Zeros(offset + 16);
    return b;
  };
  auto f = Parse(with_alignment(GgufType::kUint32, 64, 64).str());
  ASSERT_OK(f);
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->tensors()[0].offset % 64, 0u);
  EXPECT_TRUE(FailsWith(with_alignment(GgufType::kUint32, 64, 32), StatusCode::kCorruption,
                        "not a multiple of the alignment 64"));
  EXPECT_TRUE(FailsWith(with_alignment(GgufType::kUint32, 0, 0), StatusCode::kCorruption,
                        "alignment 0 is not a nonzero power of two"));
  EXPECT_TRUE(FailsWith(with_alignment(GgufType::kUint32, 3, 0), StatusCode::kCorruption,
                        "alignment 3 is not a nonzero power of two"));
  EXPECT_TRUE(FailsWith(with_alignment(GgufType::kInt32, 32, 0), StatusCode::kCorruption,
                        "must be a uint32, not int32"));
}

TEST(GgufTest, RejectsDuplicates) {
  Bytes keys;
  keys.Header(0, 2).Key("k", GgufType::kUint8).U8(1).Key("k", GgufType::kUint8).U8(2);
  EXPECT_TRUE(FailsWith(keys, StatusCode::kCorruption, "offset 38: key #1 'k': duplicate key"));
  Bytes tensors;
  tensors.Header(2, 0).Tensor("w", {4}, kF32, 0).Tensor("w", {4}, kF32, 32).PadTo(32).Zeros(48);
  EXPECT_TRUE(FailsWith(tensors, StatusCode::kCorruption, "tensor #1 'w': duplicate tensor name"));
}

TEST(GgufTest, RejectsBadValues) {
  Bytes b;
  b.Header(0, 1).Key("b", GgufType::kBool).U8(2);
  EXPECT_TRUE(FailsWith(b, StatusCode::kCorruption, "bool value 2 is not 0 or 1"));
  Bytes bools;
  bools.Header(0, 1).Key("b", GgufType::kArray).U32(7).U64(3).U8(0).U8(1).U8(9);
  EXPECT_TRUE(FailsWith(bools, StatusCode::kCorruption, "offset 51: key #0 'b': element #2: bool"));
  Bytes nested;
  nested.Header(0, 1).Key("n", GgufType::kArray).U32(9).U64(1).U32(4).U64(0);
  EXPECT_TRUE(FailsWith(nested, StatusCode::kCorruption, "arrays of arrays are not supported"));
  Bytes big;
  big.Header(0, 1).Key("u", GgufType::kUint64).U64(~uint64_t{0});
  EXPECT_TRUE(FailsWith(big, StatusCode::kInvalidArgument,
                        "uint64 value 18446744073709551615 exceeds INT64_MAX"));
  Bytes type;
  type.Header(0, 1).Str("t").U32(13).U64(0);
  EXPECT_TRUE(FailsWith(type, StatusCode::kCorruption, "unknown value type 13"));
  Bytes elem;
  elem.Header(0, 1).Key("t", GgufType::kArray).U32(77).U64(0);
  EXPECT_TRUE(FailsWith(elem, StatusCode::kCorruption, "unknown array element type 77"));
  Bytes empty;
  empty.Header(0, 1).Key("", GgufType::kUint8).U8(0).Zeros(8);
  EXPECT_TRUE(FailsWith(empty, StatusCode::kCorruption, "empty key"));
  Bytes long_key;
  long_key.Header(0, 1).Key(std::string(70000, 'k'), GgufType::kUint8).U8(0);
  EXPECT_TRUE(FailsWith(long_key, StatusCode::kCorruption, "exceeds the limit of 65536"));
  Bytes no_name;
  no_name.Header(1, 0).Tensor("", {4}, kF32, 0).PadTo(32).Zeros(16);
  EXPECT_TRUE(FailsWith(no_name, StatusCode::kCorruption, "empty tensor name"));
  Bytes ctrl;
  ctrl.Header(0, 2).Key("a\n'", GgufType::kUint8).U8(0).Key("a\n'", GgufType::kUint8).U8(0);
  EXPECT_TRUE(FailsWith(ctrl, StatusCode::kCorruption, "'a\\x0a\\x27': duplicate"));
}

// Reads everything a parsed file exposes, so ASan sees any view past the region.
uint64_t TouchAll(const GgufFile& g) {
  uint64_t sum = 0;
  for (const std::string& key : g.keys()) {
    const GgufValue* v = g.FindOrNull(key);
    sum += static_cast<uint64_t>(v->i) + v->s.size() + (v->s.empty() ? 0 : v->s.back());
    for (uint8_t b : v->raw) sum += b;
    for (std::string_view s : v->strings) sum += s.size() + (s.empty() ? 0 : s[0]);
    if (auto a = g.GetIntArray(key); a.ok()) sum += a->size();
    if (auto a = g.GetFloatArray(key); a.ok()) sum += a->size();
  }
  for (const GgufTensorInfo& t : g.tensors()) {
    for (size_t i = 0; i < t.size_bytes; ++i) sum += t.data[i];
  }
  return sum;
}

TEST(GgufTest, SurvivesRandomMutations) {
  const std::string full = SmallFile();
  const uint64_t interesting[] = {0,
                                  1,
                                  0x7f,
                                  0xffffffffu,
                                  uint64_t{1} << 31,
                                  uint64_t{1} << 62,
                                  uint64_t{1} << 63,
                                  ~uint64_t{0},
                                  full.size()};
  std::mt19937_64 rng(20240601);
  int parsed = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = full;
    const int mutations = 1 + static_cast<int>(rng() % 8);
    for (int m = 0; m < mutations; ++m) {
      const size_t pos = rng() % bytes.size();
      if (rng() % 4 == 0 && pos + 8 <= bytes.size()) {
        const uint64_t v = interesting[rng() % std::size(interesting)];
        std::memcpy(bytes.data() + pos, &v, rng() % 2 ? 8 : 4);
      } else {
        bytes[pos] = static_cast<char>(rng());
      }
    }
    if (rng() % 8 == 0) bytes.resize(rng() % bytes.size());
    auto f = Parse(bytes);
    if (f.ok()) {
      ++parsed;
      TouchAll(**f);
    } else {
      EXPECT_EQ(f.status().message().rfind("t.gguf: offset ", 0), 0u) << f.status().ToString();
    }
  }
  RecordProperty("parsed", parsed);  // some mutations (in data or string bytes) stay valid
}

}  // namespace
}  // namespace llms
