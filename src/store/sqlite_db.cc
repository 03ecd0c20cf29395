#include "store/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

namespace llms {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return Status::Ok();
  std::string msg = std::string(what) + ": " + sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errcode(db) == rc)
    msg += std::string(" (") + sqlite3_errmsg(db) + ")";
  switch (rc & 0xff) {  // the primary code; extended codes keep it in the low byte
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(msg);
    case SQLITE_FULL:
      return Status::ResourceExhausted(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(msg);
    default:
      return Status::IOError(msg);
  }
}

SqliteStatement::SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, std::string where)
    : db_(db), stmt_(stmt), where_(std::move(where)) {}

SqliteStatement::~SqliteStatement() = default;

void SqliteStatement::Finalizer::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }

void SqliteStatement::Remember(int rc, const char* what) {
  if (rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = SqliteStatus(db_, rc, where_ + " (" + what + ")");
  }
}

SqliteStatement& SqliteStatement::BindInt64(int index, int64_t value) {
  Remember(sqlite3_bind_int64(stmt_.get(), index, value), "bind int");
  return *this;
}

SqliteStatement& SqliteStatement::BindDouble(int index, double value) {
  Remember(sqlite3_bind_double(stmt_.get(), index, value), "bind real");
  return *this;
}

SqliteStatement& SqliteStatement::BindText(int index, std::string_view value) {
  Remember(sqlite3_bind_text64(stmt_.get(), index, value.data(), value.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8),
           "bind text");
  return *this;
}

SqliteStatement& SqliteStatement::BindBlob(int index, std::span<const uint8_t> value) {
  // A null pointer would bind NULL, not an empty blob; the columns are NOT NULL.
  static const uint8_t kEmpty = 0;
  Remember(sqlite3_bind_blob64(stmt_.get(), index, value.empty() ? &kEmpty : value.data(),
                               value.size(), SQLITE_TRANSIENT),
           "bind blob");
  return *this;
}

StatusOr<bool> SqliteStatement::Step() {
  LLMS_RETURN_IF_ERROR(bind_status_);
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(db_, rc, where_);
}

Status SqliteStatement::Run() {
  LLMS_ASSIGN_OR_RETURN(const bool row, Step());
  (void)row;  // statements run this way return no rows; a row would simply be ignored
  return Status::Ok();
}

int64_t SqliteStatement::ColumnInt64(int col) const {
  return sqlite3_column_int64(stmt_.get(), col);
}

bool SqliteStatement::ColumnIsInteger(int col) const {
  return sqlite3_column_type(stmt_.get(), col) == SQLITE_INTEGER;
}

double SqliteStatement::ColumnDouble(int col) const {
  return sqlite3_column_double(stmt_.get(), col);
}

std::string SqliteStatement::ColumnText(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_.get(), col);
  const int n = sqlite3_column_bytes(stmt_.get(), col);
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text), n);
}

std::vector<uint8_t> SqliteStatement::ColumnBlob(int col) const {
  const auto* blob = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_.get(), col));
  const int n = sqlite3_column_bytes(stmt_.get(), col);
  return blob == nullptr ? std::vector<uint8_t>() : std::vector<uint8_t>(blob, blob + n);
}

void SqliteDb::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

SqliteDb::SqliteDb(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

SqliteDb::~SqliteDb() = default;

StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // sqlite3_open_v2 returns a handle even on failure (for the message); the Closer frees it.
  auto db = std::make_unique<SqliteDb>(path, raw);
  if (rc != SQLITE_OK) return SqliteStatus(raw, rc, "open " + path);
  sqlite3_extended_result_codes(raw, 1);
  return db;
}

Status SqliteDb::Exec(const std::string& sql) {
  const int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr);
  return SqliteStatus(db_.get(), rc, path_ + ": " + sql);
}

StatusOr<SqliteStatement> SqliteDb::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc =
      sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  std::string where = path_ + ": " + std::string(sql);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return SqliteStatus(db_.get(), rc, where);
  }
  return SqliteStatement(db_.get(), stmt, std::move(where));
}

int64_t SqliteDb::LastInsertRowid() const { return sqlite3_last_insert_rowid(db_.get()); }

int SqliteDb::Changes() const { return sqlite3_changes(db_.get()); }

StatusOr<SqliteTransaction> SqliteTransaction::Begin(SqliteDb* db) {
  LLMS_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
  return SqliteTransaction(db);
}

SqliteTransaction::SqliteTransaction(SqliteTransaction&& other) noexcept : db_(other.db_) {
  other.db_ = nullptr;
}

SqliteTransaction::~SqliteTransaction() {
  if (db_ != nullptr) (void)db_->Exec("ROLLBACK");  // best effort; the error path is under way
}

Status SqliteTransaction::Commit() {
  SqliteDb* db = db_;
  db_ = nullptr;
  Status s = db->Exec("COMMIT");
  // A failed COMMIT can leave the transaction open (SQLITE_BUSY, SQLITE_FULL): end it so the
  // connection stays usable and nothing of it is applied.
  if (!s.ok()) (void)db->Exec("ROLLBACK");
  return s;
}

}  // namespace llms
