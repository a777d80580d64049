#pragma once
// SQLite from the outside, for the tests of Foresight's databases (history store, audit trail,
// run store): what another process does to the same file.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <string>
#include <thread>

namespace foresight::test_support {

// The file's journal mode as another connection sees it ("wal", "delete", ...; "" if unreadable).
inline std::string journalMode(const std::string& path) {
  sqlite3* db = nullptr;
  std::string mode;
  if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      mode = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return mode;
}

// Another connection in the middle of a write (`sql` after BEGIN IMMEDIATE) that commits
// `after` later, in a thread of its own; joined (and the connection closed) when destroyed.
class WriteInProgress {
 public:
  WriteInProgress(const std::string& path, const std::string& sql, std::chrono::milliseconds after) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
    EXPECT_EQ(sqlite3_exec(db_, ("BEGIN IMMEDIATE; " + sql).c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    commit_ = std::thread([this, after] {
      std::this_thread::sleep_for(after);
      EXPECT_EQ(sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
    });
  }
  ~WriteInProgress() {
    commit_.join();
    sqlite3_close(db_);
  }

 private:
  sqlite3* db_ = nullptr;
  std::thread commit_;
};

}  // namespace foresight::test_support
