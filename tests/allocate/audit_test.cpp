// Audit trail: records, WAL mode, failed applies on record, rollback through the backend.
#include "foresight/allocate/audit.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>

#include "test_util.h"

namespace foresight::allocate {
namespace {
using testing::readFile;
using testing::TempDir;
using testing::writeFile;

struct Fixture {
  TempDir tmp;
  BackendRegistry registry{"backend"};
  BackendOptions options;
  Fixture() {
    registerBackends(registry);
    options.values["root"] = (tmp.path() / "cg").string();
    writeFile(tmp.path() / "cg/cpu/app/cpu.cfs_quota_us", "-1\n");
    writeFile(tmp.path() / "cg/cpu/app/cpu.cfs_period_us", "100000\n");
    writeFile(tmp.path() / "cg/memory/app/memory.limit_in_bytes", "1073741824\n");
  }
};

// The change both cgroup tests apply: 1.5 cores and 2 GiB.
Allocation cpuAndMemory() {
  Allocation t;
  t[Resource::kCpu] = 1.5;
  t[Resource::kMemory] = 2147483648.0;
  return t;
}

TEST(Audit, RecordsChangesAndRollsBack) {
  Fixture fx;
  auto log = AuditLog::open((fx.tmp.path() / "audit.db").string());
  ASSERT_TRUE(log) << log.error().message;
  auto backend = fx.registry.create("cgroup-v1", fx.options);
  ASSERT_TRUE(backend);
  const Allocation t = cpuAndMemory();
  auto id = applyAndRecord(**backend, "cgroup-v1", fx.options, *log, "app", t, "test change");
  ASSERT_TRUE(id) << id.error().message;
  auto rec = log->get(*id);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_TRUE(rec->ok());
  EXPECT_EQ(rec->reason, "test change");
  EXPECT_FALSE(rec->before[Resource::kCpu]);  // was unlimited
  EXPECT_EQ(*rec->before[Resource::kMemory], 1073741824.0);
  EXPECT_EQ(rec->after, t);
  EXPECT_EQ(rec->options.get("root"), fx.options.get("root"));

  // Someone changes cpu after #id: the rollback refuses unless forced.
  writeFile(fx.tmp.path() / "cg/cpu/app/cpu.cfs_quota_us", "300000\n");
  auto refused = rollback(*log, fx.registry, *id);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("cpu changed since #1"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/cpu/app/cpu.cfs_quota_us"), "300000");
  writeFile(fx.tmp.path() / "cg/cpu/app/cpu.cfs_quota_us", "150000\n");

  auto rb = rollback(*log, fx.registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/cpu/app/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/memory/app/memory.limit_in_bytes"), "1073741824");
  auto rbrec = log->get(*rb);
  ASSERT_TRUE(rbrec);
  EXPECT_EQ(rbrec->rollback_of, *id);
  EXPECT_EQ(rbrec->before, t);

  auto all = log->list("", 0);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, *rb);  // newest first
  EXPECT_EQ(log->list("other", 0)->size(), 0u);
}

// A backend whose apply() always fails, as a refused kernel write would.
class RefusingBackend final : public Backend {
 public:
  std::string name() const override { return "refusing"; }
  Result<Allocation> current(const std::string&) override {
    Allocation a;
    a[Resource::kMemory] = 1e9;
    return a;
  }
  Status apply(const std::string& w, const Allocation&) override {
    return fail(ErrorCode::kIo, "{}/memory.limit_in_bytes: Device or resource busy", w);
  }
};

TEST(Audit, FailedApplyIsRecordedAndCannotBeRolledBack) {
  Fixture fx;
  auto log = AuditLog::open((fx.tmp.path() / "audit.db").string());
  ASSERT_TRUE(log);
  RefusingBackend backend;
  Allocation t;
  t[Resource::kMemory] = 5e8;
  auto id = applyAndRecord(backend, "refusing", {}, *log, "app", t, "r");
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().message.find("busy"), std::string::npos);
  auto all = log->list("app", 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].result,
            "failed: app/memory.limit_in_bytes: Device or resource busy");
  EXPECT_EQ(*(*all)[0].before[Resource::kMemory], 1e9);
  auto rb = rollback(*log, fx.registry, (*all)[0].id);
  ASSERT_FALSE(rb);
  EXPECT_NE(rb.error().message.find("nothing to roll back"), std::string::npos);
}

TEST(Audit, AChangeTheTrailCannotRecordIsUndone) {
  Fixture fx;
  const auto path = (fx.tmp.path() / "audit.db").string();
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log);
  {  // the trail breaks after it was opened (another tool, a full disk): appends fail
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE allocation_changes;", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto backend = fx.registry.create("cgroup-v1", fx.options);
  ASSERT_TRUE(backend);
  const Allocation t = cpuAndMemory();
  auto id = applyAndRecord(**backend, "cgroup-v1", fx.options, *log, "app", t, "unrecordable");
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().message.find("not applied"), std::string::npos) << id.error().message;
  EXPECT_NE(id.error().message.find("the previous setting is back"), std::string::npos) << id.error().message;
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/cpu/app/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/memory/app/memory.limit_in_bytes"), "1073741824");
}

// A write-protected database opens read-only in SQLite; the trail refuses it before any change.
TEST(Audit, AWriteProtectedDatabaseIsRefusedAtOpen) {
  TempDir tmp;
  const auto path = (tmp.path() / "a.db").string();
  ASSERT_TRUE(AuditLog::open(path));
  const std::string protect = "chattr +i " + path + " 2>/dev/null";
  if (std::system(protect.c_str()) != 0) GTEST_SKIP() << "chattr +i needs root and an ext2/3/4-like file system";
  auto log = AuditLog::open(path);
  std::system(("chattr -i " + path).c_str());
  ASSERT_FALSE(log);
  EXPECT_NE(log.error().message.find("can only be read"), std::string::npos) << log.error().message;
}

TEST(Audit, DatabaseIsInWalMode) {
  TempDir tmp;
  const auto path = (tmp.path() / "a.db").string();
  ASSERT_TRUE(AuditLog::open(path));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
  EXPECT_FALSE(AuditLog::open((tmp.path() / "no/such/dir/a.db").string()));
}

}  // namespace
}  // namespace foresight::allocate
