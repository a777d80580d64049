// The July Bitbrains trace end to end: the `bitbrains` reader against an independent reading of
// the same files (scripts/bitbrains_to_csv.py, then `--format csv`) must give identical results.
// The policies that see only usage: the lstm also reads Bitbrains' machine metadata (cores,
// capacity), which the generic CSV format does not carry, so it differs by design.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/shell.h"

namespace {
namespace fs = std::filesystem;

constexpr const char* kPolicies = "seasonal,vpa,autopilot,reactive,static,oracle";

TEST(FullTrace, BitbrainsReaderMatchesAnIndependentCsvConversion) {
  const fs::path trace = fs::path(FORESIGHT_SHARED_DATA_DIR) / "bitbrains-rnd" / "2013-7";
  if (!fs::exists(trace)) GTEST_SKIP() << trace << " is absent";
  const fs::path dir =
      fs::temp_directory_path() / ("foresight-full-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  using foresight::test_support::runShell;
  auto conv = runShell(fmt::format("python3 {}/scripts/bitbrains_to_csv.py {} {}", FORESIGHT_SOURCE_DIR,
                                   trace.string(), (dir / "csv").string()));
  ASSERT_EQ(conv.exit_code, 0) << conv.all();
  auto a_run = runShell(fmt::format("{} --log-level warn backtest --trace {} --format bitbrains --policies {} --json {}",
                                    FORESIGHT_BIN, trace.string(), kPolicies, (dir / "a.json").string()));
  ASSERT_EQ(a_run.exit_code, 0) << a_run.err;
  auto b_run = runShell(fmt::format("{} --log-level warn backtest --trace {} --format csv --policies {} --json {}",
                                    FORESIGHT_BIN, (dir / "csv").string(), kPolicies, (dir / "b.json").string()));
  ASSERT_EQ(b_run.exit_code, 0) << b_run.err;
  auto a = nlohmann::json::parse(std::ifstream(dir / "a.json"));
  auto b = nlohmann::json::parse(std::ifstream(dir / "b.json"));
  fs::remove_all(dir);
  EXPECT_GT(a["trace"]["series"], 500);  // the trace-wide gaps split the VMs' months
  EXPECT_EQ(a["trace"]["step_seconds"], 300);
  EXPECT_EQ(a, b);
  for (const char* p : {"seasonal", "vpa", "autopilot", "reactive", "static", "oracle"})
    for (const char* r : {"cpu", "memory", "disk_io", "network"})
      EXPECT_TRUE(a["policies"][p].contains(r));
}

}  // namespace
