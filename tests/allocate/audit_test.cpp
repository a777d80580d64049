// Audit trail: records, WAL mode, failed applies on record, rollback through the backend.
#include "foresight/allocate/audit.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>

#include <fmt/format.h>

#include "support/sqlite.h"
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

// A rollback writes back the settings snapshot before the change, also what an Allocation cannot
// hold. Before, it applied `before`: a write limit apart from the read limit (v1 blkio, v2 io.max)
// came back equal to the read limit, and an admin's memory.high without a memory.max came back
// as "max".
TEST(Audit, ARollbackPutsBackWhatTheAllocationCannotHold) {
  Fixture fx;
  auto log = AuditLog::open((fx.tmp.path() / "audit.db").string());
  ASSERT_TRUE(log);
  writeFile(fx.tmp.path() / "cg/blkio/app/blkio.throttle.read_bps_device", "8:0 1048576\n");
  writeFile(fx.tmp.path() / "cg/blkio/app/blkio.throttle.write_bps_device", "8:0 8388608\n");
  BackendOptions v1 = fx.options;
  v1.values["io_device"] = "8:0";
  auto b1 = fx.registry.create("cgroup-v1", v1);
  ASSERT_TRUE(b1);
  Allocation io;
  io[Resource::kDiskIo] = 4194304;
  auto id = applyAndRecord(**b1, "cgroup-v1", v1, *log, "app", io, "io");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/blkio/app/blkio.throttle.write_bps_device"), "8:0 4194304");
  ASSERT_TRUE(rollback(*log, fx.registry, *id));
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/blkio/app/blkio.throttle.read_bps_device"), "8:0 1048576");
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/blkio/app/blkio.throttle.write_bps_device"), "8:0 8388608");

  const auto v2dir = fx.tmp.path() / "v2/svc";
  writeFile(v2dir / "cpu.max", "max 100000\n");
  writeFile(v2dir / "memory.max", "max\n");
  writeFile(v2dir / "memory.high", "1073741824\n");
  writeFile(v2dir / "memory.current", "104857600\n");
  writeFile(v2dir / "io.max", "8:0 rbps=1048576 wbps=8388608 riops=max wiops=max\n");
  BackendOptions v2;
  v2.values = {{"root", (fx.tmp.path() / "v2").string()}, {"io_device", "8:0"}};
  auto b2 = fx.registry.create("cgroup-v2", v2);
  ASSERT_TRUE(b2);
  Allocation t;
  t[Resource::kMemory] = 2147483648.0;
  t[Resource::kDiskIo] = 4194304;
  id = applyAndRecord(**b2, "cgroup-v2", v2, *log, "svc", t, "v2");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(readFile(v2dir / "memory.max"), "2147483648");
  auto rb = rollback(*log, fx.registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(readFile(v2dir / "memory.max"), "max");
  EXPECT_EQ(readFile(v2dir / "memory.high"), "1073741824");
  EXPECT_EQ(readFile(v2dir / "io.max"), "8:0 rbps=1048576 wbps=8388608");
  // The rollback is itself recorded with its own snapshot: rolling it back redoes the change.
  ASSERT_TRUE(rollback(*log, fx.registry, *rb));
  EXPECT_EQ(readFile(v2dir / "memory.max"), "2147483648");
}

// A trail written before the snapshot and oom columns existed is migrated at open, and its
// records still roll back (through `before`) and hold no kill.
TEST(Audit, ATrailWithoutSnapshotsIsMigratedAndRollsBackThroughBefore) {
  Fixture fx;
  const auto path = (fx.tmp.path() / "old.db").string();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql = fmt::format(R"sql(
CREATE TABLE allocation_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, workload TEXT NOT NULL,
  backend TEXT NOT NULL, options TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL,
  reason TEXT NOT NULL, result TEXT NOT NULL, rollback_of INTEGER REFERENCES allocation_changes(id));
INSERT INTO allocation_changes (time, workload, backend, options, before, after, reason, result)
VALUES (1, 'app', 'cgroup-v1', '{{"root": "{}"}}', '{{"memory": 1073741824}}',
        '{{"cpu": 1.5}}', 'old', 'ok');)sql",
                                        fx.options.get("root"));
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  {  // read-only, it is read as it is, without the column
    auto ro = AuditLog::open(path, AuditLog::Mode::kReadOnly);
    ASSERT_TRUE(ro) << ro.error().message;
    auto listed = ro->list("", 10);
    ASSERT_TRUE(listed) << listed.error().message;
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_TRUE((*listed)[0].restore.is_null());
    EXPECT_FALSE(ro->append((*listed)[0]));
  }
  writeFile(fx.tmp.path() / "cg/cpu/app/cpu.cfs_quota_us", "150000\n");
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log) << log.error().message;
  auto old = log->get(1);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_TRUE(old->restore.is_null());
  EXPECT_FALSE(old->oom);
  auto rb = rollback(*log, fx.registry, 1);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(readFile(fx.tmp.path() / "cg/cpu/app/cpu.cfs_quota_us"), "-1");
  EXPECT_FALSE(log->get(*rb)->restore.is_null());
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

// `foresight allocate` and `run --apply` starting on a new trail together: while one writes to it
// in rollback mode, the other's switch to WAL is answered SQLITE_BUSY at once; it waits instead.
TEST(Audit, OpensATrailThatAnotherConnectionIsWritingInRollbackMode) {
  TempDir tmp;
  const std::string path = (tmp.path() / "audit.db").string();
  Result<AuditLog> log = fail(ErrorCode::kInternal, "not opened");
  {
    test_support::WriteInProgress writer(path, "CREATE TABLE other (x);", std::chrono::milliseconds(300));
    log = AuditLog::open(path);
  }
  ASSERT_TRUE(log) << log.error().message;
}

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

TEST(Audit, ReadOnlyOpensOnlyAnExistingTrail) {
  TempDir tmp;
  const auto path = (tmp.path() / "a.db").string();
  EXPECT_FALSE(AuditLog::open(path, AuditLog::Mode::kReadOnly));
  EXPECT_FALSE(std::filesystem::exists(path));
  writeFile(tmp.path() / "other.db", "");
  auto empty = AuditLog::open((tmp.path() / "other.db").string(), AuditLog::Mode::kReadOnly);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("not an audit database"), std::string::npos) << empty.error().message;
}

TEST(Audit, DatabaseIsInWalMode) {
  TempDir tmp;
  const auto path = (tmp.path() / "a.db").string();
  ASSERT_TRUE(AuditLog::open(path));
  EXPECT_EQ(test_support::journalMode(path), "wal");
  EXPECT_FALSE(AuditLog::open((tmp.path() / "no/such/dir/a.db").string()));
}

}  // namespace
}  // namespace foresight::allocate
