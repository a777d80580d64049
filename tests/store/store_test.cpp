#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "foresight/store/store.h"
#include "support/cleanup.h"
#include "support/sqlite.h"

using namespace foresight;
using namespace foresight::store;
namespace fs = std::filesystem;

namespace {
fs::path freshDb(const std::string& name) {
  fs::path p = fs::path(testing::TempDir()) / (name + "-" + std::to_string(::getpid()) + ".db");
  for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p.string() + ext);
  return test_support::databaseRemovedAtExit(p);
}
}  // namespace

TEST(Store, SamplesAndFingerprintsRoundTrip) {
  auto st = Store::open(freshDb("rt"));
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_TRUE(st->addSamples({{"a", 100, {0.5, 1e9, NAN, 10}}, {"a", 101, {0.7, 2e9, 3, 11}},
                              {"b", 100, {1, 1, 1, 1}}}));
  auto rows = st->samples("a", 0, 1000);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].time_ms, 100);
  EXPECT_DOUBLE_EQ((*rows)[0].usage[1], 1e9);
  EXPECT_TRUE(std::isnan((*rows)[0].usage[2]));  // NULL back to NaN
  EXPECT_DOUBLE_EQ((*rows)[1].usage[2], 3);
  EXPECT_EQ(st->samples("a", 101, 1000)->size(), 1u);
  fingerprint::Fingerprint f;
  f.time_ms = 100;
  f.anomaly = 2.5;
  f.vector = {1.0, -2.0, 3.25};
  ASSERT_TRUE(st->addFingerprint("a", f));
  auto fps = st->fingerprints("a", 0, 1000);
  ASSERT_TRUE(fps);
  ASSERT_EQ(fps->size(), 1u);
  EXPECT_EQ((*fps)[0].time_ms, 100);
  EXPECT_EQ((*fps)[0].vector, f.vector);
  EXPECT_DOUBLE_EQ((*fps)[0].anomaly, 2.5);
  EXPECT_EQ(*st->workloads(), (std::vector<std::string>{"a", "b"}));
}

TEST(Store, RetentionDownsamplesIntoBucketMeansThenDrops) {
  auto st = Store::open(freshDb("ret"));
  ASSERT_TRUE(st);
  std::vector<SampleRow> rows;
  // Two samples a second, in milliseconds: t = 0, 0.5, 1, ... 299.5 s.
  for (int k = 0; k < 600; ++k) rows.push_back({"w", 500 * k, {k / 2.0, k * 1.0, NAN, 0}});
  ASSERT_TRUE(st->addSamples(rows));
  ASSERT_EQ(st->samples("w", 0, 1'000'000)->size(), 600u);  // none collide
  Retention r{.raw_seconds = 100, .bucket_seconds = 60, .downsampled_seconds = 100000,
              .fingerprint_seconds = 100000};
  ASSERT_TRUE(st->applyRetention(400'000, r));  // raw before 300 s -> 5 buckets of 60 s
  EXPECT_TRUE(st->samples("w", 0, 1'000'000, 0)->empty());
  auto b = st->samples("w", 0, 1'000'000, 60'000);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->size(), 5u);
  EXPECT_EQ((*b)[0].time_ms, 0);
  EXPECT_DOUBLE_EQ((*b)[0].usage[0], 29.75);   // mean of 0, 0.5, ... 59.5
  EXPECT_DOUBLE_EQ((*b)[4].usage[1], 539.5);   // mean of 480 .. 599
  EXPECT_TRUE(std::isnan((*b)[4].usage[2]));   // all-NULL stays missing
  r.downsampled_seconds = 200;
  ASSERT_TRUE(st->applyRetention(400'000, r));  // buckets before t=200 s go
  b = st->samples("w", 0, 1'000'000, 60'000);
  ASSERT_EQ(b->size(), 1u);  // buckets 0, 60, 120, 180 s start before 200 s
  EXPECT_EQ((*b)[0].time_ms, 240'000);
}

// A raw sample that arrives after its bucket was averaged is dropped; the bucket keeps the mean of
// the samples it was made from. Before, the next retention replaced the bucket with the late
// sample alone.
TEST(Store, RetentionKeepsABucketAgainstALateSample) {
  auto st = Store::open(freshDb("late"));
  ASSERT_TRUE(st);
  ASSERT_TRUE(st->addSamples({{"w", 0, {1, 10, NAN, 0}}, {"w", 30'000, {3, 30, NAN, 0}}}));
  Retention r{.raw_seconds = 100, .bucket_seconds = 60, .downsampled_seconds = 100000,
              .fingerprint_seconds = 100000};
  ASSERT_TRUE(st->applyRetention(400'000, r));
  ASSERT_TRUE(st->addSamples({{"w", 45'000, {100, 1000, NAN, 0}}}));  // late, in bucket 0
  ASSERT_TRUE(st->applyRetention(400'000, r));
  auto b = st->samples("w", 0, 1'000'000, 60'000);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_DOUBLE_EQ((*b)[0].usage[0], 2);
  EXPECT_DOUBLE_EQ((*b)[0].usage[1], 20);
  EXPECT_TRUE(st->samples("w", 0, 1'000'000, 0)->empty());  // the late sample is gone
}

// A version 1 database as that schema wrote it (times and bucket sizes in seconds), with `more`
// further raw samples of workload 'w' at 2000 s and later.
void writeVersion1(const fs::path& p, int more = 0) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(p.c_str(), &db), SQLITE_OK);
  const char* v1 = R"sql(
    CREATE TABLE workloads (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE samples (workload INTEGER NOT NULL REFERENCES workloads(id),
      resolution INTEGER NOT NULL, time INTEGER NOT NULL,
      cpu REAL, memory REAL, disk_io REAL, network REAL,
      PRIMARY KEY (workload, resolution, time)) WITHOUT ROWID;
    CREATE TABLE fingerprints (workload INTEGER NOT NULL REFERENCES workloads(id),
      time INTEGER NOT NULL, anomaly REAL NOT NULL, vector BLOB NOT NULL,
      PRIMARY KEY (workload, time)) WITHOUT ROWID;
    INSERT INTO workloads VALUES (1, 'w');
    -- 1 and 1000: multiplied in place, 1 would collide with 1000 before it moves.
    INSERT INTO samples VALUES (1, 0, 1, 0.5, 100, NULL, 7), (1, 0, 1000, 1.5, 200, 3, 8),
                               (1, 60, 960, 2.5, 300, NULL, NULL);
    INSERT INTO fingerprints VALUES (1, 1000, 0.25, x'000000000000f03f');
    PRAGMA user_version=1;
  )sql";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  const std::string rows =
      "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < " + std::to_string(more) +
      ") INSERT INTO samples SELECT 1, 0, 2000 + i, 1, 1, 1, 1 FROM n;";
  if (more > 0) {
    ASSERT_EQ(sqlite3_exec(db, rows.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  }
  sqlite3_close(db);
}

TEST(Store, MigratesAVersion1FileFromSecondsToMilliseconds) {
  const fs::path p = freshDb("v1");
  writeVersion1(p);
  {
    auto st = Store::open(p);
    ASSERT_TRUE(st) << st.error().message;
    auto raw = st->samples("w", 0, INT64_MAX);
    ASSERT_TRUE(raw);
    ASSERT_EQ(raw->size(), 2u);
    EXPECT_EQ((*raw)[0].time_ms, 1000);
    EXPECT_DOUBLE_EQ((*raw)[0].usage[0], 0.5);
    EXPECT_TRUE(std::isnan((*raw)[0].usage[2]));
    EXPECT_EQ((*raw)[1].time_ms, 1'000'000);
    EXPECT_DOUBLE_EQ((*raw)[1].usage[3], 8);
    auto bucket = st->samples("w", 0, INT64_MAX, 60'000);
    ASSERT_TRUE(bucket);
    ASSERT_EQ(bucket->size(), 1u);
    EXPECT_EQ((*bucket)[0].time_ms, 960'000);
    EXPECT_DOUBLE_EQ((*bucket)[0].usage[1], 300);
    auto fps = st->fingerprints("w", 0, INT64_MAX);
    ASSERT_TRUE(fps);
    ASSERT_EQ(fps->size(), 1u);
    EXPECT_EQ((*fps)[0].time_ms, 1'000'000);
    EXPECT_EQ((*fps)[0].vector, std::vector<double>{1.0});
    // New rows less than a second apart both stay.
    ASSERT_TRUE(st->addSamples({{"w", 2'000'000, {1, 1, 1, 1}}, {"w", 2'000'250, {2, 2, 2, 2}}}));
    EXPECT_EQ(st->samples("w", 2'000'000, 2'001'000)->size(), 2u);
  }
  sqlite3* db = nullptr;
  sqlite3_open(p.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), kSchemaVersion);
  EXPECT_EQ(kSchemaVersion, 2);
  sqlite3_finalize(s);
  // The old tables are gone, not left beside the new ones.
  sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v1'", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  // Opened again: already version 2, nothing migrated twice.
  auto again = Store::open(p);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again->samples("w", 0, 1'000'001))[1].time_ms, 1'000'000);
}

// Agents started together on an old file: one migrates, the others wait for it and open the
// migrated file (before, they failed on the tables it had just replaced).
TEST(Store, ProcessesOpeningAnOldFileTogetherAllOpenIt) {
  const fs::path p = freshDb("v1race");
  writeVersion1(p, 300'000);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int k = 0; k < 3; ++k) {
    const pid_t c = ::fork();
    ASSERT_GE(c, 0);
    if (c == 0) {
      ::close(go[1]);
      char b;
      if (::read(go[0], &b, 1) != 0) _exit(3);  // all start when the pipe closes
      auto st = Store::open(p);
      if (!st) {
        std::fprintf(stderr, "%s\n", st.error().message.c_str());
        _exit(1);
      }
      _exit(st->samples("w", 0, INT64_MAX)->size() == 300'002 ? 0 : 2);
    }
    children.push_back(c);
  }
  ::close(go[0]);
  ::close(go[1]);
  for (pid_t c : children) {
    int status = 0;
    ::waitpid(c, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << c << " status " << status;
  }
}

// Switching a file to WAL needs its exclusive lock. While another process is writing to it in
// rollback mode (an old file, or two agents starting on a new one), SQLite answers the switch with
// SQLITE_BUSY at once, not after the busy timeout (a lock promotion that could deadlock): the store
// tries again until the writer is done (before: "database is locked", seen once in CI).
TEST(Store, OpensAFileThatAnotherConnectionIsWritingInRollbackMode) {
  const fs::path p = freshDb("busy");
  writeVersion1(p);
  Result<Store> st = fail(ErrorCode::kInternal, "not opened");
  {
    test_support::WriteInProgress writer(p, "INSERT INTO workloads VALUES (2, 'x');", std::chrono::milliseconds(300));
    st = Store::open(p);
  }
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->samples("w", 0, INT64_MAX)->size(), 2u);
}

// SQLite opens a write-protected file read-only; the store refuses it rather than drop every write.
TEST(Store, AWriteProtectedFileIsRefusedAtOpen) {
  const fs::path p = freshDb("protected");
  { ASSERT_TRUE(Store::open(p)); }
  if (std::system(("chattr +i " + p.string() + " 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "chattr +i needs root and an ext2/3/4-like file system";
  auto st = Store::open(p);
  std::system(("chattr -i " + p.string()).c_str());
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find(p.string() + ": the history database can only be read"), std::string::npos)
      << st.error().message;
}

TEST(Store, RefusesNewerSchemaAndNonDatabases) {
  const fs::path p = freshDb("ver");
  { ASSERT_TRUE(Store::open(p)); }
  {
    sqlite3* db = nullptr;
    sqlite3_open(p.c_str(), &db);
    sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto st = Store::open(p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kParse);
  EXPECT_NE(st.error().message.find(p.string()), std::string::npos);
  const fs::path junk = freshDb("junk");
  std::ofstream(junk) << "this is not a database, just some text long enough to have a header";
  auto bad = Store::open(junk);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find(junk.string()), std::string::npos);
}

TEST(Store, SurvivesSigkillMidWrite) {
  const fs::path p = freshDb("crash");
  int progress[2];
  ASSERT_EQ(::pipe(progress), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto st = Store::open(p);
    if (!st) _exit(1);
    for (int batch = 0;; ++batch) {
      std::vector<SampleRow> rows;
      for (int i = 0; i < 100; ++i) rows.push_back({"w", batch * 100 + i, {1, 2, 3, 4}});
      if (!st->addSamples(rows)) _exit(2);
      if (::write(progress[1], "c", 1) != 1) _exit(3);  // batch committed
    }
  }
  ::close(progress[1]);
  char c;
  int committed = 0;
  while (committed < 20 && ::read(progress[0], &c, 1) == 1) ++committed;
  ::kill(child, SIGKILL);  // somewhere inside a later batch
  ::waitpid(child, nullptr, 0);
  ::close(progress[0]);
  ASSERT_EQ(committed, 20);
  auto st = Store::open(p);
  ASSERT_TRUE(st) << st.error().message;
  auto rows = st->samples("w", 0, 1 << 30);
  ASSERT_TRUE(rows);
  EXPECT_GE(rows->size(), 20u * 100);
  EXPECT_EQ(rows->size() % 100, 0u);  // whole batches only: no torn transaction
  sqlite3* db = nullptr;
  sqlite3_open(p.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "ok");
  sqlite3_finalize(s);
  sqlite3_close(db);
}
