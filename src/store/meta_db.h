// MetaDb: the SQLite half of the flash chunk store (meta.sqlite): contexts and chunk rows, each
// operation one transaction. Schema and durability rules: docs/store_format.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/sqlite_db.h"
#include "store/store_types.h"

namespace llms {

// Thread safety: none; ChunkStore serializes every call under its mutex.
class MetaDb {
 public:
  // Opens or creates the database at `path` in WAL mode with synchronous=FULL and an exclusive
  // lock held until destruction. Unavailable when another connection holds the lock;
  // InvalidArgument when the file has another schema version; Corruption from SQLite.
  static StatusOr<std::unique_ptr<MetaDb>> Open(const std::string& path);
  explicit MetaDb(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  StatusOr<uint64_t> CreateContext(const std::string& app, std::span<const int32_t> tokens,
                                   const std::string& origin, int64_t now_ms);
  // Replaces the tokens and the KV length and deletes chunk rows with index >= drop_from, in one
  // transaction; returns the deleted rows. NotFound when the context does not exist.
  StatusOr<std::vector<ChunkMeta>> UpdateContext(uint64_t id, std::span<const int32_t> tokens,
                                                 uint64_t kv_tokens, uint64_t drop_from,
                                                 int64_t now_ms);
  // A damaged row comes back with ContextRecord::damage set, never as an error.
  StatusOr<std::vector<ContextRecord>> ListContexts();
  // Deletes the context and its chunk rows; returns the rows. NotFound when absent.
  StatusOr<std::vector<ChunkMeta>> DeleteContext(uint64_t id);

  // Chunks of one context by index. NotFound when the context does not exist.
  StatusOr<std::vector<ChunkMeta>> ListChunks(uint64_t context_id);
  // Inserts or replaces the rows of `chunks`, assigning each a fresh generation (written back
  // into `chunks`), in one transaction; returns the rows replaced. NotFound when a context does
  // not exist (nothing is written then).
  StatusOr<std::vector<ChunkMeta>> PutChunks(std::span<ChunkMeta> chunks);
  // Deletes the rows of context_id with index in [first, last); returns them. NotFound when
  // the context does not exist. kAllChunks as `last` means no upper bound.
  static constexpr uint64_t kAllChunks = uint64_t{1} << 32;
  StatusOr<std::vector<ChunkMeta>> DeleteChunks(uint64_t context_id, uint64_t first, uint64_t last);

  // Recovery: every chunk row, and the rows that could not be decoded (key and why).
  struct AllChunks {
    std::vector<ChunkMeta> rows;
    std::vector<RecoveryReport::DroppedChunk> undecodable;
  };
  StatusOr<AllChunks> ListAllChunks();
  // Recovery: deletes the rows of `dropped` in one transaction.
  Status DropChunkRows(std::span<const RecoveryReport::DroppedChunk> dropped);

 private:
  Status InitSchema();
  StatusOr<bool> IsNew();  // store_info is empty: a store created just now
  StatusOr<std::string> JournalMode();
  StatusOr<int64_t> InfoValue(const char* key);
  StatusOr<bool> ContextExists(uint64_t id);
  StatusOr<std::vector<ChunkMeta>> SelectChunks(uint64_t context_id, uint64_t first, uint64_t last);
  Status DeleteChunkRange(uint64_t context_id, uint64_t first, uint64_t last);

  std::unique_ptr<SqliteDb> db_;
};

}  // namespace llms
