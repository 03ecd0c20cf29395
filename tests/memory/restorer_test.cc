// Restorer: reads stored chunks into a cache in bulk or layer by layer beside the pass (the hook
// waits for each layer), recomputes what the plan says, and reports a damaged chunk by index.
#include "memory/restorer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "testutil/store_util.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

constexpr size_t kLayers = 6;

class RestorerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // 64 KiB f16 layer slices: the pipeline reads one layer per request (six groups), so it
    // can overlap reads with compute.
    layout_.kv_heads = 32;
    layout_.head_dim = 32;
    auto store = ChunkStore::Open(Env::Default(), dir_.path(), ChunkStore::Options{});
    ASSERT_OK(store);
    store_ = std::move(store).value();
    context_ = *store_->CreateContext("app", {});
  }
  // Stores chunk `index` at `level` with seeded bytes; returns the state a restore sees.
  MissingChunkState Stored(size_t index, KvLevel level) {
    ChunkMeta m = testing::Meta(context_, static_cast<uint32_t>(index), kLayers,
                                static_cast<uint32_t>(layout_.LayerBytes(level)));
    m.level = static_cast<uint8_t>(level);
    m.valid_tokens = 16;
    auto written = store_->WriteChunk(m, testing::Payload(m, index));
    EXPECT_OK(written);
    return {index, 16, true, *written, {}, {}};
  }
  std::vector<uint8_t> Bytes(const KvCache& cache, size_t index) {
    const KvChunk* c = cache.chunk(index);
    return {c->data(), c->data() + c->bytes()};
  }

  KvLayout layout_;
  testing::TempDir dir_;
  std::unique_ptr<ChunkStore> store_;
  uint64_t context_ = 0;
};

TEST_F(RestorerTest, BulkReadBringsEveryStoredChunkBackBeforeThePass) {
  KvCache cache(layout_, kLayers);
  cache.set_num_tokens(48);
  Restorer r(store_.get(), kLayers);
  r.Plan({Stored(0, KvLevel::kInt4), Stored(2, KvLevel::kF16)}, 1, 24, CostModel(),
         RestoreMode::kLoadThenRun);
  EXPECT_EQ(r.load(), (std::vector<size_t>{0, 2}));
  EXPECT_TRUE(r.recompute().empty());
  ASSERT_OK(r.Start(&cache, Stopwatch()));
  auto hook = r.BeforeLayer(&cache);
  for (size_t l = 0; l < kLayers; ++l) ASSERT_OK(hook(l));
  r.Finish();
  for (size_t c : {size_t{0}, size_t{2}}) {
    const ChunkMeta m = *testing::GetChunk(store_.get(), context_, static_cast<uint32_t>(c));
    EXPECT_EQ(Bytes(cache, c), testing::Payload(m, c));
    EXPECT_TRUE(cache.chunk(c)->layer_present(kLayers - 1));
  }
  EXPECT_EQ(r.bytes_read(), cache.chunk(0)->bytes() + cache.chunk(2)->bytes());
}

TEST_F(RestorerTest, ThePipelineReadsBesideThePassAndRecomputesWhatIsCheaper) {
  KvCache cache(layout_, kLayers);
  cache.set_num_tokens(64);
  // Reads cost about what recomputing costs: the plan mixes both, read layer by layer.
  CostModel balanced;
  balanced.compute_seconds_per_token = 1e-3;
  balanced.read_seconds_per_byte =
      16e-3 / static_cast<double>(layout_.LayerBytes(KvLevel::kF16) * kLayers);
  balanced.bulk_read_seconds_per_byte = balanced.read_seconds_per_byte;
  Restorer r(store_.get(), kLayers);
  std::vector<MissingChunkState> missing;
  for (size_t c = 0; c < 4; ++c) missing.push_back(Stored(c, KvLevel::kF16));
  r.Plan(std::move(missing), 1, 32, balanced, RestoreMode::kPipelined);
  ASSERT_FALSE(r.load().empty());
  ASSERT_FALSE(r.recompute().empty());
  ASSERT_OK(r.Start(&cache, Stopwatch()));
  auto hook = r.BeforeLayer(&cache);
  for (size_t l = 0; l < kLayers; ++l) ASSERT_OK(hook(l));  // each waits for its layer
  r.Finish();
  for (size_t c : r.load()) {
    const ChunkMeta m = *testing::GetChunk(store_.get(), context_, static_cast<uint32_t>(c));
    EXPECT_EQ(Bytes(cache, c), testing::Payload(m, c));
  }
  for (size_t c : r.recompute()) EXPECT_EQ(cache.chunk(c), nullptr);  // the pass makes them
}

TEST_F(RestorerTest, ADamagedChunkIsReportedAndThePassStops) {
  KvCache cache(layout_, kLayers);
  cache.set_num_tokens(32);
  const MissingChunkState bad = Stored(1, KvLevel::kF16);
  {
    const int fd = open((dir_.path() + "/chunks.dat").c_str(), O_RDWR);
    const char flip = 0x5a;
    ASSERT_EQ(pwrite(fd, &flip, 1, static_cast<off_t>(bad.meta.extent_offset + 7)), 1);
    close(fd);
  }
  Restorer r(store_.get(), kLayers);
  r.Plan({Stored(0, KvLevel::kF16), bad}, 1, 16, CostModel(), RestoreMode::kLoadThenRun);
  ASSERT_OK(r.Start(&cache, Stopwatch()));
  EXPECT_EQ(r.BeforeLayer(&cache)(0).code(), StatusCode::kCorruption);
  r.Finish();
  EXPECT_EQ(r.failed(), (std::vector<size_t>{1}));
  r.DropLoaded(&cache);
  EXPECT_EQ(cache.chunk(0), nullptr);
  EXPECT_EQ(cache.chunk(1), nullptr);
}

}  // namespace
}  // namespace llms
