// Env: RandomRWFile round trips (buffered and direct), the direct-I/O alignment contract, the
// buffered fallback on a file system without O_DIRECT, directories, and FaultEnv (disk full,
// failing syncs, dropped unsynced data, counters).
#include "env/env.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "env/fault_env.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::TempDir;

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

AlignedBuffer AlignedPattern(size_t n, uint8_t seed) {
  auto buf = AlignedBuffer::Allocate(n);
  EXPECT_OK(buf);
  std::vector<uint8_t> p = Pattern(buf->size(), seed);
  std::memcpy(buf->data(), p.data(), p.size());
  return std::move(buf).value();
}

std::vector<uint8_t> ReadBack(RandomRWFile* f, uint64_t offset, size_t n) {
  std::vector<uint8_t> out(n);
  auto got = f->Read(offset, out);
  EXPECT_OK(got);
  out.resize(got.ok() ? *got : 0);
  return out;
}

TEST(AlignedBufferTest, AlignedRoundedAndZeroed) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{4096}, size_t{4097}, size_t{100000}}) {
    auto buf = AlignedBuffer::Allocate(n);
    ASSERT_OK(buf);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % kDirectIoAlignment, 0u);
    EXPECT_EQ(buf->size(), std::max<size_t>(AlignUp(n), kDirectIoAlignment));
    for (uint8_t b : buf->span()) ASSERT_EQ(b, 0);
  }
}

TEST(RandomRWFileTest, BufferedRoundTrip) {
  TempDir dir;
  auto f = Env::Default()->OpenRandomRWFile(dir.File("f"), /*direct_io=*/false);
  ASSERT_OK(f);
  EXPECT_FALSE((*f)->direct_io_active());
  const auto a = Pattern(1000, 1), b = Pattern(333, 2);
  ASSERT_OK((*f)->Write(0, a));
  ASSERT_OK((*f)->Write(5000, b));  // leaves a hole that reads as zeros
  ASSERT_OK((*f)->Sync());
  EXPECT_EQ(*(*f)->Size(), 5333u);
  EXPECT_EQ(ReadBack(f->get(), 0, 1000), a);
  EXPECT_EQ(ReadBack(f->get(), 5000, 333), b);
  EXPECT_EQ(ReadBack(f->get(), 1000, 10), std::vector<uint8_t>(10, 0));
  // Short read at the end of the file reports the count; past the end reads nothing.
  EXPECT_EQ(ReadBack(f->get(), 5300, 100).size(), 33u);
  EXPECT_EQ(ReadBack(f->get(), 9000, 100).size(), 0u);
  ASSERT_OK((*f)->Truncate(500));
  EXPECT_EQ(*(*f)->Size(), 500u);
  // Reopening neither truncates nor loses data.
  f->reset();
  auto g = Env::Default()->OpenRandomRWFile(dir.File("f"), false);
  ASSERT_OK(g);
  EXPECT_EQ(ReadBack(g->get(), 0, 500), std::vector<uint8_t>(a.begin(), a.begin() + 500));
}

TEST(RandomRWFileTest, DirectRoundTripAndShortRead) {
  TempDir dir;
  auto f = Env::Default()->OpenRandomRWFile(dir.File("d"), /*direct_io=*/true);
  ASSERT_OK(f);
  std::printf("direct I/O active in %s: %d\n", dir.path().c_str(), (*f)->direct_io_active());
  AlignedBuffer w = AlignedPattern(3 * kDirectIoAlignment, 9);
  ASSERT_OK((*f)->Write(kDirectIoAlignment, w.span()));
  ASSERT_OK((*f)->Sync());
  EXPECT_EQ(*(*f)->Size(), 4 * kDirectIoAlignment);
  auto r = AlignedBuffer::Allocate(8 * kDirectIoAlignment);
  ASSERT_OK(r);
  auto got = (*f)->Read(kDirectIoAlignment, r->span());
  ASSERT_OK(got);
  EXPECT_EQ(*got, 3 * kDirectIoAlignment);  // the file ends first
  EXPECT_EQ(std::memcmp(r->data(), w.data(), w.size()), 0);
}

TEST(RandomRWFileTest, MisalignedDirectRequestIsInvalidArgument) {
  TempDir dir;
  auto f = Env::Default()->OpenRandomRWFile(dir.File("d"), /*direct_io=*/true);
  ASSERT_OK(f);
  AlignedBuffer buf = AlignedPattern(2 * kDirectIoAlignment, 3);
  const std::span<uint8_t> whole = buf.span();
  EXPECT_EQ((*f)->Write(100, whole).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->Write(0, whole.subspan(0, 100)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->Write(0, whole.subspan(1, kDirectIoAlignment)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->Read(512, whole).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->Read(0, whole.subspan(8, kDirectIoAlignment)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(*(*f)->Size(), 0u);  // nothing was written
}

// Mounts a ramfs (no O_DIRECT support) for the duration of a test; skipped when not root.
class RamfsMount {
 public:
  explicit RamfsMount(const std::string& path) : path_(path) {
    std::filesystem::create_directories(path_);
    mounted_ = mount("ramfs", path_.c_str(), "ramfs", 0, nullptr) == 0;
  }
  ~RamfsMount() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST(RandomRWFileTest, FallsBackToBufferedWithoutODirect) {
  TempDir dir;
  RamfsMount ramfs(dir.File("ramfs"));
  if (!ramfs.mounted())
    GTEST_SKIP() << "cannot mount a ramfs here (needs root): " << strerror(errno);
  auto f = Env::Default()->OpenRandomRWFile(dir.File("ramfs/x"), /*direct_io=*/true);
  ASSERT_OK(f);
  EXPECT_FALSE((*f)->direct_io_active());  // ramfs refuses O_DIRECT with EINVAL
  AlignedBuffer w = AlignedPattern(kDirectIoAlignment, 5);
  ASSERT_OK((*f)->Write(0, w.span()));
  ASSERT_OK((*f)->Sync());
  auto r = AlignedBuffer::Allocate(kDirectIoAlignment);
  ASSERT_OK(r);
  ASSERT_EQ(*(*f)->Read(0, r->span()), kDirectIoAlignment);
  EXPECT_EQ(std::memcmp(r->data(), w.data(), w.size()), 0);
  // The alignment contract holds in the fallback too.
  EXPECT_EQ((*f)->Write(1, w.span()).code(), StatusCode::kInvalidArgument);
}

TEST(EnvTest, Directories) {
  TempDir dir;
  Env* env = Env::Default();
  const std::string sub = dir.File("sub");
  ASSERT_OK(env->CreateDir(sub));
  ASSERT_OK(env->CreateDir(sub));  // already there: fine
  ASSERT_OK(env->NewWritableFile(sub + "/a"));
  ASSERT_OK(env->OpenRandomRWFile(sub + "/b", false));
  ASSERT_OK(env->SyncDir(sub));
  EXPECT_TRUE(env->FileExists(sub + "/a"));
  EXPECT_TRUE(env->FileExists(sub + "/b"));
  EXPECT_EQ(env->CreateDir(sub + "/a").code(), StatusCode::kIOError);  // a file is in the way
}

// A file written atomically is whole or absent: a failed write leaves the old file and no
// temporary file behind.
TEST(EnvTest, WriteFileAtomicallyIsWholeOrNothing) {
  TempDir dir;
  FaultEnv env(Env::Default());
  const std::string path = dir.File("f");
  ASSERT_OK(WriteFileAtomically(&env, path, "first"));
  env.SetWriteLimit(env.counters().bytes_written + 3);
  EXPECT_EQ(WriteFileAtomically(&env, path, "second, longer").code(),
            StatusCode::kResourceExhausted);
  auto region = Env::Default()->MapFile(path);
  ASSERT_OK(region);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*region)->bytes().data()),
                        (*region)->bytes().size()),
            "first");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// An Env written before the random-access methods existed still compiles and says no.
class LegacyEnv final : public Env {
 public:
  StatusOr<std::unique_ptr<ReadOnlyRegion>> MapFile(const std::string&) override {
    return Status::NotFound("none");
  }
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string&) override {
    return Status::NotFound("none");
  }
  Status RenameFile(const std::string&, const std::string&) override { return Status::Ok(); }
  Status RemoveFile(const std::string&) override { return Status::Ok(); }
  bool FileExists(const std::string&) override { return false; }
};

TEST(EnvTest, DefaultsAreUnavailable) {
  LegacyEnv env;
  EXPECT_EQ(env.OpenRandomRWFile("x", false).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(env.SyncDir("x").code(), StatusCode::kUnavailable);
}

TEST(FaultEnvTest, DiskFullAfterLimit) {
  TempDir dir;
  FaultEnv env(Env::Default());
  auto f = env.OpenRandomRWFile(dir.File("f"), false);
  ASSERT_OK(f);
  env.SetWriteLimit(1500);
  ASSERT_OK((*f)->Write(0, Pattern(1000, 1)));
  const Status full = (*f)->Write(1000, Pattern(600, 2));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("No space left"), std::string::npos) << full.message();
  ASSERT_OK((*f)->Write(1000, Pattern(500, 3)));  // still fits
  ASSERT_OK((*f)->Sync());
  EXPECT_EQ(*(*f)->Size(), 1500u);
  EXPECT_EQ(ReadBack(f->get(), 0, 1000), Pattern(1000, 1));
  // The WritableFile path shares the budget.
  auto w = env.NewWritableFile(dir.File("w"));
  ASSERT_OK(w);
  EXPECT_EQ((*w)->Append(Pattern(1, 0)).code(), StatusCode::kResourceExhausted);
}

TEST(FaultEnvTest, DropUnsyncedDataRestoresSyncedContent) {
  TempDir dir;
  FaultEnv env(Env::Default());
  const std::string path = dir.File("f");
  auto f = env.OpenRandomRWFile(path, /*direct_io=*/true);
  ASSERT_OK(f);
  AlignedBuffer synced = AlignedPattern(2 * kDirectIoAlignment, 1);
  AlignedBuffer unsynced = AlignedPattern(2 * kDirectIoAlignment, 2);
  ASSERT_OK((*f)->Write(0, synced.span()));
  ASSERT_OK((*f)->Sync());
  // Overwrite half of the synced range and extend the file, without syncing.
  ASSERT_OK((*f)->Write(kDirectIoAlignment, unsynced.span()));
  EXPECT_EQ(*(*f)->Size(), 3 * kDirectIoAlignment);
  auto r = AlignedBuffer::Allocate(3 * kDirectIoAlignment);
  ASSERT_OK(r);
  ASSERT_EQ(*(*f)->Read(0, r->span()), 3 * kDirectIoAlignment);
  EXPECT_EQ(std::memcmp(r->data() + kDirectIoAlignment, unsynced.data(), unsynced.size()), 0);
  // The base file has only the synced bytes; a reopened file still sees the unsynced ones.
  EXPECT_EQ(*(*Env::Default()->OpenRandomRWFile(path, false))->Size(), 2 * kDirectIoAlignment);
  f->reset();
  auto g = env.OpenRandomRWFile(path, true);
  ASSERT_OK(g);
  EXPECT_EQ(*(*g)->Size(), 3 * kDirectIoAlignment);

  env.DropUnsyncedData();
  EXPECT_EQ(*(*g)->Size(), 2 * kDirectIoAlignment);
  ASSERT_EQ(*(*g)->Read(0, r->span()), 2 * kDirectIoAlignment);
  EXPECT_EQ(std::memcmp(r->data(), synced.data(), synced.size()), 0);
}

TEST(FaultEnvTest, FailedSyncAppliesNothingAndCountersCount) {
  TempDir dir;
  FaultEnv env(Env::Default());
  auto f = env.OpenRandomRWFile(dir.File("f"), false);
  ASSERT_OK(f);
  ASSERT_OK((*f)->Write(0, Pattern(100, 1)));
  env.SetSyncFailure(true);
  EXPECT_EQ((*f)->Sync().code(), StatusCode::kIOError);
  EXPECT_EQ(env.SyncDir(dir.path()).code(), StatusCode::kIOError);
  env.DropUnsyncedData();
  EXPECT_EQ(*(*f)->Size(), 0u);
  env.SetSyncFailure(false);
  ASSERT_OK((*f)->Write(0, Pattern(100, 2)));
  ASSERT_OK((*f)->Sync());
  EXPECT_EQ(ReadBack(f->get(), 0, 100), Pattern(100, 2));
  const FaultEnv::Counters c = env.counters();
  EXPECT_EQ(c.writes, 2u);
  EXPECT_EQ(c.bytes_written, 200u);
  EXPECT_EQ(c.syncs, 1u);
  EXPECT_EQ(c.reads, 1u);
  EXPECT_EQ(c.bytes_read, 100u);
}

TEST(FaultEnvTest, TruncateClipsUnsyncedWrites) {
  TempDir dir;
  FaultEnv env(Env::Default());
  auto f = env.OpenRandomRWFile(dir.File("f"), false);
  ASSERT_OK(f);
  ASSERT_OK((*f)->Write(0, Pattern(100, 1)));
  ASSERT_OK((*f)->Truncate(40));
  EXPECT_EQ(*(*f)->Size(), 40u);
  ASSERT_OK((*f)->Sync());
  EXPECT_EQ(ReadBack(f->get(), 0, 100), Pattern(40, 1));
}

}  // namespace
}  // namespace llms
