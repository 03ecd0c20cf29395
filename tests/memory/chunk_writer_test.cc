// ChunkWriter: queued jobs reach the store in the background and Flush waits for them; a job
// whose version is no longer wanted is skipped; a failure surfaces in Flush; writes a call waits
// for (WriteNow, or Queue without a thread) are counted for it; the job's buffer is written as
// it is (padded and aligned); a call's jobs are one store batch.
#include "memory/chunk_writer.h"

#include <cstring>
#include <map>

#include "env/fault_env.h"
#include "testutil/store_util.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

class ChunkWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = ChunkStore::Open(&env_, dir_.path(), ChunkStore::Options{});
    ASSERT_OK(store);
    store_ = std::move(store).value();
    context_ = *store_->CreateContext("app", {});
  }
  ChunkWriterHooks Hooks() {
    return {[this](const WriteJob& job) { return wanted_[job.index] == job.version; },
            [this](const WriteJob& job, ChunkMeta stored) { stored_[job.index] = stored; }};
  }
  WriteJob Job(uint32_t index, uint64_t version) {
    WriteJob job;
    job.context = context_;
    job.index = index;
    job.version = version;
    job.meta = testing::Meta(context_, index, 2, 3000);
    job.extent = std::move(AlignedBuffer::Allocate(job.meta.data_bytes()).value());
    const std::vector<uint8_t> bytes = testing::Payload(job.meta, version);
    std::memcpy(job.extent.data(), bytes.data(), bytes.size());
    return job;
  }

  testing::TempDir dir_;
  FaultEnv env_{Env::Default()};
  std::unique_ptr<ChunkStore> store_;
  uint64_t context_ = 0;
  std::map<uint32_t, uint64_t> wanted_;  // index -> the version still wanted
  std::map<uint32_t, ChunkMeta> stored_;
};

TEST_F(ChunkWriterTest, BackgroundJobsLandAndStaleOnesAreSkipped) {
  ChunkWriter writer(store_.get(), /*background=*/true, Hooks());
  wanted_ = {{0, 1}, {1, 5}};
  std::vector<WriteJob> jobs;
  jobs.push_back(Job(0, 1));
  jobs.push_back(Job(1, 4));  // an older version of chunk 1: skipped
  writer.Queue(std::move(jobs));
  ASSERT_OK(writer.Flush());
  ASSERT_EQ(stored_.size(), 1u);
  testing::ExpectChunk(store_.get(), stored_[0], testing::Payload(stored_[0], 1));
  EXPECT_EQ(writer.call_bytes_written(), 0u);  // the background's writes are nobody's call's
}

TEST_F(ChunkWriterTest, WritesACallWaitsForAreCountedAndFailuresSurface) {
  ChunkWriter writer(store_.get(), /*background=*/false, Hooks());
  wanted_ = {{0, 1}, {1, 1}};
  writer.ResetCallCounters();
  std::vector<WriteJob> jobs;
  jobs.push_back(Job(0, 1));
  ASSERT_OK(writer.WriteNow(std::move(jobs)));
  jobs.clear();
  jobs.push_back(Job(1, 1));
  writer.Queue(std::move(jobs));
  EXPECT_EQ(writer.call_bytes_written(), 2u * 2 * 3000);
  env_.SetWriteLimit(env_.counters().bytes_written);  // the disk is full now
  wanted_[0] = 2;
  jobs.clear();
  jobs.push_back(Job(0, 2));
  writer.Queue(std::move(jobs));
  EXPECT_EQ(writer.Flush().code(), StatusCode::kResourceExhausted);
  ASSERT_OK(writer.Flush());                                                        // reported once
  testing::ExpectChunk(store_.get(), stored_[0], testing::Payload(stored_[0], 1));  // intact
}

// A call's jobs reach the store as one batch (one data sync), and a chunk queued twice before
// the writer ran is written once rather than failing the batch.
TEST_F(ChunkWriterTest, QueuedJobsAreOneBatchAndDuplicatesCollapse) {
  ChunkWriter writer(store_.get(), /*background=*/false, Hooks());
  wanted_ = {{0, 1}, {1, 1}, {2, 1}};
  const uint64_t syncs = store_->stats().syncs;
  std::vector<WriteJob> jobs;
  for (uint32_t i = 0; i < 3; ++i) jobs.push_back(Job(i, 1));
  jobs.push_back(Job(1, 1));  // the same version again
  writer.Queue(std::move(jobs));
  ASSERT_OK(writer.Flush());
  EXPECT_EQ(store_->stats().syncs, syncs + 1);
  EXPECT_EQ(store_->stats().writes, 3u);
  ASSERT_EQ(stored_.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    testing::ExpectChunk(store_.get(), stored_[i], testing::Payload(stored_[i], 1));
  }
}

}  // namespace
}  // namespace llms
