#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "foresight/match/data.h"
#include "foresight/match/flora.h"

namespace foresight::match {
namespace {

const std::string kDir = MATCH_FIXTURES;

TEST(Psrecord, FingerprintSkipsTheIdleFirstSample) {
  auto t = readPsrecord(kDir + "/flora/profiling_data/psrecord_monitoring/Grep_100.txt");
  ASSERT_TRUE(t) << t.error().message;
  const auto fp = fingerprintOf(*t);
  // CPU 100/200/300 % → 1, 2, 3 cores; memory 200/400/300 MB.
  EXPECT_DOUBLE_EQ(fp.at("duration_s"), 3);
  EXPECT_DOUBLE_EQ(fp.at("cpu_mean_cores"), 2);
  EXPECT_DOUBLE_EQ(fp.at("cpu_p50_cores"), 2);
  EXPECT_DOUBLE_EQ(fp.at("cpu_peak_cores"), 3);
  EXPECT_NEAR(fp.at("cpu_burstiness"), std::sqrt(2.0 / 3) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(fp.at("memory_mean_mb"), 300);
  EXPECT_DOUBLE_EQ(fp.at("memory_peak_mb"), 400);
  EXPECT_DOUBLE_EQ(fp.at("memory_early_share"), 1);
  EXPECT_DOUBLE_EQ(fp.at("virtual_peak_mb"), 500);
}

TEST(Psrecord, MalformedLineNamesFileAndLine) {
  const auto file = std::filesystem::temp_directory_path() / "match_bad_psrecord.txt";
  {
    std::ofstream out(file);
    out << "# header\n0 0 1 1\n1 oops 2 2\n";
  }
  auto t = readPsrecord(file);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("match_bad_psrecord.txt:3"), std::string::npos) << t.error().message;
  std::filesystem::remove(file);
}

TEST(Flora, ConvertsToTheGenericFormat) {
  const auto out = std::filesystem::temp_directory_path() / "match_flora_out";
  std::filesystem::remove_all(out);
  ASSERT_TRUE(convertFlora(kDir + "/flora", out, {0.05, 0.01}));
  auto d = loadMatchFolder(out);
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_EQ(d->catalog.environments.size(), 2u);
  const auto* e = d->catalog.find("8x4vcpu-16gb");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->numbers.at("nodes"), 8);
  EXPECT_NEAR(e->prices.at(kOnDemand), 8 * (4 * 0.05 + 16 * 0.01), 1e-9);
  ASSERT_EQ(d->history.runs.size(), 4u);
  EXPECT_EQ(d->history.runs[0].workload, "grep_1000");
  EXPECT_DOUBLE_EQ(d->history.runs[0].runtime_s, 100.5);
  EXPECT_EQ(d->history.workload_info.at("sort_2000").at("app"), "sort");
  const auto& grep = d->history.fingerprints.at("grep_1000");
  EXPECT_NEAR(grep.at("log10_input_bytes"), 3, 1e-9);
  EXPECT_DOUBLE_EQ(grep.at("duration_s"), 6);           // the largest local input's profile
  EXPECT_NEAR(grep.at("duration_scaling"), 1, 1e-9);    // 3 s → 6 s for 2× the input
  EXPECT_NEAR(grep.at("memory_scaling"), 1, 1e-9);      // 400 → 800 MB peak
  EXPECT_FALSE(d->history.fingerprints.at("sort_2000").contains("duration_scaling"));  // one profile
  std::filesystem::remove_all(out);
}

TEST(Flora, OnePriceWithoutTheOtherIsRefused) {
  FloraPrices p;
  p.vcpu_hour = 0.05;
  auto s = convertFlora(kDir + "/flora", std::filesystem::temp_directory_path() / "match_flora_x", p);
  EXPECT_FALSE(s);
}

}  // namespace
}  // namespace foresight::match
