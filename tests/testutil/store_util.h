// Chunk helpers shared by the store tests: a chunk's metadata, a seeded payload for it, and a
// check that reads it back whole and layer by layer.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "store/chunk_store.h"
#include "testutil/testutil.h"

namespace llms::testing {

// Runs SQL on a store's meta.sqlite behind its back (to damage or age it).
inline void ExecSql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// The first column of the first row of `sql`, or -1.
inline int64_t QuerySqlInt(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_stmt* st = nullptr;
  int64_t v = -1;
  if (sqlite3_open(db_path.c_str(), &db) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    v = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

inline ChunkMeta Meta(uint64_t context_id, uint32_t chunk_index, uint32_t num_layers,
                      uint32_t layer_bytes) {
  ChunkMeta m;
  m.context_id = context_id;
  m.chunk_index = chunk_index;
  m.level = 2;
  m.num_layers = num_layers;
  m.layer_bytes = layer_bytes;
  m.valid_tokens = 16;
  m.density = 0.125f;
  m.stats = {1, 2, 3, static_cast<uint8_t>(chunk_index)};
  return m;
}

inline std::vector<uint8_t> Payload(const ChunkMeta& m, uint64_t seed) {
  return RandomBytes(m.data_bytes(), seed);
}

// One chunk or one layer read through the batch API (ReadChunks, ReadLayers): its status.
inline Status ReadChunk(ChunkStore* store, const ChunkMeta& m, std::span<uint8_t> out) {
  ChunkStore::ChunkRead read{&m, out, {}};
  (void)store->ReadChunks(std::span<ChunkStore::ChunkRead>(&read, 1));
  return read.status;
}
inline Status ReadLayer(ChunkStore* store, const ChunkMeta& m, uint32_t layer,
                        std::span<uint8_t> out) {
  ChunkStore::LayerRead read{&m, layer, out, {}};
  (void)store->ReadLayers(std::span<ChunkStore::LayerRead>(&read, 1));
  return read.status;
}

// The stored chunk `index` of context `ctx` (NotFound when it is not stored).
inline StatusOr<ChunkMeta> GetChunk(ChunkStore* store, uint64_t ctx, uint32_t index) {
  LLMS_ASSIGN_OR_RETURN(std::vector<ChunkMeta> chunks, store->ListChunks(ctx));
  for (ChunkMeta& m : chunks) {
    if (m.chunk_index == index) return std::move(m);
  }
  return Status::NotFound("chunk " + std::to_string(index) + " is not stored");
}

// The record of context `id` (NotFound when there is none).
inline StatusOr<ContextRecord> GetContext(ChunkStore* store, uint64_t id) {
  LLMS_ASSIGN_OR_RETURN(std::vector<ContextRecord> all, store->ListContexts());
  for (ContextRecord& r : all) {
    if (r.id == id) return std::move(r);
  }
  return Status::NotFound("context " + std::to_string(id) + " does not exist");
}

// Reads the whole chunk and each layer alone; both must equal `want`.
inline void ExpectChunk(ChunkStore* store, const ChunkMeta& m, const std::vector<uint8_t>& want) {
  std::vector<uint8_t> got(m.data_bytes());
  ASSERT_OK(ReadChunk(store, m, got));
  EXPECT_EQ(got, want) << "context " << m.context_id << " chunk " << m.chunk_index;
  std::vector<uint8_t> layer(m.layer_bytes);
  for (uint32_t l = 0; l < m.num_layers; ++l) {
    ASSERT_OK(ReadLayer(store, m, l, layer));
    EXPECT_TRUE(std::equal(layer.begin(), layer.end(), want.begin() + size_t{l} * m.layer_bytes))
        << "layer " << l;
  }
}

}  // namespace llms::testing
