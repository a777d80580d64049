#pragma once
// What every SQLite file of Foresight's (the history store, the audit trail, the matcher's run
// store) does when opened, and the statement and column helpers all three use.

#include <sqlite3.h>

#include <string>

#include "foresight/core/result.h"

namespace foresight::store {

// How long a connection waits for another's lock (a read-only one too).
inline constexpr int kBusyTimeoutMs = 5000;

// Sets the busy timeout and switches the file to WAL (readers do not block the writer; a crash
// leaves the last commit). The switch promotes a shared lock to an exclusive one, and while
// another connection writes to the file in rollback mode (an old file, or two processes starting
// on a new one) SQLite answers SQLITE_BUSY at once rather than risk a deadlock in its busy
// handler: the switch is tried again for as long as the busy timeout. Errors name `file`.
Status openWal(sqlite3* db, const std::string& file, int busy_ms = kBusyTimeoutMs);

// A prepared statement, finalised on every path out.
struct Statement {
  sqlite3_stmt* s = nullptr;
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(s); }
};

// Column `col` of the current row as text; "" for NULL.
inline std::string columnText(sqlite3_stmt* s, int col) {
  const auto* p = sqlite3_column_text(s, col);
  return p ? reinterpret_cast<const char*>(p) : "";
}

}  // namespace foresight::store
