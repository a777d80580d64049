#include "foresight/store/sqlite.h"

#include <chrono>
#include <thread>

namespace foresight::store {

Status openWal(sqlite3* db, const std::string& file, int busy_ms) {
  sqlite3_busy_timeout(db, busy_ms);
  constexpr int kRetryMs = 20;
  for (int waited = 0;; waited += kRetryMs) {
    const int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL;", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return ok();
    if ((rc & 0xff) != SQLITE_BUSY || waited >= busy_ms)
      return fail(ErrorCode::kIo, "{}: {}", file, sqlite3_errmsg(db));
    std::this_thread::sleep_for(std::chrono::milliseconds(kRetryMs));
  }
}

}  // namespace foresight::store
