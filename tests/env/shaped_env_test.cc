// FlashDevice's timeline (fixed costs overlap up to the queue depth, bytes share one channel, a
// sync waits for what came before) and ShapedEnv on a manual clock: the bytes are the base
// file's, and each request ends when the class's device would finish it.
#include "env/shaped_env.h"

#include <cstring>

#include "testutil/testutil.h"

namespace llms {
namespace {

using Op = FlashDevice::Op;
using testing::TempDir;

FlashClass Class(const char* name) {
  std::optional<FlashClass> c = FlashClassByName(name);
  EXPECT_TRUE(c.has_value()) << name;
  return *c;
}

TEST(FlashClassTest, TheEvaluationsClassesAreListedAndNativeIsUnshaped) {
  EXPECT_EQ(FlashClassNames(), "native, ufs, emmc, slow");
  EXPECT_FALSE(Class("native").shaped());
  for (const char* name : {"ufs", "emmc", "slow"}) EXPECT_TRUE(Class(name).shaped()) << name;
  EXPECT_FALSE(FlashClassByName("nvme").has_value());
}

TEST(FlashDeviceTest, OneRequestPaysItsFixedCostThenItsBytes) {
  const FlashClass ufs = Class("ufs");
  FlashDevice device(ufs);
  const uint64_t bytes = 21'000'000;  // 10 ms at 2.1 GB/s
  EXPECT_DOUBLE_EQ(device.Submit(5.0, Op::kRead, {&bytes, 1}),
                   5.0 + ufs.read_seconds_per_request + 0.01);
  // An idle device starts a later request when it arrives, at the write rate for a write.
  EXPECT_DOUBLE_EQ(device.Submit(7.0, Op::kWrite, {&bytes, 1}),
                   7.0 + ufs.write_seconds_per_request + 21e6 / ufs.write_bytes_per_second);
}

TEST(FlashDeviceTest, AQueueOverlapsFixedCostsAndOneCommandAtATimeDoesNot) {
  const std::vector<uint64_t> requests(8, 4096);
  const double bytes_time_ufs = 8 * 4096 / Class("ufs").read_bytes_per_second;
  FlashDevice ufs(Class("ufs"));  // 32 commands: eight fixed costs in parallel
  EXPECT_NEAR(ufs.Submit(0, Op::kRead, requests),
              Class("ufs").read_seconds_per_request + bytes_time_ufs, 1e-12);
  const FlashClass emmc_class = Class("emmc");
  FlashDevice emmc(emmc_class);  // one command at a time: eight fixed costs in a row
  EXPECT_NEAR(emmc.Submit(0, Op::kRead, requests),
              8 * (emmc_class.read_seconds_per_request + 4096 / emmc_class.read_bytes_per_second),
              1e-12);
}

TEST(FlashDeviceTest, BackToBackRequestsQueueBehindEachOther) {
  const FlashClass slow = Class("slow");
  FlashDevice device(slow);
  const uint64_t bytes = 1'000'000;  // 10 ms at 100 MB/s
  const double first = device.Submit(0, Op::kWrite, {&bytes, 1});
  EXPECT_DOUBLE_EQ(first, 0.02);
  // Submitted while the first is running: it waits for the one command slot.
  EXPECT_DOUBLE_EQ(device.Submit(0.001, Op::kWrite, {&bytes, 1}), 0.04);
  // A sync waits for both, then flushes.
  EXPECT_DOUBLE_EQ(device.Sync(0.002), 0.04 + slow.sync_seconds);
  // An idle device syncs at once.
  EXPECT_DOUBLE_EQ(device.Sync(1.0), 1.0 + slow.sync_seconds);
}

class ShapedEnvTest : public ::testing::Test {
 protected:
  ShapedEnvTest()
      : env_(Env::Default(), Class("slow"), &clock_, [this](double until) {
          ++sleeps_;
          if (until > clock_.MonotonicSeconds()) clock_.Advance(until - clock_.MonotonicSeconds());
        }) {}

  std::unique_ptr<RandomRWFile> Open() {
    auto file = env_.OpenRandomRWFile(dir_.File("data"), /*direct_io=*/false);
    EXPECT_OK(file);
    return file.ok() ? std::move(file).value() : nullptr;
  }

  TempDir dir_;
  ManualClock clock_;
  int sleeps_ = 0;
  ShapedEnv env_;
};

TEST_F(ShapedEnvTest, EachRequestEndsWhenTheClassesDeviceWould) {
  std::unique_ptr<RandomRWFile> file = Open();
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->NativeHandleOrMinusOne(), -1);  // nobody bypasses the shaping
  const std::vector<uint8_t> data = testing::RandomBytes(100'000, 1);  // 1 ms at 100 MB/s
  ASSERT_OK(file->Write(0, data));
  EXPECT_NEAR(clock_.MonotonicSeconds(), 0.011, 1e-12);
  ASSERT_OK(file->Sync());
  EXPECT_NEAR(clock_.MonotonicSeconds(), 0.021, 1e-12);

  std::vector<uint8_t> back(data.size());
  auto n = file->Read(0, back);
  ASSERT_OK(n);
  EXPECT_EQ(*n, data.size());
  EXPECT_EQ(back, data);
  EXPECT_NEAR(clock_.MonotonicSeconds(), 0.032, 1e-12);
  EXPECT_EQ(sleeps_, 3);
}

TEST_F(ShapedEnvTest, ABatchIsOneQueueSubmission) {
  std::unique_ptr<RandomRWFile> file = Open();
  ASSERT_NE(file, nullptr);
  const std::vector<uint8_t> data = testing::RandomBytes(4000, 2);
  ASSERT_OK(file->Write(0, data));
  const double before = clock_.MonotonicSeconds();
  std::vector<uint8_t> a(1000), b(1000), past_end(10);
  std::vector<RandomRWFile::ReadRequest> batch = {
      {0, a, 0, Status()}, {3000, b, 0, Status()}, {9000, past_end, 0, Status()}};
  file->ReadMany(batch);
  ASSERT_OK(batch[0].status);
  ASSERT_OK(batch[1].status);
  EXPECT_EQ(batch[0].done, 1000u);
  EXPECT_EQ(batch[2].done, 0u);  // past the end, as Read
  EXPECT_EQ(std::memcmp(a.data(), data.data(), 1000), 0);
  EXPECT_EQ(std::memcmp(b.data(), data.data() + 3000, 1000), 0);
  // One command slot: three fixed costs in a row, 2,010 bytes moved.
  EXPECT_NEAR(clock_.MonotonicSeconds() - before, 3 * 0.01 + 2010 / 100e6, 1e-12);
}

}  // namespace
}  // namespace llms
