// ChunkStore: contexts, chunk write/read/list, single-layer reads, extent reuse on rewrite and
// delete, reopen, batched reads, argument checks, stale metadata and concurrent use.
// Recovery, corruption and fault injection are in chunk_store_recovery_test.cc.
#include "store/chunk_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "base/clock.h"
#include "env/shaped_env.h"
#include "store/store_format.h"
#include "testutil/store_util.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::ExpectChunk;
using testing::Meta;
using testing::Payload;
using testing::TempDir;

class ChunkStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<ChunkStore> Open(ChunkStore::Options options = {}) {
    auto store = ChunkStore::Open(Env::Default(), path_, options);
    EXPECT_OK(store);
    return store.ok() ? std::move(store).value() : nullptr;
  }
  // Writes chunk (ctx, index) with the payload of `seed`; returns the stored metadata.
  ChunkMeta Write(ChunkStore* store, uint64_t ctx, uint32_t index, uint64_t seed,
                  uint32_t layers = 5, uint32_t layer_bytes = 704) {
    const ChunkMeta m = Meta(ctx, index, layers, layer_bytes);
    auto written = store->WriteChunk(m, Payload(m, seed));
    EXPECT_OK(written);
    return written.ok() ? *written : m;
  }

  TempDir dir_;
  const std::string path_ = dir_.File("store");
};

TEST_F(ChunkStoreTest, ContextsCrud) {
  auto store = Open();
  const std::vector<int32_t> tokens = {1, -2, 300000, 7};
  auto a = store->CreateContext("app.a", tokens, "http");
  auto b = store->CreateContext("app.b", {});
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE(*a, *b);
  auto rec = testing::GetContext(store.get(), *a);
  ASSERT_OK(rec);
  EXPECT_EQ(rec->app, "app.a");
  EXPECT_EQ(rec->tokens, tokens);
  EXPECT_EQ(rec->origin, "http");
  EXPECT_EQ(rec->kv_tokens, 0u);
  EXPECT_EQ(rec->damage, "");
  EXPECT_GT(rec->created_unix_ms, 0);
  EXPECT_EQ(rec->created_unix_ms, rec->updated_unix_ms);

  const std::vector<int32_t> longer = {1, -2, 300000, 7, 8, 9};
  ASSERT_OK(store->UpdateContext(*a, longer, 5));
  EXPECT_EQ(store->UpdateContext(*b, {}, 1).code(), StatusCode::kInvalidArgument);  // past its text
  auto list = store->ListContexts();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].tokens, longer);
  EXPECT_EQ((*list)[0].kv_tokens, 5u);
  EXPECT_EQ((*list)[1].origin, "native");

  ASSERT_OK(store->DeleteContext(*a));
  EXPECT_EQ(testing::GetContext(store.get(), *a).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->DeleteContext(*a).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->UpdateContext(*a, tokens, 0).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->ListChunks(*a).status().code(), StatusCode::kNotFound);
  // Ids are never reused, even across a reopen.
  store.reset();
  store = Open();
  auto c = store->CreateContext("app.c", tokens);
  ASSERT_OK(c);
  EXPECT_GT(*c, *b);
}

TEST_F(ChunkStoreTest, WriteReadListEveryLayer) {
  auto store = Open();
  auto ctx = store->CreateContext("app", std::vector<int32_t>{1, 2, 3});
  ASSERT_OK(ctx);
  // Layer sizes below, at and above the 4096-byte block, so layers straddle blocks.
  const uint32_t kLayerBytes[] = {448, 704, 4096, 5000, 16384};
  std::vector<std::vector<uint8_t>> payloads;
  for (uint32_t i = 0; i < 5; ++i) {
    const ChunkMeta m = Meta(*ctx, i, 3 + i, kLayerBytes[i]);
    payloads.push_back(Payload(m, 100 + i));
    auto w = store->WriteChunk(m, payloads.back());
    ASSERT_OK(w);
    EXPECT_EQ(w->extent_offset % 4096, 0u);
    EXPECT_EQ(w->extent_length, AlignUp(m.data_bytes()));
    EXPECT_EQ(w->layer_checksums.size(), m.num_layers);
  }
  auto chunks = store->ListChunks(*ctx);
  ASSERT_OK(chunks);
  ASSERT_EQ(chunks->size(), 5u);
  for (uint32_t i = 0; i < 5; ++i) {
    const ChunkMeta& m = (*chunks)[i];
    EXPECT_EQ(m.chunk_index, i);
    EXPECT_EQ(m.level, 2);
    EXPECT_EQ(m.valid_tokens, 16u);
    EXPECT_FLOAT_EQ(m.density, 0.125f);
    EXPECT_EQ(m.stats, (std::vector<uint8_t>{1, 2, 3, static_cast<uint8_t>(i)}));
    ExpectChunk(store.get(), m, payloads[i]);
  }
  auto one = testing::GetChunk(store.get(), *ctx, 3);
  ASSERT_OK(one);
  EXPECT_EQ(one->generation, (*chunks)[3].generation);
  EXPECT_EQ(testing::GetChunk(store.get(), *ctx, 9).status().code(), StatusCode::kNotFound);
  const StoreStats s = store->stats();
  EXPECT_EQ(s.chunks, 5u);
  EXPECT_EQ(s.writes, 5u);
  EXPECT_GT(s.reads, 0u);
  EXPECT_EQ(s.checksum_failures, 0u);
}

TEST_F(ChunkStoreTest, RewriteReusesTheOldExtent) {
  auto store = Open();
  auto ctx = store->CreateContext("app", {});
  ASSERT_OK(ctx);
  const ChunkMeta other = Write(store.get(), *ctx, 1, 7);
  ChunkMeta first = Write(store.get(), *ctx, 0, 0);
  ChunkMeta last = first;
  for (uint64_t seed = 1; seed <= 100; ++seed) last = Write(store.get(), *ctx, 0, seed);
  EXPECT_GT(last.generation, first.generation);
  const StoreStats s = store->stats();
  // Two extents of chunk 0 alternate (old one freed at commit) plus chunk 1's.
  EXPECT_LE(s.data_file_bytes, 3 * last.extent_length);
  EXPECT_EQ(s.live_bytes, 2 * last.extent_length);
  ExpectChunk(store.get(), last, Payload(last, 100));
  ExpectChunk(store.get(), other, Payload(other, 7));
  // Metadata of a replaced version no longer reads.
  std::vector<uint8_t> layer(first.layer_bytes);
  EXPECT_EQ(testing::ReadLayer(store.get(), first, 0, layer).code(), StatusCode::kNotFound);
}

TEST_F(ChunkStoreTest, DeletesReclaimSpace) {
  auto store = Open();
  auto a = store->CreateContext("a", {});
  auto b = store->CreateContext("b", {});
  ASSERT_OK(a);
  ASSERT_OK(b);
  for (uint32_t i = 0; i < 8; ++i) Write(store.get(), *a, i, i, 4, 4096);
  for (uint32_t i = 0; i < 8; ++i) Write(store.get(), *b, i, 50 + i, 4, 4096);
  const uint64_t full = store->stats().data_file_bytes;
  EXPECT_EQ(full, 16u * 4 * 4096);
  ASSERT_OK(store->DeleteContext(*a));  // a's extents are holes below b's
  EXPECT_EQ(store->stats().live_bytes, full / 2);
  EXPECT_EQ(store->stats().free_bytes, full / 2);
  auto c = store->CreateContext("c", {});
  ASSERT_OK(c);
  for (uint32_t i = 0; i < 8; ++i) Write(store.get(), *c, i, 90 + i, 4, 4096);
  EXPECT_EQ(store->stats().data_file_bytes, full);  // holes reused first
  // Dropping the tail chunks shrinks the file.
  ASSERT_OK(store->DeleteContext(*b));
  ASSERT_OK(store->UpdateContext(*c, {}, 0, /*drop_chunks_from=*/4));
  EXPECT_EQ(store->stats().data_file_bytes, 4u * 4 * 4096);
  ASSERT_OK(store->DeleteChunk(*c, 3));
  EXPECT_EQ(store->DeleteChunk(*c, 3).code(), StatusCode::kNotFound);
  auto left = store->ListChunks(*c);
  ASSERT_OK(left);
  ASSERT_EQ(left->size(), 3u);
  for (const ChunkMeta& m : *left) ExpectChunk(store.get(), m, Payload(m, 90 + m.chunk_index));
  store.reset();
  struct stat st;
  ASSERT_EQ(stat((path_ + "/chunks.dat").c_str(), &st), 0);
  EXPECT_LE(static_cast<uint64_t>(st.st_size), 4u * 4 * 4096);
}

TEST_F(ChunkStoreTest, UpdateTokensCanDropChunksAtomically) {
  auto store = Open();
  auto ctx = store->CreateContext("app", std::vector<int32_t>{1, 2, 3, 4});
  ASSERT_OK(ctx);
  for (uint32_t i = 0; i < 4; ++i) Write(store.get(), *ctx, i, i);
  ASSERT_OK(store->UpdateContext(*ctx, std::vector<int32_t>{1, 2}, 2, /*drop_chunks_from=*/2));
  auto chunks = store->ListChunks(*ctx);
  ASSERT_OK(chunks);
  EXPECT_EQ(chunks->size(), 2u);
  EXPECT_EQ(testing::GetContext(store.get(), *ctx)->tokens, (std::vector<int32_t>{1, 2}));
}

TEST_F(ChunkStoreTest, ReopenSeesEverything) {
  std::vector<ChunkMeta> written;
  uint64_t ctx = 0;
  {
    auto store = Open();
    ctx = *store->CreateContext("app", std::vector<int32_t>{5, 6});
    for (uint32_t i = 0; i < 6; ++i) written.push_back(Write(store.get(), ctx, i, 10 + i));
    written[2] = Write(store.get(), ctx, 2, 99);
  }
  auto store = Open({.verify_on_open = true});
  EXPECT_TRUE(store->recovery().dropped.empty());
  EXPECT_EQ(store->recovery().verified_chunks, 6u);
  EXPECT_EQ(testing::GetContext(store.get(), ctx)->tokens, (std::vector<int32_t>{5, 6}));
  auto chunks = store->ListChunks(ctx);
  ASSERT_OK(chunks);
  ASSERT_EQ(chunks->size(), 6u);
  for (uint32_t i = 0; i < 6; ++i) {
    EXPECT_EQ((*chunks)[i].generation, written[i].generation);
    EXPECT_EQ((*chunks)[i].layer_checksums, written[i].layer_checksums);
    ExpectChunk(store.get(), (*chunks)[i], Payload((*chunks)[i], i == 2 ? 99 : 10 + i));
  }
}

TEST_F(ChunkStoreTest, SecondOpenOfTheSameDirIsUnavailable) {
  auto store = Open();
  auto again = ChunkStore::Open(Env::Default(), path_, {});
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable) << again.status().ToString();
}

TEST_F(ChunkStoreTest, BadArguments) {
  auto store = Open();
  auto ctx = store->CreateContext("app", {});
  ASSERT_OK(ctx);
  ChunkMeta m = Meta(*ctx, 0, 2, 100);
  std::vector<uint8_t> bytes(199);
  EXPECT_EQ(store->WriteChunk(m, bytes).status().code(), StatusCode::kInvalidArgument);
  m.num_layers = 0;
  EXPECT_EQ(store->WriteChunk(m, {}).status().code(), StatusCode::kInvalidArgument);
  m = Meta(*ctx + 100, 0, 2, 100);
  bytes.resize(200);
  EXPECT_EQ(store->WriteChunk(m, bytes).status().code(), StatusCode::kNotFound);
  const ChunkMeta good = Write(store.get(), *ctx, 0, 1, 2, 100);
  std::vector<uint8_t> out(100);
  EXPECT_EQ(testing::ReadLayer(store.get(), good, 2, out).code(), StatusCode::kInvalidArgument);
  std::vector<uint8_t> small(99);
  EXPECT_EQ(testing::ReadLayer(store.get(), good, 0, small).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(testing::ReadChunk(store.get(), good, out).code(), StatusCode::kInvalidArgument);
  // A failed batch stores nothing and leaks no space.
  const ChunkMeta dup = Meta(*ctx, 5, 2, 100);
  const ChunkStore::ChunkWrite twice[] = {{dup, bytes}, {dup, bytes}};
  EXPECT_EQ(store->WriteChunks(twice).status().code(), StatusCode::kInvalidArgument);
  const ChunkStore::ChunkWrite orphan[] = {{Meta(*ctx, 6, 2, 100), bytes},
                                           {Meta(*ctx + 100, 0, 2, 100), bytes}};
  EXPECT_EQ(store->WriteChunks(orphan).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->ListChunks(*ctx)->size(), 1u);
  EXPECT_EQ(store->stats().data_file_bytes, 4096u);
}

TEST_F(ChunkStoreTest, BatchedWritesAndReads) {
  for (unsigned depth : {0u, 8u}) {
    SCOPED_TRACE(depth);
    TempDir dir;
    auto store = ChunkStore::Open(Env::Default(), dir.File("s"), {.io_uring_depth = depth});
    ASSERT_OK(store);
    EXPECT_EQ((*store)->stats().io_uring, depth > 0);
    auto ctx = (*store)->CreateContext("app", {});
    ASSERT_OK(ctx);
    std::vector<ChunkStore::ChunkWrite> writes;
    std::vector<std::vector<uint8_t>> payloads;
    for (uint32_t i = 0; i < 12; ++i) payloads.push_back(Payload(Meta(*ctx, i, 6, 3000), i));
    for (uint32_t i = 0; i < 12; ++i) writes.push_back({Meta(*ctx, i, 6, 3000), payloads[i]});
    const uint64_t syncs = (*store)->stats().syncs;
    auto metas = (*store)->WriteChunks(writes);
    ASSERT_OK(metas);
    EXPECT_EQ((*store)->stats().syncs, syncs + 1);  // one data sync for the batch
    // Layer 3 of every chunk, plus one stale and one bad request.
    std::vector<std::vector<uint8_t>> outs(14, std::vector<uint8_t>(3000));
    std::vector<ChunkStore::LayerRead> reads;
    for (uint32_t i = 0; i < 12; ++i) reads.push_back({&(*metas)[i], 3, outs[i], Status()});
    ChunkMeta stale = (*metas)[0];
    stale.generation += 1000;
    reads.push_back({&stale, 0, outs[12], Status()});
    reads.push_back({&(*metas)[1], 6, outs[13], Status()});
    EXPECT_EQ((*store)->ReadLayers(reads).code(), StatusCode::kNotFound);
    for (uint32_t i = 0; i < 12; ++i) {
      ASSERT_OK(reads[i].status);
      EXPECT_TRUE(std::equal(outs[i].begin(), outs[i].end(), payloads[i].begin() + 3 * 3000));
    }
    EXPECT_EQ(reads[12].status.code(), StatusCode::kNotFound);
    EXPECT_EQ(reads[13].status.code(), StatusCode::kInvalidArgument);
    // Groups of layers, one request per chunk: layers 2-4, then 4-5 (the group ends with the
    // chunk).
    for (uint32_t first : {2u, 4u}) {
      const uint32_t count = std::min(3u, 6 - first);
      std::vector<std::vector<uint8_t>> groups(12, std::vector<uint8_t>(count * 3000));
      std::vector<ChunkStore::LayerRead> group_reads;
      for (uint32_t i = 0; i < 12; ++i) group_reads.push_back({&(*metas)[i], first, groups[i], {}});
      ASSERT_OK((*store)->ReadLayers(group_reads, 3));
      for (uint32_t i = 0; i < 12; ++i) {
        EXPECT_TRUE(
            std::equal(groups[i].begin(), groups[i].end(), payloads[i].begin() + first * 3000))
            << "chunk " << i << " from layer " << first;
      }
    }
  }
}

// ReadChunks merges neighbouring extents into large device requests (reading small holes
// through) and still gives every chunk its own bytes and status, in any request order.
TEST_F(ChunkStoreTest, MergedChunkReads) {
  for (unsigned depth : {0u, 8u}) {
    SCOPED_TRACE(depth);
    TempDir dir;
    auto store = ChunkStore::Open(Env::Default(), dir.File("s"), {.io_uring_depth = depth});
    ASSERT_OK(store);
    const uint64_t ctx = *(*store)->CreateContext("app", {});
    constexpr uint32_t kChunks = 60;  // 48 KiB extents: 2.8 MiB, several merged requests
    std::vector<ChunkStore::ChunkWrite> writes;
    std::vector<std::vector<uint8_t>> payloads;
    for (uint32_t i = 0; i < kChunks; ++i) payloads.push_back(Payload(Meta(ctx, i, 6, 8000), i));
    for (uint32_t i = 0; i < kChunks; ++i) writes.push_back({Meta(ctx, i, 6, 8000), payloads[i]});
    auto metas = (*store)->WriteChunks(writes);
    ASSERT_OK(metas);
    for (uint32_t i = 5; i < kChunks; i += 9) ASSERT_OK((*store)->DeleteChunk(ctx, i));  // holes
    std::vector<uint32_t> order;
    for (uint32_t i = 0; i < kChunks; ++i) {
      if (i < 5 || (i - 5) % 9 != 0) order.push_back(i);
    }
    std::reverse(order.begin(), order.end());
    std::swap(order[3], order[20]);
    std::vector<std::vector<uint8_t>> outs;
    for (uint32_t i : order) outs.emplace_back((*metas)[i].data_bytes());
    std::vector<ChunkStore::ChunkRead> reads;
    for (size_t k = 0; k < order.size(); ++k) reads.push_back({&(*metas)[order[k]], outs[k], {}});
    ChunkMeta stale = (*metas)[0];
    stale.generation += 1000;
    std::vector<uint8_t> stale_out(stale.data_bytes()), short_out(10);
    reads.push_back({&stale, stale_out, {}});
    reads.push_back({&(*metas)[1], short_out, {}});
    const uint64_t requests = (*store)->stats().reads;
    EXPECT_EQ((*store)->ReadChunks(reads).code(), StatusCode::kNotFound);
    for (size_t k = 0; k < order.size(); ++k) {
      ASSERT_OK(reads[k].status);
      EXPECT_EQ(outs[k], payloads[order[k]]) << "chunk " << order[k];
    }
    EXPECT_EQ(reads[order.size()].status.code(), StatusCode::kNotFound);
    EXPECT_EQ(reads[order.size() + 1].status.code(), StatusCode::kInvalidArgument);
    // 2.8 MiB in requests of at most 1 MiB: a handful, not one per chunk.
    const uint64_t used = (*store)->stats().reads - requests;
    EXPECT_GE(used, 3u);
    EXPECT_LE(used, 6u);
    // Repeated batches reuse the bounce buffers and give the same bytes.
    for (auto& r : reads) r.status = Status();
    reads.resize(order.size());
    for (auto& o : outs) std::fill(o.begin(), o.end(), 0);
    ASSERT_OK((*store)->ReadChunks(reads));
    for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(outs[k], payloads[order[k]]);
  }
}

// The numbers of the worked example in docs/store_format.md.
TEST_F(ChunkStoreTest, WorkedExampleOfTheFormatDoc) {
  EXPECT_EQ(store_format::EncodeInt32s(std::vector<int32_t>{1, 2, 3}),
            (std::vector<uint8_t>{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}));
  auto store = Open();
  auto ctx = store->CreateContext("chat", std::vector<int32_t>{1, 2, 3});
  ASSERT_OK(ctx);
  EXPECT_EQ(*ctx, 1u);
  const ChunkMeta m = Meta(*ctx, 0, 5, 704);
  std::vector<uint8_t> bytes(5 * 704);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i / 704);
  auto v1 = store->WriteChunk(m, bytes);
  ASSERT_OK(v1);
  EXPECT_EQ(v1->extent_offset, 0u);
  EXPECT_EQ(v1->extent_length, 4096u);
  EXPECT_EQ(v1->generation, 1u);
  EXPECT_EQ(v1->layer_checksums,
            (std::vector<uint64_t>{0x5e0b11b133a5161d, 0x2f4601b06590256a, 0x5f705768c58c623a,
                                   0x70ecba689145614a, 0x53bdcd792348496e}));
  auto v2 = store->WriteChunk(m, bytes);
  ASSERT_OK(v2);
  EXPECT_EQ(v2->extent_offset, 4096u);
  EXPECT_EQ(v2->generation, 2u);
  EXPECT_EQ(store->stats().data_file_bytes, 8192u);
  auto v3 = store->WriteChunk(m, bytes);
  ASSERT_OK(v3);
  EXPECT_EQ(v3->extent_offset, 0u);
  EXPECT_EQ(v3->generation, 3u);
  EXPECT_EQ(store->stats().data_file_bytes, 4096u);
  ExpectChunk(store.get(), *v3, bytes);
  ASSERT_OK(store->DeleteContext(*ctx));
  EXPECT_EQ(store->stats().data_file_bytes, 0u);
  struct stat st;
  ASSERT_EQ(stat((path_ + "/chunks.dat").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
}

// A writer, a reader and a deleter at once, as the memory manager will run them. Reads may see
// NotFound (metadata replaced or deleted meanwhile) but never wrong bytes or Corruption.
TEST_F(ChunkStoreTest, ConcurrentWriterReaderDeleter) {
  auto store = Open();
  std::atomic<bool> stop{false};
  std::atomic<int> corrupt{0}, reads_ok{0};
  std::atomic<uint64_t> ctxs[4];
  for (auto& c : ctxs) c = *store->CreateContext("app", {});
  auto writer = [&](int id) {
    for (uint64_t seed = 1 + id * (1ull << 40); !stop; ++seed) {
      const uint64_t ctx = ctxs[seed % 4];
      const ChunkMeta m = Meta(ctx, static_cast<uint32_t>(seed % 5), 3, 2000 + 1000 * id);
      std::vector<uint8_t> bytes = Payload(m, seed);
      ChunkMeta tagged = m;
      tagged.stats.assign(reinterpret_cast<const uint8_t*>(&seed),
                          reinterpret_cast<const uint8_t*>(&seed) + 8);
      (void)store->WriteChunk(tagged, bytes);  // NotFound when its context was just deleted
    }
  };
  auto reader = [&] {
    while (!stop) {
      for (const auto& ctx : ctxs) {
        auto chunks = store->ListChunks(ctx);
        if (!chunks.ok()) continue;
        for (const ChunkMeta& m : *chunks) {
          std::vector<uint8_t> out(m.data_bytes());
          const Status s = testing::ReadChunk(store.get(), m, out);
          if (s.code() == StatusCode::kCorruption) corrupt++;
          if (!s.ok()) continue;
          uint64_t seed = 0;
          std::memcpy(&seed, m.stats.data(), 8);
          if (out != Payload(m, seed)) corrupt++;
          reads_ok++;
        }
      }
    }
  };
  // Layer 0 of every chunk of a context in one batch (the io_uring path).
  auto batch_reader = [&] {
    while (!stop) {
      for (const auto& ctx : ctxs) {
        auto chunks = store->ListChunks(ctx);
        if (!chunks.ok()) continue;
        std::vector<std::vector<uint8_t>> outs;
        std::vector<ChunkStore::LayerRead> reads;
        for (const ChunkMeta& m : *chunks) outs.emplace_back(m.layer_bytes);
        for (size_t i = 0; i < chunks->size(); ++i) {
          reads.push_back({&(*chunks)[i], 0, outs[i], Status()});
        }
        (void)store->ReadLayers(reads);
        for (size_t i = 0; i < reads.size(); ++i) {
          if (reads[i].status.code() == StatusCode::kCorruption) corrupt++;
          if (!reads[i].status.ok()) continue;
          uint64_t seed = 0;
          std::memcpy(&seed, (*chunks)[i].stats.data(), 8);
          const std::vector<uint8_t> want = Payload((*chunks)[i], seed);
          if (!std::equal(outs[i].begin(), outs[i].end(), want.begin())) corrupt++;
          reads_ok++;
        }
      }
    }
  };
  std::thread w1(writer, 0), w2(writer, 1), r(reader), b(batch_reader);
  // At least 20 deletions 10 ms apart, and on until a read has succeeded: on a loaded machine
  // the readers may not have run at all in the first 200 ms (generous bound: 60 s).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto more = [&](int round) {
    return round < 20 || (reads_ok == 0 && std::chrono::steady_clock::now() < deadline);
  };
  for (int round = 0; more(round); ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto fresh = store->CreateContext("app", {});
    ASSERT_OK(fresh);
    ASSERT_OK(store->DeleteContext(ctxs[round % 4].exchange(*fresh)));
  }
  stop = true;
  w1.join();
  w2.join();
  r.join();
  b.join();
  EXPECT_EQ(corrupt, 0);
  EXPECT_GT(reads_ok, 0);
  const StoreStats s = store->stats();
  EXPECT_EQ(s.checksum_failures, 0u);
}

// On a shaped device without io_uring, a batch of layer reads reaches the file as one queue
// submission: twelve reads on the UFS class pay about one fixed cost, not twelve in a row.
TEST_F(ChunkStoreTest, BatchedReadsShareTheQueueOfAShapedDevice) {
  ManualClock clock;
  const FlashClass ufs = *FlashClassByName("ufs");
  ShapedEnv env(Env::Default(), ufs, &clock, [&clock](double until) {
    if (until > clock.MonotonicSeconds()) clock.Advance(until - clock.MonotonicSeconds());
  });
  auto store = ChunkStore::Open(&env, path_, {});
  ASSERT_OK(store);
  EXPECT_FALSE((*store)->stats().io_uring);  // the shaped file hides its descriptor
  auto ctx = (*store)->CreateContext("app", {});
  ASSERT_OK(ctx);
  std::vector<ChunkMeta> metas;
  for (uint32_t i = 0; i < 12; ++i) metas.push_back(Write(store->get(), *ctx, i, i, 6, 3000));
  std::vector<std::vector<uint8_t>> outs(12, std::vector<uint8_t>(3000));
  std::vector<ChunkStore::LayerRead> reads;
  for (uint32_t i = 0; i < 12; ++i) reads.push_back({&metas[i], 3, outs[i], Status()});
  const double before = clock.MonotonicSeconds();
  ASSERT_OK((*store)->ReadLayers(reads));
  const double took = clock.MonotonicSeconds() - before;
  EXPECT_GT(took, ufs.read_seconds_per_request);
  EXPECT_LT(took, 2 * ufs.read_seconds_per_request);
  for (uint32_t i = 0; i < 12; ++i) {
    EXPECT_TRUE(std::equal(outs[i].begin(), outs[i].end(), Payload(metas[i], i).begin() + 9000));
  }
}

}  // namespace
}  // namespace llms
