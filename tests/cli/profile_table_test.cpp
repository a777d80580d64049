// What `foresight profile` keeps per workload between rounds.
#include <gtest/gtest.h>

#include <string>

#include "profile_table.h"

using namespace foresight;
using foresight::app::ProfileTable;

namespace {

collect::Sample sample(const std::string& workload, int second, double cpu_seconds) {
  collect::Sample s{workload, static_cast<std::int64_t>(second) * 1'000'000'000, {}};
  s.add("cpu_usage_seconds_total", cpu_seconds);
  return s;
}

}  // namespace

TEST(ProfileTable, RowsAreByCpuFromTheSecondSample) {
  ProfileTable table({.window = 4, .hop = 1});
  collect::Sampler::Round r1{{sample("a", 0, 0), sample("b", 0, 0)}, {}, 0};
  EXPECT_TRUE(table.update(r1).empty());
  collect::Sampler::Round r2{{sample("a", 1, 0.5), sample("b", 1, 2)}, {}, 0};
  const auto rows = table.update(r2);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].id, "b");
  EXPECT_DOUBLE_EQ(rows[0].usage[0], 2);
  EXPECT_DOUBLE_EQ(rows[1].usage[0], 0.5);
}

// Workloads come and go (containers, cmd: matches); each one's previous sample, fingerprint
// pipeline and anomaly score went on being kept after it left, for the rest of the run.
TEST(ProfileTable, ForgetsWorkloadsTheSamplerReportsGone) {
  ProfileTable table({.window = 4, .hop = 1});
  int t = 0;
  for (int k = 0; k < 100; ++k) {
    const std::string w = "w-" + std::to_string(k);
    for (int i = 0; i < 6; ++i, ++t)  // past a window: a pipeline and an anomaly score each
      table.update({{sample("stays", t, t), sample(w, t, 0.5 * i)}, {}, 0});
    EXPECT_EQ(table.tracked(), 2u);
    table.update({{sample("stays", t, t)}, {w}, 0});
    ++t;
    EXPECT_EQ(table.tracked(), 1u) << w;
  }
}
