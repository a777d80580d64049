#include <gtest/gtest.h>

#include <filesystem>

#include "foresight/match/store.h"

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

TEST(RunStore, UnopenablePathIsAnErrorNamingIt) {
  auto store = RunStore::open("/nonexistent-dir/x/history.sqlite");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/x/history.sqlite"), std::string::npos);
}

}  // namespace
}  // namespace foresight::match
