// The restore planner: which missing chunks to recompute, and whether to read the rest in bulk
// before the pass or layer by layer during it, for given device costs.
#include "memory/restore_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace llms {
namespace {

// `n` missing 16-token chunks of `bytes` each over `layers` layers; `unstored` lists the ones
// with no flash copy.
std::vector<MissingChunk> Missing(size_t n, size_t bytes, size_t layers,
                                  const std::vector<size_t>& unstored = {}) {
  std::vector<MissingChunk> out;
  for (size_t i = 0; i < n; ++i) {
    const bool stored = std::find(unstored.begin(), unstored.end(), i) == unstored.end();
    out.push_back({i, 16, stored ? bytes : 0, layers});
  }
  return out;
}

TEST(CostModelTest, FastDeviceReadsEverythingInBulk) {
  CostModel c;
  c.compute_seconds_per_token = 10e-3;  // a 1B model on a phone
  c.read_seconds_per_byte = 1.0 / 0.3e9;
  c.read_seconds_per_request = 20e-6;
  c.bulk_read_seconds_per_byte = 1.0 / 2.5e9;
  const RestorePlan plan = PlanRestore(Missing(128, 124 << 10, 22), 1, 1024, c);
  EXPECT_TRUE(plan.bulk_read);
  EXPECT_TRUE(plan.recompute.empty());
  // Two chunks missing from flash are recomputed; with no stored chunk worth recomputing the
  // rest is still read in bulk: the layer-wise reads and their CPU work beside the pass cost
  // more than the bulk read saves.
  const RestorePlan mixed = PlanRestore(Missing(128, 124 << 10, 22, {7, 9}), 1, 1024, c);
  EXPECT_TRUE(mixed.bulk_read);
  EXPECT_EQ(mixed.recompute, (std::vector<size_t>{7, 9}));
}

TEST(CostModelTest, BalancedCostsPipelineReadsWithRecompute) {
  CostModel c;
  c.compute_seconds_per_token = 1e-3;
  c.read_seconds_per_byte = 16e-3 / 100000.0;  // reading a chunk costs as much as computing it
  c.read_seconds_per_request = 0;
  c.bulk_read_seconds_per_byte = c.read_seconds_per_byte;
  const RestorePlan plan = PlanRestore(Missing(20, 100000, 5), 1, 100, c);
  EXPECT_FALSE(plan.bulk_read);
  EXPECT_GT(plan.recompute.size(), 5u);
  EXPECT_LT(plan.recompute.size(), 15u);
  EXPECT_TRUE(std::is_sorted(plan.recompute.begin(), plan.recompute.end()));
}

TEST(CostModelTest, NothingOnFlashIsAllRecompute) {
  CostModel c;
  const RestorePlan plan = PlanRestore(Missing(4, 1000, 5, {0, 1, 2, 3}), 8, 32, c);
  EXPECT_FALSE(plan.bulk_read);
  EXPECT_EQ(plan.recompute, (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(CostModelTest, SlowComputeNeverRecomputesStoredChunks) {
  CostModel c;
  c.compute_seconds_per_token = 1.0;
  const auto missing = Missing(10, 4096, 5);
  EXPECT_TRUE(PlanRecompute(missing, 1, 80, c).empty());
  EXPECT_TRUE(PlanRestore(missing, 1, 80, c).recompute.empty());
}

// Nothing is recomputed either way, and the cost model still chooses: a short prompt reads in
// bulk first, a long prompt on slow flash reads layer by layer behind its own prefill (the
// reads vanish into the compute), and fast flash stays with bulk even then.
TEST(CostModelTest, ALongPromptOnSlowFlashHidesTheReadsBehindItsPrefill) {
  CostModel emmc;
  emmc.compute_seconds_per_token = 10e-3;
  emmc.attend_seconds_per_token_pair = 0;
  emmc.read_seconds_per_byte = 1.0 / 0.1e9;  // layer slices
  emmc.read_seconds_per_request = 200e-6;
  emmc.bulk_read_seconds_per_byte = 1.0 / 0.3e9;  // large merged requests
  emmc.verify_seconds_per_byte = 1.0 / 4e9;
  // 128 stored chunks of 124 KiB: 54 ms in bulk, 0.7 s layer by layer (small requests).
  const auto missing = Missing(128, 124 << 10, 22);
  const RestorePlan short_prompt = PlanRestore(missing, 16, 1024, emmc);
  EXPECT_TRUE(short_prompt.bulk_read);
  EXPECT_TRUE(short_prompt.recompute.empty());
  const RestorePlan long_prompt = PlanRestore(missing, 512, 1024, emmc);
  EXPECT_FALSE(long_prompt.bulk_read);
  EXPECT_TRUE(long_prompt.recompute.empty());
  CostModel fast = emmc;
  fast.read_seconds_per_byte = 1.0 / 1.0e9;
  fast.bulk_read_seconds_per_byte = 1.0 / 30e9;  // the read is shorter than the overlap's cost
  EXPECT_TRUE(PlanRestore(missing, 512, 1024, fast).bulk_read);
}

TEST(CostModelTest, ThePipelineCannotHideItsFirstReadNorItsLastCompute) {
  EXPECT_DOUBLE_EQ(PipelinedSeconds(1.0, 4, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(PipelinedSeconds(0.0, 4, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(PipelinedSeconds(4.0, 4, 8.0), 9.0);  // a quarter of the reads, then compute
  EXPECT_DOUBLE_EQ(PipelinedSeconds(8.0, 4, 4.0), 9.0);  // reads, then a quarter of the compute
}

}  // namespace
}  // namespace llms
