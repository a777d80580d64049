#pragma once
// What every SQLite file of Foresight's (the history store, the audit trail, the matcher's run
// store) does when opened.

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

}  // namespace foresight::store
