// Evictor: LCTRU takes the heaviest level first and the least recently used within it; LRU
// ignores levels; the context unit takes a whole context; locked contexts are passed over.
#include "memory/evictor.h"

#include <gtest/gtest.h>

namespace llms {
namespace {

std::vector<ChunkId> Next(const Evictor& e, uint64_t locked = 0) {
  return e.NextVictims([locked](uint64_t context) { return context == locked; });
}

TEST(EvictorTest, LctruTakesTheHeaviestLevelFirstThenTheLeastRecentlyUsed) {
  Evictor e(EvictionOrder::kLctru, EvictionUnit::kChunk);
  e.Touch({1, 0}, KvLevel::kInt4);
  e.Touch({1, 1}, KvLevel::kF16);
  e.Touch({2, 0}, KvLevel::kF16);
  e.Touch({2, 1}, KvLevel::kInt2);
  EXPECT_EQ(Next(e), (std::vector<ChunkId>{{1, 1}}));  // f16, used before {2, 0}
  e.Touch({1, 1}, KvLevel::kF16);                      // used again: now the newest f16
  EXPECT_EQ(Next(e), (std::vector<ChunkId>{{2, 0}}));
  e.SetLevel({2, 0}, KvLevel::kInt4);  // compressed: behind every f16 chunk, recency kept
  EXPECT_EQ(Next(e), (std::vector<ChunkId>{{1, 1}}));
  e.Remove({1, 1});
  EXPECT_EQ(Next(e), (std::vector<ChunkId>{{1, 0}}));  // int4, older than {2, 0}
  EXPECT_EQ(Next(e, /*locked=*/1), (std::vector<ChunkId>{{2, 0}}));
}

TEST(EvictorTest, LruIgnoresLevels) {
  Evictor e(EvictionOrder::kLru, EvictionUnit::kChunk);
  e.Touch({1, 0}, KvLevel::kInt2);
  e.Touch({1, 1}, KvLevel::kF16);
  EXPECT_EQ(Next(e), (std::vector<ChunkId>{{1, 0}}));
}

TEST(EvictorTest, TheContextUnitTakesEveryResidentChunkOfTheVictimsContext) {
  Evictor e(EvictionOrder::kLru, EvictionUnit::kContext);
  e.Touch({7, 2}, KvLevel::kInt8);
  e.Touch({3, 0}, KvLevel::kInt8);
  e.Touch({7, 0}, KvLevel::kInt8);
  EXPECT_EQ(Next(e), (std::vector<ChunkId>{{7, 0}, {7, 2}}));
  EXPECT_EQ(Next(e, /*locked=*/7), (std::vector<ChunkId>{{3, 0}}));
  EXPECT_TRUE(Next(Evictor(EvictionOrder::kLru, EvictionUnit::kChunk)).empty());
}

// A victim set for a byte count: in eviction order until the bytes are covered, locked contexts
// passed over, whole contexts with the context unit.
TEST(EvictorTest, VictimsForABatchCoverTheBytesInEvictionOrder) {
  const auto locked = [](uint64_t context) { return context == 9; };
  const auto bytes_of = [](ChunkId id) { return size_t{100} * (id.chunk + 1); };
  Evictor chunks(EvictionOrder::kLru, EvictionUnit::kChunk);
  chunks.Touch({1, 0}, KvLevel::kF16);  // 100 bytes
  chunks.Touch({9, 0}, KvLevel::kF16);  // locked
  chunks.Touch({2, 1}, KvLevel::kF16);  // 200 bytes
  chunks.Touch({3, 0}, KvLevel::kF16);
  EXPECT_EQ(chunks.VictimsFor(250, locked, bytes_of), (std::vector<ChunkId>{{1, 0}, {2, 1}}));
  EXPECT_EQ(chunks.VictimsFor(100, locked, bytes_of), (std::vector<ChunkId>{{1, 0}}));
  EXPECT_EQ(chunks.VictimsFor(10'000, locked, bytes_of).size(), 3u);  // all there is
  Evictor contexts(EvictionOrder::kLru, EvictionUnit::kContext);
  contexts.Touch({7, 1}, KvLevel::kInt8);
  contexts.Touch({3, 0}, KvLevel::kInt8);
  contexts.Touch({7, 0}, KvLevel::kInt8);
  EXPECT_EQ(contexts.VictimsFor(1, locked, bytes_of), (std::vector<ChunkId>{{7, 0}, {7, 1}}));
  EXPECT_EQ(contexts.VictimsFor(301, locked, bytes_of),
            (std::vector<ChunkId>{{7, 0}, {7, 1}, {3, 0}}));
}

}  // namespace
}  // namespace llms
