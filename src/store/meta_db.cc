#include "store/meta_db.h"

#include <set>
#include <utility>

#include "store/store_format.h"

namespace llms {
namespace {

namespace fmt = store_format;

constexpr char kInfoTable[] = R"sql(
CREATE TABLE IF NOT EXISTS store_info(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL) WITHOUT ROWID;
)sql";

// The current schema (version 2), for a new store.
constexpr char kSchema[] = R"sql(
CREATE TABLE contexts(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  app TEXT NOT NULL,
  created_unix_ms INTEGER NOT NULL,
  updated_unix_ms INTEGER NOT NULL,
  tokens BLOB NOT NULL,
  kv_tokens INTEGER NOT NULL,
  origin TEXT NOT NULL);
CREATE TABLE chunks(
  context_id INTEGER NOT NULL,
  chunk_index INTEGER NOT NULL,
  level INTEGER NOT NULL,
  num_layers INTEGER NOT NULL,
  layer_bytes INTEGER NOT NULL,
  valid_tokens INTEGER NOT NULL,
  density REAL NOT NULL,
  stats BLOB NOT NULL,
  extent_offset INTEGER NOT NULL,
  extent_length INTEGER NOT NULL,
  layer_checksums BLOB NOT NULL,
  generation INTEGER NOT NULL,
  tokens_hash INTEGER NOT NULL,
  PRIMARY KEY(context_id, chunk_index)) WITHOUT ROWID;
)sql";

// Version 1 to 2: the KV length moves from the free-text `settings` into a typed column (text
// that is not a plain number gives 0: that context's KV is recomputed, nothing is lost). Chunk
// rows carry no tokens_hash yet, so they are dropped (a cache: recomputed from the text) and
// Recover then gives their extents back.
constexpr char kMigrateV1ToV2[] = R"sql(
ALTER TABLE contexts ADD COLUMN kv_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE contexts ADD COLUMN origin TEXT NOT NULL DEFAULT 'native';
UPDATE contexts SET kv_tokens = CAST(settings AS INTEGER)
  WHERE settings <> '' AND settings NOT GLOB '*[^0-9]*' AND length(settings) < 19;
ALTER TABLE contexts DROP COLUMN settings;
DELETE FROM chunks;
ALTER TABLE chunks ADD COLUMN tokens_hash INTEGER NOT NULL DEFAULT 0;
UPDATE store_info SET value = 2 WHERE key = 'schema_version';
)sql";

constexpr char kChunkColumns[] =
    "context_id, chunk_index, level, num_layers, layer_bytes, valid_tokens, density, stats, "
    "extent_offset, extent_length, layer_checksums, generation, tokens_hash";
constexpr int kChunkColumnCount = 13;

constexpr char kContextColumns[] =
    "id, app, created_unix_ms, updated_unix_ms, tokens, kv_tokens, origin";

Status BadField(const ChunkMeta& c, const char* field, int64_t value) {
  return Status::Corruption("chunk row (context " + std::to_string(c.context_id) + ", chunk " +
                            std::to_string(c.chunk_index) + "): bad " + field + " " +
                            std::to_string(value));
}

// Decodes and checks one chunk row (columns kChunkColumns) so that no later arithmetic on it
// can overflow or disagree with the extent.
StatusOr<ChunkMeta> ChunkFromRow(const SqliteStatement& st) {
  ChunkMeta c;
  const int64_t ctx = st.ColumnInt64(0), index = st.ColumnInt64(1), level = st.ColumnInt64(2);
  const int64_t layers = st.ColumnInt64(3), layer_bytes = st.ColumnInt64(4);
  const int64_t valid = st.ColumnInt64(5), offset = st.ColumnInt64(8);
  const int64_t length = st.ColumnInt64(9), generation = st.ColumnInt64(11);
  c.context_id = static_cast<uint64_t>(ctx);
  c.chunk_index = static_cast<uint32_t>(index);
  if (ctx <= 0) return BadField(c, "context_id", ctx);
  if (index < 0 || index > UINT32_MAX) return BadField(c, "chunk_index", index);
  if (level < 0 || level > 255) return BadField(c, "level", level);
  if (layers < 1 || layers > fmt::kMaxLayers) return BadField(c, "num_layers", layers);
  if (layer_bytes < 1 || layer_bytes > fmt::kMaxLayerBytes) {
    return BadField(c, "layer_bytes", layer_bytes);
  }
  if (valid < 0 || valid > UINT32_MAX) return BadField(c, "valid_tokens", valid);
  if (offset < 0 || !IsAligned(offset)) return BadField(c, "extent_offset", offset);
  if (generation <= 0) return BadField(c, "generation", generation);
  c.level = static_cast<uint8_t>(level);
  c.num_layers = static_cast<uint32_t>(layers);
  c.layer_bytes = static_cast<uint32_t>(layer_bytes);
  c.valid_tokens = static_cast<uint32_t>(valid);
  c.density = static_cast<float>(st.ColumnDouble(6));
  c.stats = st.ColumnBlob(7);
  c.extent_offset = static_cast<uint64_t>(offset);
  c.extent_length = static_cast<uint64_t>(length);
  c.generation = static_cast<uint64_t>(generation);
  c.tokens_hash = static_cast<uint64_t>(st.ColumnInt64(12));
  if (c.extent_length != AlignUp(c.data_bytes())) return BadField(c, "extent_length", length);
  LLMS_ASSIGN_OR_RETURN(c.layer_checksums,
                        fmt::DecodeUint64s(st.ColumnBlob(10), "chunks.layer_checksums"));
  if (c.layer_checksums.size() != c.num_layers) {
    return BadField(c, "layer_checksums count", static_cast<int64_t>(c.layer_checksums.size()));
  }
  return c;
}

// Decodes one context row (columns kContextColumns). A row that cannot be used is returned with
// `damage` saying why, so one bad row never hides the others.
ContextRecord ContextFromRow(const SqliteStatement& st) {
  ContextRecord r;
  r.id = static_cast<uint64_t>(st.ColumnInt64(0));
  r.app = st.ColumnText(1);
  r.created_unix_ms = st.ColumnInt64(2);
  r.updated_unix_ms = st.ColumnInt64(3);
  r.origin = st.ColumnText(6);
  StatusOr<std::vector<int32_t>> tokens = fmt::DecodeInt32s(st.ColumnBlob(4), "contexts.tokens");
  if (!tokens.ok()) {
    r.damage = tokens.status().message();
    return r;
  }
  r.tokens = std::move(tokens).value();
  const int64_t kv = st.ColumnInt64(5);
  if (!st.ColumnIsInteger(5)) {
    r.damage = "contexts.kv_tokens holds '" + st.ColumnText(5) + "', not an integer";
  } else if (kv < 0 || static_cast<uint64_t>(kv) > r.tokens.size()) {
    r.damage = "contexts.kv_tokens " + std::to_string(kv) + " is outside its text of " +
               std::to_string(r.tokens.size()) + " tokens";
  } else {
    r.kv_tokens = static_cast<uint64_t>(kv);
  }
  return r;
}

Status NoContext(uint64_t id) {
  return Status::NotFound("context " + std::to_string(id) + " does not exist");
}

}  // namespace

StatusOr<std::unique_ptr<MetaDb>> MetaDb::Open(const std::string& path) {
  LLMS_ASSIGN_OR_RETURN(auto sqlite, SqliteDb::Open(path));
  // EXCLUSIVE before WAL: the lock is taken at the first access and kept until close, so a
  // second store on the same directory fails fast, and no shared-memory file is needed.
  LLMS_RETURN_IF_ERROR(sqlite->Exec("PRAGMA locking_mode=EXCLUSIVE"));
  LLMS_RETURN_IF_ERROR(sqlite->Exec("PRAGMA journal_mode=WAL"));
  // FULL: every COMMIT fsyncs the WAL, so a committed row survives power loss, not only a
  // crash of this process (NORMAL would only guarantee the latter).
  LLMS_RETURN_IF_ERROR(sqlite->Exec("PRAGMA synchronous=FULL"));
  auto db = std::make_unique<MetaDb>(std::move(sqlite));
  LLMS_RETURN_IF_ERROR(db->InitSchema());
  return db;
}

// Statements that have not run to completion block COMMIT, so each read below lives in its own
// function and is finalized before the transaction ends.
StatusOr<std::string> MetaDb::JournalMode() {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("PRAGMA journal_mode"));
  LLMS_ASSIGN_OR_RETURN(const bool row, st.Step());
  return row ? st.ColumnText(0) : std::string();
}

StatusOr<int64_t> MetaDb::InfoValue(const char* key) {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("SELECT value FROM store_info WHERE key = ?"));
  st.BindText(1, key);
  LLMS_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return Status::Corruption(db_->path() + ": store_info has no " + key);
  return st.ColumnInt64(0);
}

StatusOr<bool> MetaDb::IsNew() {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("SELECT count(*) FROM store_info"));
  LLMS_ASSIGN_OR_RETURN(const bool row, st.Step());
  return row && st.ColumnInt64(0) == 0;
}

Status MetaDb::InitSchema() {
  LLMS_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LLMS_ASSIGN_OR_RETURN(const std::string mode, JournalMode());
  if (mode != "wal") return Status::IOError(db_->path() + ": cannot use WAL journal mode");
  LLMS_RETURN_IF_ERROR(db_->Exec(kInfoTable));
  LLMS_ASSIGN_OR_RETURN(const bool fresh, IsNew());
  if (fresh) {
    LLMS_RETURN_IF_ERROR(db_->Exec(kSchema));
    LLMS_RETURN_IF_ERROR(
        db_->Exec("INSERT INTO store_info VALUES('schema_version', " +
                  std::to_string(fmt::kSchemaVersion) + "), ('extent_alignment', " +
                  std::to_string(fmt::kExtentAlignment) + "), ('next_generation', 1)"));
  }
  LLMS_ASSIGN_OR_RETURN(const int64_t version, InfoValue("schema_version"));
  LLMS_ASSIGN_OR_RETURN(const int64_t alignment, InfoValue("extent_alignment"));
  if (version > fmt::kSchemaVersion || version < 1 ||
      alignment != static_cast<int64_t>(fmt::kExtentAlignment)) {
    return Status::InvalidArgument(db_->path() + ": store has schema_version " +
                                   std::to_string(version) + " and extent_alignment " +
                                   std::to_string(alignment) + "; this build reads versions 1 to " +
                                   std::to_string(fmt::kSchemaVersion) + " with alignment " +
                                   std::to_string(fmt::kExtentAlignment));
  }
  if (version == 1) LLMS_RETURN_IF_ERROR(db_->Exec(kMigrateV1ToV2));
  return txn.Commit();
}

StatusOr<uint64_t> MetaDb::CreateContext(const std::string& app, std::span<const int32_t> tokens,
                                         const std::string& origin, int64_t now_ms) {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("INSERT INTO contexts(app, created_unix_ms, "
                                              "updated_unix_ms, tokens, kv_tokens, origin) "
                                              "VALUES(?, ?, ?, ?, 0, ?)"));
  const std::vector<uint8_t> blob = fmt::EncodeInt32s(tokens);
  LLMS_RETURN_IF_ERROR(st.BindText(1, app)
                           .BindInt64(2, now_ms)
                           .BindInt64(3, now_ms)
                           .BindBlob(4, blob)
                           .BindText(5, origin)
                           .Run());
  return static_cast<uint64_t>(db_->LastInsertRowid());
}

StatusOr<std::vector<ChunkMeta>> MetaDb::UpdateContext(uint64_t id, std::span<const int32_t> tokens,
                                                       uint64_t kv_tokens, uint64_t drop_from,
                                                       int64_t now_ms) {
  LLMS_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("UPDATE contexts SET tokens = ?, kv_tokens = ?, "
                                              "updated_unix_ms = ? WHERE id = ?"));
  const std::vector<uint8_t> blob = fmt::EncodeInt32s(tokens);
  LLMS_RETURN_IF_ERROR(st.BindBlob(1, blob)
                           .BindInt64(2, static_cast<int64_t>(kv_tokens))
                           .BindInt64(3, now_ms)
                           .BindInt64(4, id)
                           .Run());
  if (db_->Changes() == 0) return NoContext(id);
  LLMS_ASSIGN_OR_RETURN(auto dropped, SelectChunks(id, drop_from, kAllChunks));
  LLMS_RETURN_IF_ERROR(DeleteChunkRange(id, drop_from, kAllChunks));
  LLMS_RETURN_IF_ERROR(txn.Commit());
  return dropped;
}

StatusOr<std::vector<ContextRecord>> MetaDb::ListContexts() {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare(std::string("SELECT ") + kContextColumns +
                                              " FROM contexts ORDER BY id"));
  std::vector<ContextRecord> out;
  for (;;) {
    LLMS_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return out;
    out.push_back(ContextFromRow(st));
  }
}

StatusOr<std::vector<ChunkMeta>> MetaDb::DeleteContext(uint64_t id) {
  LLMS_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LLMS_ASSIGN_OR_RETURN(auto dropped, SelectChunks(id, 0, kAllChunks));
  LLMS_RETURN_IF_ERROR(DeleteChunkRange(id, 0, kAllChunks));
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("DELETE FROM contexts WHERE id = ?"));
  LLMS_RETURN_IF_ERROR(st.BindInt64(1, id).Run());
  if (db_->Changes() == 0) return NoContext(id);
  LLMS_RETURN_IF_ERROR(txn.Commit());
  return dropped;
}

StatusOr<bool> MetaDb::ContextExists(uint64_t id) {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("SELECT 1 FROM contexts WHERE id = ?"));
  st.BindInt64(1, id);
  return st.Step();
}

StatusOr<std::vector<ChunkMeta>> MetaDb::SelectChunks(uint64_t context_id, uint64_t first,
                                                      uint64_t last) {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare(std::string("SELECT ") + kChunkColumns +
                                              " FROM chunks WHERE context_id = ? AND "
                                              "chunk_index >= ? AND chunk_index < ? "
                                              "ORDER BY chunk_index"));
  st.BindInt64(1, context_id).BindInt64(2, first).BindInt64(3, last);
  std::vector<ChunkMeta> out;
  for (;;) {
    LLMS_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return out;
    LLMS_ASSIGN_OR_RETURN(ChunkMeta c, ChunkFromRow(st));
    out.push_back(std::move(c));
  }
}

Status MetaDb::DeleteChunkRange(uint64_t context_id, uint64_t first, uint64_t last) {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare("DELETE FROM chunks WHERE context_id = ? AND "
                                              "chunk_index >= ? AND chunk_index < ?"));
  return st.BindInt64(1, context_id).BindInt64(2, first).BindInt64(3, last).Run();
}

StatusOr<std::vector<ChunkMeta>> MetaDb::ListChunks(uint64_t context_id) {
  LLMS_ASSIGN_OR_RETURN(const bool exists, ContextExists(context_id));
  if (!exists) return NoContext(context_id);
  return SelectChunks(context_id, 0, kAllChunks);
}

StatusOr<std::vector<ChunkMeta>> MetaDb::PutChunks(std::span<ChunkMeta> chunks) {
  LLMS_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LLMS_ASSIGN_OR_RETURN(const int64_t next, InfoValue("next_generation"));
  uint64_t generation = static_cast<uint64_t>(next);
  std::vector<ChunkMeta> replaced;
  std::set<uint64_t> checked;
  for (ChunkMeta& c : chunks) {
    if (checked.insert(c.context_id).second) {
      LLMS_ASSIGN_OR_RETURN(const bool exists, ContextExists(c.context_id));
      if (!exists) return NoContext(c.context_id);
    }
    LLMS_ASSIGN_OR_RETURN(auto old,
                          SelectChunks(c.context_id, c.chunk_index, c.chunk_index + 1ull));
    for (ChunkMeta& o : old) replaced.push_back(std::move(o));
    c.generation = generation++;
    LLMS_ASSIGN_OR_RETURN(
        auto st, db_->Prepare(std::string("INSERT OR REPLACE INTO chunks(") + kChunkColumns +
                              ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    const std::vector<uint8_t> sums = fmt::EncodeUint64s(c.layer_checksums);
    st.BindInt64(1, c.context_id).BindInt64(2, c.chunk_index).BindInt64(3, c.level);
    st.BindInt64(4, c.num_layers).BindInt64(5, c.layer_bytes).BindInt64(6, c.valid_tokens);
    st.BindDouble(7, c.density).BindBlob(8, c.stats).BindInt64(9, c.extent_offset);
    st.BindInt64(10, c.extent_length).BindBlob(11, sums).BindInt64(12, c.generation);
    st.BindInt64(13, static_cast<int64_t>(c.tokens_hash));
    LLMS_RETURN_IF_ERROR(st.Run());
  }
  LLMS_ASSIGN_OR_RETURN(auto upd, db_->Prepare("UPDATE store_info SET value = ? "
                                               "WHERE key = 'next_generation'"));
  LLMS_RETURN_IF_ERROR(upd.BindInt64(1, generation).Run());
  LLMS_RETURN_IF_ERROR(txn.Commit());
  return replaced;
}

StatusOr<std::vector<ChunkMeta>> MetaDb::DeleteChunks(uint64_t context_id, uint64_t first,
                                                      uint64_t last) {
  LLMS_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  LLMS_ASSIGN_OR_RETURN(const bool exists, ContextExists(context_id));
  if (!exists) return NoContext(context_id);
  LLMS_ASSIGN_OR_RETURN(auto dropped, SelectChunks(context_id, first, last));
  LLMS_RETURN_IF_ERROR(DeleteChunkRange(context_id, first, last));
  LLMS_RETURN_IF_ERROR(txn.Commit());
  return dropped;
}

StatusOr<MetaDb::AllChunks> MetaDb::ListAllChunks() {
  LLMS_ASSIGN_OR_RETURN(auto st, db_->Prepare(std::string("SELECT ") + kChunkColumns +
                                              ", context_id IN (SELECT id FROM contexts) "
                                              "FROM chunks"));
  AllChunks all;
  for (;;) {
    LLMS_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return all;
    StatusOr<ChunkMeta> c = ChunkFromRow(st);
    const uint64_t ctx = static_cast<uint64_t>(st.ColumnInt64(0));
    const uint32_t index = static_cast<uint32_t>(st.ColumnInt64(1));
    if (!c.ok()) {
      all.undecodable.push_back({ctx, index, c.status().message()});
    } else if (st.ColumnInt64(kChunkColumnCount) == 0) {
      all.undecodable.push_back({ctx, index, "its context does not exist"});
    } else {
      all.rows.push_back(std::move(c).value());
    }
  }
}

Status MetaDb::DropChunkRows(std::span<const RecoveryReport::DroppedChunk> dropped) {
  if (dropped.empty()) return Status::Ok();
  LLMS_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db_.get()));
  for (const RecoveryReport::DroppedChunk& d : dropped) {
    LLMS_RETURN_IF_ERROR(DeleteChunkRange(d.context_id, d.chunk_index, d.chunk_index + 1ull));
  }
  // A row whose key is out of range was reported under a cast key that matches nothing above.
  LLMS_RETURN_IF_ERROR(
      db_->Exec("DELETE FROM chunks WHERE chunk_index < 0 OR "
                "chunk_index > 4294967295 OR context_id <= 0"));
  return txn.Commit();
}

}  // namespace llms
