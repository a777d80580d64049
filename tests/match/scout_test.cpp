// The full MATCHING.md evaluation on Scout (label `slow`): checks the protocol's bookkeeping on
// real data; the figures themselves are reported in docs/results.md ("Environment matcher").
#include <gtest/gtest.h>

#include <filesystem>

#include "foresight/match/evaluate.h"

namespace foresight::match {
namespace {

TEST(ScoutEvaluation, LeaveOneApplicationOutScoresEveryWorkload) {
  const std::filesystem::path dir = std::string(FORESIGHT_SHARED_DATA_DIR) + "/envmatch/scout";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " not present";
  auto d = loadMatchFolder(dir);
  ASSERT_TRUE(d) << d.error().message;
  auto t = buildOutcomeTable(*d, Objective::kCost, std::nullopt);
  ASSERT_TRUE(t) << t.error().message;
  EvaluationOptions opt;
  opt.group_by = "app";
  opt.threads = 2;
  auto r = evaluate(*t, opt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->summary.workloads, 18u);
  for (const auto& w : r->workloads) {
    EXPECT_EQ(w.probes.size(), 3u);
    EXPECT_GE(w.regret, 0);
    EXPECT_GE(w.random_regret, 0);
    EXPECT_EQ(w.top1, w.chosen == w.best);
  }
}

}  // namespace
}  // namespace foresight::match
