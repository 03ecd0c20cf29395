// GgufWriter: byte layout (the worked example of docs/gguf_format.md), alignment, argument
// checks, and the temp-file + sync + rename protocol under injected I/O faults.
#include "model/gguf_writer.h"

#include <cstring>
#include <limits>

#include "testutil/testutil.h"

namespace llms {
namespace {

// Counts bytes and fails the chosen step; everything else goes to the POSIX Env.
class FaultEnv final : public Env {
 public:
  uint64_t append_limit = std::numeric_limits<uint64_t>::max();  // fail past this many bytes
  bool fail_sync = false;
  bool fail_rename = false;

  StatusOr<std::unique_ptr<ReadOnlyRegion>> MapFile(const std::string& path) override {
    return base_->MapFile(path);
  }
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    LLMS_ASSIGN_OR_RETURN(auto file, base_->NewWritableFile(path));
    return std::unique_ptr<WritableFile>(std::make_unique<File>(this, std::move(file)));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (fail_rename) return Status::IOError("injected rename failure");
    return base_->RenameFile(from, to);
  }
  Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }

 private:
  class File final : public WritableFile {
   public:
    File(FaultEnv* env, std::unique_ptr<WritableFile> base) : env_(env), base_(std::move(base)) {}
    Status Append(std::span<const uint8_t> data) override {
      written_ += data.size();
      if (written_ > env_->append_limit) return Status::ResourceExhausted("injected: disk full");
      return base_->Append(data);
    }
    Status Sync() override {
      return env_->fail_sync ? Status::IOError("injected fsync failure") : base_->Sync();
    }
    Status Close() override { return base_->Close(); }

   private:
    FaultEnv* env_;  // outlives the file
    std::unique_ptr<WritableFile> base_;
    uint64_t written_ = 0;
  };
  Env* base_ = Env::Default();
};

std::string ReadAll(const std::string& path) {
  auto region = Env::Default()->MapFile(path);
  if (!region.ok()) {
    ADD_FAILURE() << region.status().ToString();
    return std::string();
  }
  auto bytes = (*region)->bytes();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

GgufWriter::FillFn Floats(std::vector<float> values) {
  return [values](std::span<uint8_t> out) {
    std::memcpy(out.data(), values.data(), std::min(out.size(), values.size() * sizeof(float)));
  };
}

// A writer with one KV and two tensors, the second not aligned by size alone.
void AddSample(GgufWriter* w) {
  w->AddString("general.architecture", "llama");
  w->AddTensor("a", WeightType::kF32, {3}, Floats({1, 2, 3}));
  w->AddTensor("b", WeightType::kF32, {2, 2}, Floats({4, 5, 6, 7}));
}

std::string ToHex(const std::string& s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

TEST(GgufWriterTest, MatchesWorkedExampleInDocs) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddTensor("w", WeightType::kF32, {2}, Floats({1.0f, 2.0f}));
  auto bytes = w.WriteToString();
  ASSERT_OK(bytes);
  std::string want =
      "47475546"                          // magic
      "03000000"                          // version
      "0100000000000000"                  // tensor_count
      "0100000000000000"                  // kv_count
      "1400000000000000"                  // key length 20
      "67656e6572616c2e6172636869746563"  // "general.architec"
      "74757265"                          // "ture"
      "08000000"                          // value type: string
      "0500000000000000"                  // string length 5
      "6c6c616d61"                        // "llama"
      "0100000000000000"                  // tensor name length 1
      "77"                                // "w"
      "01000000"                          // n_dims
      "0200000000000000"                  // dims[0]
      "00000000"                          // type F32
      "0000000000000000";                 // offset 0 in the data section
  want.append(2 * 26, '0');               // padding from byte 102 to 128
  want.append("0000803f00000040");        // 1.0f, 2.0f
  EXPECT_EQ(ToHex(*bytes), want);
}

TEST(GgufWriterTest, EmptyFileIsJustTheHeader) {
  GgufWriter w;
  auto bytes = w.WriteToString();
  ASSERT_OK(bytes);
  EXPECT_EQ(bytes->size(), 24u);
  auto f = GgufFile::FromRegion(NewMemoryRegion(*bytes), "empty");
  EXPECT_OK(f);
}

TEST(GgufWriterTest, WritesFileAtomicallyAndReadsBack) {
  testing::TempDir dir;
  const std::string path = dir.File("m.gguf");
  GgufWriter w;
  AddSample(&w);
  Status s = w.Write(Env::Default(), path);
  ASSERT_OK(s);
  EXPECT_FALSE(Env::Default()->FileExists(path + ".tmp"));
  auto in_memory = w.WriteToString();
  ASSERT_OK(in_memory);
  EXPECT_EQ(ReadAll(path), *in_memory);
  auto f = GgufFile::Open(Env::Default(), path);
  ASSERT_OK(f);
  const GgufTensorInfo* b = (*f)->FindTensorOrNull("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->offset % 32, 0u);
  float got[4];
  std::memcpy(got, b->data, sizeof(got));
  EXPECT_EQ(got[3], 7.0f);
  // The file ends with the last tensor: no trailing padding, so truncation is always visible.
  EXPECT_EQ(b->offset + b->size_bytes, in_memory->size());
}

TEST(GgufWriterTest, FailedWritesKeepTheOldFileAndRemoveTheTemporary) {
  testing::TempDir dir;
  const std::string path = dir.File("m.gguf");
  GgufWriter old_writer;
  old_writer.AddString("general.name", "old");
  Status s = old_writer.Write(Env::Default(), path);
  ASSERT_OK(s);
  const std::string old_bytes = ReadAll(path);
  GgufWriter w;
  AddSample(&w);
  for (int fault = 0; fault < 4; ++fault) {
    FaultEnv env;
    // Fault 0 fails the header, fault 1 the first tensor (the header is 160 bytes).
    env.append_limit = fault == 0 ? 10 : fault == 1 ? 170 : env.append_limit;
    env.fail_sync = fault == 2;
    env.fail_rename = fault == 3;
    s = w.Write(&env, path);
    EXPECT_FALSE(s.ok()) << fault;
    EXPECT_NE(s.message().find("injected"), std::string::npos) << s.ToString();
    EXPECT_EQ(ReadAll(path), old_bytes) << fault;
    EXPECT_FALSE(Env::Default()->FileExists(path + ".tmp")) << fault;
  }
}

TEST(GgufWriterTest, HonoursAlignment) {
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    GgufWriter w;
    w.AddUint32("general.alignment", alignment);
    AddSample(&w);
    auto bytes = w.WriteToString();
    ASSERT_OK(bytes);
    auto f = GgufFile::FromRegion(NewMemoryRegion(*bytes), "aligned");
    ASSERT_OK(f);
    EXPECT_EQ((*f)->alignment(), alignment);
    for (const GgufTensorInfo& t : (*f)->tensors()) EXPECT_EQ(t.offset % alignment, 0u);
    float first;
    std::memcpy(&first, (*f)->FindTensorOrNull("b")->data, sizeof(first));
    EXPECT_EQ(first, 4.0f) << alignment;
  }
}

TEST(GgufWriterTest, FillsEachTensorOnceInOrderWithItsExactSize) {
  GgufWriter w;
  std::vector<std::pair<std::string, size_t>> calls;
  auto record = [&calls](std::string name) {
    return [&calls, name](std::span<uint8_t> out) {
      for (uint8_t b : out) EXPECT_EQ(b, 0);  // pre-zeroed
      calls.emplace_back(name, out.size());
      std::memset(out.data(), 0xab, out.size());
    };
  };
  w.AddTensor("q8", WeightType::kQ8_0, {64, 3}, record("q8"));
  w.AddTensor("q4k", WeightType::kQ4_K, {256}, record("q4k"));
  w.AddTensor("f16", WeightType::kF16, {5}, record("f16"));
  auto bytes = w.WriteToString();
  ASSERT_OK(bytes);
  const std::vector<std::pair<std::string, size_t>> want = {
      {"q8", 3 * 2 * 34}, {"q4k", 144}, {"f16", 10}};
  EXPECT_EQ(calls, want);
}

// WriteToString fails with InvalidArgument mentioning `needle`, and Write creates no file.
void ExpectRejected(const std::function<void(GgufWriter*)>& build, std::string_view needle) {
  GgufWriter w;
  build(&w);
  auto bytes = w.WriteToString();
  ASSERT_FALSE(bytes.ok()) << needle;
  EXPECT_EQ(bytes.status().code(), StatusCode::kInvalidArgument) << bytes.status().ToString();
  EXPECT_NE(bytes.status().message().find(needle), std::string::npos)
      << bytes.status().ToString() << " lacks " << needle;
  testing::TempDir dir;
  Status s = w.Write(Env::Default(), dir.File("bad.gguf"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Env::Default()->FileExists(dir.File("bad.gguf.tmp")));
}

TEST(GgufWriterTest, RejectsBadArguments) {
  auto fill = [](std::span<uint8_t>) {};
  ExpectRejected([](GgufWriter* w) { w->AddUint8("", 1); }, "key is empty");
  ExpectRejected([](GgufWriter* w) { w->AddUint8(std::string(70000, 'k'), 1); }, "longer than");
  ExpectRejected(
      [](GgufWriter* w) {
        w->AddUint8("k", 1);
        w->AddString("k", "again");
      },
      "duplicate key 'k'");
  ExpectRejected([](GgufWriter* w) { w->AddUint32("general.alignment", 0); },
                 "not a nonzero power of two");
  ExpectRejected([](GgufWriter* w) { w->AddUint32("general.alignment", 48); },
                 "not a nonzero power of two");
  ExpectRejected([](GgufWriter* w) { w->AddInt32("general.alignment", 32); }, "AddUint32");
  ExpectRejected([](GgufWriter* w) { w->AddArray("a", GgufType::kString, 0, {}); }, "fixed-size");
  ExpectRejected(
      [](GgufWriter* w) { w->AddArray("a", GgufType::kUint32, 2, std::vector<uint8_t>(7)); },
      "7 bytes are not 2 elements");
  ExpectRejected(
      [&](GgufWriter* w) {
        w->AddTensor("t", WeightType::kF32, {4}, fill);
        w->AddTensor("t", WeightType::kF32, {4}, fill);
      },
      "duplicate tensor name 't'");
  ExpectRejected([&](GgufWriter* w) { w->AddTensor("", WeightType::kF32, {4}, fill); },
                 "tensor name is empty");
  ExpectRejected([&](GgufWriter* w) { w->AddTensor("t", WeightType::kF32, {}, fill); },
                 "needs 1 to 4 dims, has 0");
  ExpectRejected(
      [&](GgufWriter* w) {
        w->AddTensor("t", WeightType::kF32, {1, 1, 1, 1, 1}, fill);
      },
      "has 5");
  ExpectRejected(
      [&](GgufWriter* w) {
        w->AddTensor("t", WeightType::kF32, {4, 0}, fill);
      },
      "dimension of 0");
  ExpectRejected([&](GgufWriter* w) { w->AddTensor("t", WeightType::kQ8_0, {33}, fill); },
                 "dims[0] = 33 is not a multiple of the Q8_0 block size 32");
  ExpectRejected(
      [&](GgufWriter* w) { w->AddTensor("t", static_cast<WeightType>(13), {256}, fill); },
      "unsupported type 13");
  ExpectRejected(
      [&](GgufWriter* w) {
        w->AddTensor("t", WeightType::kF32, {uint64_t{1} << 40, uint64_t{1} << 40}, fill);
      },
      "overflows 64 bits");
  ExpectRejected([](GgufWriter* w) { w->AddTensor("t", WeightType::kF32, {4}, nullptr); },
                 "no fill function");
}

}  // namespace
}  // namespace llms
