// Thin RAII wrappers over the SQLite C API that turn its result codes into Status, so the
// metadata code reads as a list of statements.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace llms {

// One prepared statement. Bind* calls chain and remember the first failure, which Step then
// returns, so call sites need no check per bind. Indexes are 1-based, columns 0-based.
// Thread safety: none; used under the owner's lock, on the connection that prepared it.
class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, std::string where);
  SqliteStatement(SqliteStatement&&) noexcept = default;
  ~SqliteStatement();

  SqliteStatement& BindInt64(int index, int64_t value);
  SqliteStatement& BindDouble(int index, double value);
  SqliteStatement& BindText(int index, std::string_view value);
  SqliteStatement& BindBlob(int index, std::span<const uint8_t> value);

  // True when a row is available, false when the statement is done.
  StatusOr<bool> Step();
  // Steps a statement that returns no rows.
  Status Run();

  int64_t ColumnInt64(int col) const;
  // True when the column's value is stored as an integer (SQLite columns are not typed: a
  // damaged row may hold text where an integer belongs).
  bool ColumnIsInteger(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  std::vector<uint8_t> ColumnBlob(int col) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const;
  };
  void Remember(int rc, const char* what);

  sqlite3* db_;  // the connection; outlives the statement
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  std::string where_;  // "meta.sqlite path: SQL" for messages
  Status bind_status_;
};

// One connection. Thread safety: none (opened with SQLITE_OPEN_NOMUTEX); the owner serializes
// every call, including statements and transactions.
class SqliteDb {
 public:
  // Opens or creates the database file at `path`.
  static StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  // Takes ownership of `db`; use Open.
  SqliteDb(std::string path, sqlite3* db);
  ~SqliteDb();

  // Runs one or more statements that return no rows.
  Status Exec(const std::string& sql);
  StatusOr<SqliteStatement> Prepare(std::string_view sql);
  // The rowid of the last INSERT and the rows changed by the last statement.
  int64_t LastInsertRowid() const;
  int Changes() const;
  const std::string& path() const { return path_; }

 private:
  struct Closer {
    void operator()(sqlite3* db) const;
  };
  std::string path_;
  std::unique_ptr<sqlite3, Closer> db_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back on destruction unless Commit succeeded.
// Thread safety: none; lives on the stack of the thread holding the owner's lock.
class SqliteTransaction {
 public:
  // `db` must outlive the transaction.
  static StatusOr<SqliteTransaction> Begin(SqliteDb* db);
  SqliteTransaction(SqliteTransaction&& other) noexcept;
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  ~SqliteTransaction();
  Status Commit();

 private:
  explicit SqliteTransaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;  // null once committed, rolled back or moved from
};

// A SQLite result code as a Status: CORRUPT/NOTADB -> Corruption, FULL -> ResourceExhausted,
// BUSY/LOCKED -> Unavailable, everything else -> IOError. `what` names the file and statement.
Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

}  // namespace llms
