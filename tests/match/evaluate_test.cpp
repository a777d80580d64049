#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

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

TEST(RankOnAverage, LowestMeanRegretOverTheGivenWorkloadsFirst) {
  const auto t = fixtureTable(Objective::kCost);
  // Mean regret: 2xsmall (0 + 0.25)/2, 4xsmall (0.111 + 0.5)/2, 2xbig (0.111 + 0)/2.
  const auto ids = [&](const std::vector<std::size_t>& order) {
    std::vector<std::string> out;
    for (auto e : order) out.push_back(t.environments[e].id);
    return out;
  };
  EXPECT_EQ(ids(rankOnAverage(t, {0, 1})), (std::vector<std::string>{"2xbig", "2xsmall", "4xsmall"}));
  EXPECT_EQ(ids(rankOnAverage(t, {t.workloadIndex("sortA")})).front(), "2xsmall");
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

// Self-tuning's default split is the matcher's own, capped by the factor model's rank. Here each
// fold trains on one group, so the inner evaluation cannot choose and the default stands; with one
// group the factor model has rank 0 and no probe is informative. Before, the default split tried
// and kept was half the budget (2), ignoring the cap.
TEST(Evaluate, SelfTunesDefaultSplitHonoursTheRankCap) {
  auto t = testing::amdahlTable(4, 3);  // groups g0, g1
  EvaluationOptions opt;
  opt.group_by = "app";
  opt.matcher.probes = 3;
  opt.matcher.ensemble = 2;
  opt.matcher.rounds = 30;
  auto plain = evaluate(t, opt);
  ASSERT_TRUE(plain) << plain.error().message;
  opt.self_tune = true;
  auto tuned = evaluate(t, opt);
  ASSERT_TRUE(tuned) << tuned.error().message;
  ASSERT_EQ(tuned->workloads.size(), plain->workloads.size());
  for (std::size_t i = 0; i < plain->workloads.size(); ++i) {
    EXPECT_EQ(plain->workloads[i].informative_probes, 0u);
    EXPECT_EQ(tuned->workloads[i].informative_probes, plain->workloads[i].informative_probes)
        << tuned->workloads[i].workload;
  }
}

// Environments without a listed price are priced from their runs' costs. In a fold, the held-out
// workload's own costs must not set that price: here its five runs on A imply 360 $/h and the
// other workloads' 36 $/h (B: 72 $/h for all), and runtimes are the same everywhere, so the matcher
// chooses A for it on the training workloads' prices. Before, the median over every run (360) made
// it choose B, which its own costs make the best: the held-out outcome leaked into its choice.
TEST(Evaluate, PricesImpliedFromCostsLeaveTheHeldOutWorkloadsRunsOut) {
  MatchData d;
  for (const char* id : {"A", "B"}) {
    Environment e;
    e.id = id;
    e.numbers["nodes"] = 1;
    d.catalog.environments.push_back(e);
  }
  auto run = [&](const std::string& w, const std::string& env, std::optional<double> cost) {
    match::Run r;
    r.workload = w;
    r.env = env;
    r.completed = true;
    r.runtime_s = 100;
    r.cost = cost;
    d.history.runs.push_back(r);
  };
  for (int i = 0; i < 5; ++i) run("held", "A", 10);
  run("held", "B", 2);
  for (const char* w : {"w1", "w2"}) run(w, "A", 1), run(w, "B", 2);
  auto t = buildOutcomeTable(d, Objective::kCost, std::nullopt);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_DOUBLE_EQ(t->price_per_hour[0], 360);  // the whole history's median
  EvaluationOptions opt;
  opt.matcher.probes = 0;
  opt.matcher.ensemble = 2;
  opt.matcher.rounds = 10;
  auto r = evaluate(*t, opt);
  ASSERT_TRUE(r) << r.error().message;
  const auto held = std::find_if(r->workloads.begin(), r->workloads.end(),
                                 [](const WorkloadScore& s) { return s.workload == "held"; });
  ASSERT_NE(held, r->workloads.end());
  EXPECT_EQ(held->chosen, "A");
  EXPECT_EQ(held->best, "B");
  EXPECT_DOUBLE_EQ(held->regret, 4);  // scored on its own costs: 10 vs 2

  // Where only the held-out workload's runs carry a cost, the fold has no price to choose by.
  for (auto& x : d.history.runs)
    if (x.workload != "held") x.cost.reset();
  t = buildOutcomeTable(d, Objective::kCost, std::nullopt);
  ASSERT_TRUE(t) << t.error().message;
  r = evaluate(*t, opt);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("environment 'A' has no price, and only the runs of held-out "
                                   "group 'held' have a cost there"), std::string::npos)
      << r.error().message;
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

// fixtures/ties: w6 runs as fast on A as on B. Choosing either is as good as the best, so it is a
// top-1 hit, whichever of the two is listed as `best` (before, only the first listed counted).
// fixtures/ties evaluated on runtime without probes, less the runs `drop` removes.
Result<EvaluationReport> evaluateTies(const std::function<bool(const match::Run&)>& drop = {}) {
  auto d = loadMatchFolder(kDir + "/ties");
  if (!d) return tl::unexpected(d.error());
  if (drop) std::erase_if(d->history.runs, drop);
  auto t = buildOutcomeTable(*d, Objective::kRuntime, std::nullopt);
  if (!t) return tl::unexpected(t.error());
  EvaluationOptions opt;
  opt.matcher.probes = 0;
  return evaluate(*t, opt);
}

TEST(Evaluate, AChoiceTiedWithTheBestIsAHit) {
  auto r = evaluateTies();
  ASSERT_TRUE(r) << r.error().message;
  std::size_t zero = 0;
  for (const auto& w : r->workloads) {
    EXPECT_EQ(w.top1, w.regret <= 1e-9) << w.workload << " chose " << w.chosen << ", regret " << w.regret;
    EXPECT_EQ(w.baseline_top1, w.baseline_regret <= 1e-9) << w.workload;
    zero += w.regret <= 1e-9;
  }
  EXPECT_EQ(r->summary.top1, zero);
  const auto w6 = std::find_if(r->workloads.begin(), r->workloads.end(), [](auto& w) { return w.workload == "w6"; });
  ASSERT_NE(w6, r->workloads.end());
  EXPECT_EQ(w6->regret, 0);
  EXPECT_TRUE(w6->top1);
}

// Without a run of w6 on B, which the other workloads find best on average, best-on-average for w6
// is the next environment it has a run on, as the matcher and the random pick choose among those
// (before, B was scored as the worst feasible choice).
TEST(Evaluate, BestOnAverageChoosesAmongTheEnvironmentsTheMatcherChoosesAmong) {
  auto r = evaluateTies([](const match::Run& run) { return run.workload == "w6" && run.env == "B"; });
  ASSERT_TRUE(r) << r.error().message;
  for (const auto& w : r->workloads) {
    if (w.workload == "w6") {
      EXPECT_EQ(w.baseline_env, "A");
      EXPECT_EQ(w.baseline_regret, 0);
      EXPECT_NE(w.chosen, "B");
    } else {
      EXPECT_EQ(w.baseline_env, "B") << w.workload;
    }
  }
}

// fixtures/generic: sortA failed on 2xbig without a recorded runtime. Probing every environment,
// that probe's cost is unknown: counted apart, the others summed.
TEST(Evaluate, AProbeOfUnknownCostIsCountedNotTakenAsFree) {
  auto t = fixtureTable(Objective::kCost);
  EvaluationOptions opt;
  opt.matcher.probes = 3;
  auto r = evaluate(t, opt);
  ASSERT_TRUE(r) << r.error().message;
  std::size_t unknown = 0;
  for (const auto& w : r->workloads) {
    ASSERT_EQ(w.probes.size(), 3u) << w.workload;
    const auto wi = t.workloadIndex(w.workload);
    double known = 0;
    for (std::size_t e = 0; e < t.environments.size(); ++e)
      if (std::isfinite(t.value(t.outcomes[wi][e]))) known += t.value(t.outcomes[wi][e]);
    EXPECT_NEAR(w.probe_cost, known, 1e-12) << w.workload;
    EXPECT_EQ(w.probes_unknown_cost, w.workload == "sortA" ? 1u : 0u) << w.workload;
    unknown += w.probes_unknown_cost;
  }
  EXPECT_EQ(r->summary.probes_unknown_cost, unknown);
  const auto j = nlohmann::json::parse(toJson(*r, t, opt));
  EXPECT_EQ(j["summary"]["probe_runs_of_unknown_cost"], 1);
}

}  // namespace
}  // namespace foresight::match
