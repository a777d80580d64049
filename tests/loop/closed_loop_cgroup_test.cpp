// `foresight bench closed-loop` against the real cgroup files of this host: short cycles, one
// controller per part, checking the plumbing (the figures themselves come from the benchmark).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace {
namespace fs = std::filesystem;

bool cgroupsWritable() {
  if (geteuid() != 0) return false;
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) return true;  // v2
  return fs::exists("/sys/fs/cgroup/cpu") && fs::exists("/sys/fs/cgroup/memory");
}

std::set<fs::path> benchCgroups() {
  std::set<fs::path> out;
  for (const auto& root : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"}) {
    if (!fs::exists(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      if (e.path().filename().string().rfind("foresight-bench-", 0) == 0) out.insert(e.path());
    }
  }
  return out;
}

TEST(ClosedLoopBench, RunsAWorkloadInARealCgroup) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const auto before = benchCgroups();  // another experiment may be running on this host
  const fs::path out = fs::temp_directory_path() / fmt::format("closed-loop-{}.json", getpid());
  const std::string cmd = fmt::format(
      "{} --log-level warn bench closed-loop --cycle-seconds 4 --warmup-cycles 1 --cycles 1 "
      "--controllers reactive --json {} >/dev/null",
      FORESIGHT_BIN, out.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto j = nlohmann::json::parse(std::ifstream(out));
  fs::remove(out);
  const auto& r = j["controllers"]["reactive"];
  for (const char* k :
       {"throttled_seconds", "mean_quota_cores", "oom_kills", "mean_memory_limit_bytes"}) {
    EXPECT_TRUE(r.contains(k)) << k;
  }
  EXPECT_GT(r["mean_quota_cores"].get<double>(), 0.0);
  EXPECT_GT(r["mean_memory_limit_bytes"].get<double>(), 16e6);
  EXPECT_TRUE(r.contains("p99_latency_ms"));
  // The experiment's cgroups are gone afterwards.
  for (const auto& p : benchCgroups()) EXPECT_TRUE(before.count(p)) << p << " was left behind";
}

}  // namespace
