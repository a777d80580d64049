#include <gtest/gtest.h>

#include "foresight/match/evaluate.h"
#include <nlohmann/json.hpp>

#include "synthetic.h"

namespace foresight::match {
namespace {

const std::string kDir = MATCH_FIXTURES;

OutcomeTable fixtureTable(Objective objective, std::optional<double> deadline = std::nullopt) {
  auto d = loadMatchFolder(kDir + "/generic");
  EXPECT_TRUE(d);
  auto t = buildOutcomeTable(*d, objective, deadline);
  EXPECT_TRUE(t);
  return *t;
}

// Costs of the fixture (price × runtime): sortA 0.2 / 0.2222 / failed; grepA 0.00556 / 0.00667 /
// 0.00444 on 2xsmall / 4xsmall / 2xbig.
TEST(Regret, CostRatioMinusOneAndInfeasibleCountsAsWorst) {
  const auto t = fixtureTable(Objective::kCost);
  const auto sort = t.workloadIndex("sortA"), grep = t.workloadIndex("grepA");
  const auto s2 = t.environmentIndex("2xsmall"), s4 = t.environmentIndex("4xsmall"),
             big = t.environmentIndex("2xbig");
  EXPECT_NEAR(*regret(t, sort, s2), 0, 1e-12);
  EXPECT_NEAR(*regret(t, sort, s4), (2000.0 * 0.4) / (3600 * 0.2) - 1, 1e-12);
  EXPECT_NEAR(*regret(t, sort, big), (2000.0 * 0.4) / (3600 * 0.2) - 1, 1e-12);  // failed → worst
  EXPECT_NEAR(*regret(t, grep, s2), (100 * 0.2) / (20 * 0.8) - 1, 1e-12);
}

TEST(Regret, RuntimeObjectiveAndDeadline) {
  const auto rt = fixtureTable(Objective::kRuntime);
  const auto sort = rt.workloadIndex("sortA");
  EXPECT_NEAR(*regret(rt, sort, rt.environmentIndex("2xsmall")), 3600.0 / 2000 - 1, 1e-12);
  // Within 2500 s only 4xsmall is feasible for sortA: missing the deadline counts as worst = best.
  const auto dl = fixtureTable(Objective::kCost, 2500.0);
  EXPECT_NEAR(*regret(dl, sort, dl.environmentIndex("2xsmall")), 0, 1e-12);
  EXPECT_NEAR(*regret(dl, sort, dl.environmentIndex("4xsmall")), 0, 1e-12);
  // No environment within 10 s: the workload cannot be scored.
  const auto none = fixtureTable(Objective::kCost, 10.0);
  EXPECT_FALSE(regret(none, sort, 0).has_value());
}

TEST(BestOnAverage, LowestMeanRegretOverTheGivenWorkloads) {
  const auto t = fixtureTable(Objective::kCost);
  // Mean regret: 2xsmall (0 + 0.25)/2, 4xsmall (0.111 + 0.5)/2, 2xbig (0.111 + 0)/2.
  EXPECT_EQ(t.environments[bestOnAverage(t, {0, 1})].id, "2xbig");
  EXPECT_EQ(t.environments[bestOnAverage(t, {t.workloadIndex("sortA")})].id, "2xsmall");
}

class HeldOut : public ::testing::TestWithParam<bool> {};

TEST_P(HeldOut, OutcomesBeyondItsProbesChangeNothing) {
  auto t = testing::amdahlTable(16, 7);
  EvaluationOptions opt;
  opt.self_tune = GetParam();
  opt.group_by = "app";
  opt.matcher.probes = 3;
  opt.matcher.ensemble = 3;
  opt.matcher.rounds = 60;
  auto a = evaluate(t, opt);
  ASSERT_TRUE(a) << a.error().message;
  const auto& first = a->workloads.front();
  ASSERT_EQ(first.probes.size(), 3u);
  // Scramble every outcome of the held-out workload that it did not probe.
  const auto w = t.workloadIndex(first.workload);
  for (std::size_t e = 0; e < t.environments.size(); ++e) {
    const auto& id = t.environments[e].id;
    if (std::find(first.probes.begin(), first.probes.end(), id) != first.probes.end()) continue;
    auto& o = t.outcomes[w][e];
    o.completed = !o.completed;
    o.runtime_s *= 7;
    o.cost *= 7;
  }
  auto b = evaluate(t, opt);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->workloads.front().workload, first.workload);
  EXPECT_EQ(b->workloads.front().probes, first.probes);
  EXPECT_EQ(b->workloads.front().chosen, first.chosen);
}

INSTANTIATE_TEST_SUITE_P(SelfTune, HeldOut, ::testing::Bool());

TEST(Evaluate, SelfTunePicksOneOfTheSplits) {
  auto t = testing::amdahlTable(12, 5);
  EvaluationOptions opt;
  opt.group_by = "app";
  opt.self_tune = true;
  opt.matcher.ensemble = 2;
  opt.matcher.rounds = 30;
  auto r = evaluate(t, opt);
  ASSERT_TRUE(r) << r.error().message;
  for (const auto& w : r->workloads) {
    EXPECT_TRUE(w.informative_probes == 1 || w.informative_probes == 2 || w.informative_probes == 3);
    EXPECT_EQ(w.probes.size(), 3u);
  }
}

TEST(Evaluate, GroupByNeedsTheColumn) {
  auto t = testing::amdahlTable(4, 1);
  EvaluationOptions opt;
  opt.group_by = "framework";
  auto r = evaluate(t, opt);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("framework"), std::string::npos);
  EXPECT_NE(r.error().message.find("columns it has: app"), std::string::npos) << r.error().message;
}

TEST(Evaluate, JsonCarriesSummaryAndEveryWorkload) {
  auto t = testing::amdahlTable(6, 3);
  EvaluationOptions opt;
  opt.group_by = "app";
  opt.matcher.ensemble = 2;
  opt.matcher.rounds = 30;
  auto r = evaluate(t, opt);
  ASSERT_TRUE(r);
  const auto j = nlohmann::json::parse(toJson(*r, t, opt));
  EXPECT_EQ(j["workloads"].size(), 6u);
  EXPECT_EQ(j["summary"]["workloads"], 6);
  EXPECT_EQ(j["protocol"]["probes"], 3);
}

}  // namespace
}  // namespace foresight::match
