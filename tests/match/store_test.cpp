#include <gtest/gtest.h>

#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "foresight/match/store.h"
#include "support/sqlite.h"

namespace foresight::match {
namespace {

TEST(RunStore, RoundTripsRunsFingerprintsAndInfoAcrossReopen) {
  const auto file = std::filesystem::temp_directory_path() /
                    ("match_store_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".sqlite");
  std::filesystem::remove(file);
  {
    auto store = RunStore::open(file);
    ASSERT_TRUE(store) << store.error().message;
    match::Run a{"wc", "4xc4.large", true, 120.5, 0.02, 3e6, {{"cpu_mean_cores", 1.5}}, 0};
    match::Run b{"wc", "2xm4.large", false, 7200, std::nullopt, std::nullopt, {}, 0};
    ASSERT_TRUE(store->add(a));
    ASSERT_TRUE(store->add(b));
    ASSERT_TRUE(store->setFingerprint("wc", {{"cpu_p90", 3.5}, {"memory_peak_mb", 900}}));
    ASSERT_TRUE(store->setWorkloadInfo("wc", "app", "wordcount"));
  }
  auto store = RunStore::open(file);
  ASSERT_TRUE(store);
  auto h = store->load();
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_EQ(h->runs.size(), 2u);
  EXPECT_EQ(h->runs[0].env, "4xc4.large");
  EXPECT_DOUBLE_EQ(h->runs[0].runtime_s, 120.5);
  EXPECT_DOUBLE_EQ(*h->runs[0].cost, 0.02);
  EXPECT_DOUBLE_EQ(*h->runs[0].throughput, 3e6);
  EXPECT_DOUBLE_EQ(h->runs[0].usage.at("cpu_mean_cores"), 1.5);
  EXPECT_FALSE(h->runs[1].completed);
  EXPECT_FALSE(h->runs[1].cost.has_value());
  EXPECT_DOUBLE_EQ(h->fingerprints.at("wc").at("cpu_p90"), 3.5);
  EXPECT_EQ(h->workload_info.at("wc").at("app"), "wordcount");
  std::filesystem::remove(file);
}

// While `run` records into the store, `match` reads it: WAL, so that a reader does not wait for or
// block the writer; a write in progress does not fail a read-only open.
TEST(RunStore, IsInWalModeAndAReaderOpensItDuringAWrite) {
  const auto file = std::filesystem::temp_directory_path() / ("match_store_wal_" + std::to_string(::getpid()) + ".sqlite");
  std::filesystem::remove(file);
  auto writer = RunStore::open(file);
  ASSERT_TRUE(writer) << writer.error().message;
  EXPECT_EQ(test_support::journalMode(file.string()), "wal");
  {
    test_support::WriteInProgress write(file.string(), "INSERT INTO workload_info VALUES ('w', 'app', 'x');",
                                        std::chrono::milliseconds(100));
    auto reader = RunStore::open(file, RunStore::Mode::kReadOnly);
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_TRUE(reader->load()) << "a read during the write";
  }
  std::filesystem::remove(file);
}

// Readers open the store read-only: a missing file is not created, another database not changed.
TEST(RunStore, ReadOnlyRefusesAMissingFileAndAForeignDatabase) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("match_store_ro_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto missing = RunStore::open(dir / "missing.sqlite", RunStore::Mode::kReadOnly);
  ASSERT_FALSE(missing);
  EXPECT_FALSE(std::filesystem::exists(dir / "missing.sqlite"));

  const auto other = (dir / "other.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto foreign = RunStore::open(other, RunStore::Mode::kReadOnly);
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().message.find("not a run store"), std::string::npos)
      << foreign.error().message;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  int tables = 0;
  sqlite3_exec(
      db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
      [](void* n, int, char** v, char**) { return *static_cast<int*>(n) = std::atoi(v[0]), 0; },
      &tables, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(tables, 1);

  ASSERT_TRUE(RunStore::open(dir / "runs.sqlite"));  // a writer creates it
  auto reader = RunStore::open(dir / "runs.sqlite", RunStore::Mode::kReadOnly);
  ASSERT_TRUE(reader) << reader.error().message;
  EXPECT_TRUE(reader->load());
  EXPECT_FALSE(reader->add({"w", "e", true, 1, {}, {}, {}, 0}));  // read-only
  std::filesystem::remove_all(dir);
}

TEST(RunStore, UnopenablePathIsAnErrorNamingIt) {
  auto store = RunStore::open("/nonexistent-dir/x/history.sqlite");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/x/history.sqlite"), std::string::npos);
}

}  // namespace
}  // namespace foresight::match
