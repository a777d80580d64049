#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "boosted_trees.h"
#include "foresight/match/evaluate.h"
#include "synthetic.h"

namespace foresight::match {
namespace {

std::vector<std::size_t> all(const OutcomeTable& t) {
  std::vector<std::size_t> v(t.workloads.size());
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// log runtime = base + a·u_e + noise: the environment with the most extreme u carries the most
// information about the others.
TEST(ChooseProbes, PicksTheMostInformativeEnvironment) {
  OutcomeTable t;
  const double u[] = {0, 1, 2, 3, 10};
  for (int e = 0; e < 5; ++e) t.environments.push_back({"e" + std::to_string(e), {}, {}, {}});
  std::mt19937 rng(5);
  std::normal_distribution<double> n01(0, 1);
  for (int w = 0; w < 40; ++w) {
    t.workloads.push_back(std::string("w").append(std::to_string(w)));
    const double base = 5 + n01(rng), a = n01(rng);
    std::vector<Outcome> row;
    for (int e = 0; e < 5; ++e) {
      Outcome o;
      o.has_run = o.completed = true;
      o.runtime_s = std::exp(base + 0.2 * a * u[e] + 0.1 * n01(rng));
      o.cost = 0;
      row.push_back(o);
    }
    t.outcomes.push_back(row);
  }
  EXPECT_EQ(Matcher::chooseProbes(t, all(t), 1), std::vector<std::size_t>{4});
  auto two = Matcher::chooseProbes(t, all(t), 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_NE(two[0], two[1]);
}

TEST(Matcher, BeatsBestOnAverageWhereTheAnswerIsKnown) {
  auto t = testing::amdahlTable(24, 11);
  EvaluationOptions opt;
  opt.group_by = "app";
  opt.matcher.probes = 2;
  auto r = evaluate(t, opt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_LT(r->summary.median_regret, 0.1);
  EXPECT_LT(r->summary.mean_regret, r->summary.baseline_mean);
}

TEST(Matcher, ProbesAreMeasuredNotPredictedAndFailuresRankLast) {
  auto t = testing::amdahlTable(12, 2);
  MatcherOptions o;
  o.ensemble = 3;
  o.rounds = 50;
  auto m = Matcher::train(t, all(t), o);
  ASSERT_TRUE(m) << m.error().message;
  WorkloadEvidence ev;
  ev.fingerprint = {{"memory_gb", 3}, {"parallel_fraction", 0.5}};
  ev.probes = {{"1x1-4g", true, 1234}, {"8x2-16g", false, 0}};
  auto r = m->rank(ev);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->environments.size(), t.environments.size());
  const auto& last = r->environments.back();
  EXPECT_EQ(last.env, "8x2-16g");
  EXPECT_EQ(last.p_complete, 0);
  EXPECT_FALSE(last.admissible);
  for (const auto& e : r->environments)
    if (e.env == "1x1-4g") {
      EXPECT_TRUE(e.observed);
      EXPECT_DOUBLE_EQ(e.runtime_s, 1234);
      EXPECT_EQ(e.log_sd, 0);
      EXPECT_NEAR(e.cost, 1234.0 / 3600 * 0.1, 1e-12);
    } else if (!e.observed) {
      EXPECT_GT(e.log_sd, 0);
      EXPECT_LE(e.runtime_low_s, e.runtime_s);
      EXPECT_GE(e.runtime_high_s, e.runtime_s);
    }
  // The order is that of `expected`: the lognormal mean (the measured value for a probe) where
  // it completes, and above the median by exp(sd² / 2).
  for (std::size_t i = 0; i < r->environments.size(); ++i) {
    const auto& e = r->environments[i];
    if (i > 0) {
      EXPECT_GE(e.expected, r->environments[i - 1].expected) << e.env;
    }
    if (e.p_complete == 1) {
      EXPECT_NEAR(e.expected, e.cost * std::exp(e.log_sd * e.log_sd / 2), 1e-12 * e.cost) << e.env;
    }
  }
  EXPECT_FALSE(r->drivers.empty());
  EXPECT_NE(r->explanation.find(r->environments.front().env), std::string::npos);
  // A text feature is one driver, named by the chosen environment's own level.
  std::string top_kind;
  for (const auto& e : t.environments)
    if (e.id == r->environments.front().env) top_kind = e.labels.at("kind");
  int kinds = 0;
  for (const auto& d : r->drivers)
    if (d.feature.rfind("kind=", 0) == 0) {
      ++kinds;
      EXPECT_EQ(d.feature, "kind=" + top_kind);
    }
  EXPECT_LE(kinds, 1);
}

TEST(Matcher, UnknownProbeEnvironmentIsAnError) {
  auto t = testing::amdahlTable(4, 2);
  MatcherOptions o;
  o.ensemble = 1;
  o.rounds = 5;
  auto m = Matcher::train(t, all(t), o);
  ASSERT_TRUE(m);
  auto r = m->rank({{}, {{"nowhere", true, 10}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nowhere"), std::string::npos);
}

TEST(Matcher, NextProbeStartsWithTheInformativeOnesThenNeverRepeats) {
  auto t = testing::amdahlTable(10, 4);
  MatcherOptions o;
  o.probes = 4;
  o.ensemble = 2;
  o.rounds = 30;
  for (auto model : {RuntimeModel::kXgboost, RuntimeModel::kFactor}) {
    o.model = model;
    auto m = Matcher::train(t, all(t), o);
    ASSERT_TRUE(m);
    if (model == RuntimeModel::kXgboost)
      ASSERT_EQ(m->probes().size(), 2u);  // half the budget, rounded up
    else
      ASSERT_LE(m->probes().size(), 2u);  // and at most one per factor
    WorkloadEvidence ev;
    std::set<std::size_t> seen;
    for (std::size_t k = 0; k < 4; ++k) {
      auto next = m->nextProbe(ev);
      ASSERT_TRUE(next && *next);
      if (k < m->probes().size()) {
        EXPECT_EQ(**next, m->probes()[k]);
      }
      EXPECT_TRUE(seen.insert(**next).second);
      ev.probes.push_back({t.environments[**next].id, true, 100.0 + static_cast<double>(k)});
    }
  }
}

TEST(Recommend, AdmissibleFilterDropsEnvironmentsUpFront) {
  auto t = testing::amdahlTable(8, 9);
  MatcherOptions o;
  o.ensemble = 2;
  o.rounds = 30;
  auto r = recommendEnvironments(t, {{{"memory_gb", 20}, {"parallel_fraction", 0.8}}, {}}, o,
                                 [](const Environment& e) { return e.numbers.at("nodes") >= 4; });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->environments.size(), 8u);
  for (const auto& e : r->environments) EXPECT_TRUE(e.env.starts_with("4x") || e.env.starts_with("8x"));
}

TEST(Matcher, SavedAndLoadedRanksIdentically) {
  auto t = testing::amdahlTable(10, 6);
  MatcherOptions o;
  o.ensemble = 3;
  o.rounds = 40;
  for (auto model : {RuntimeModel::kFactor, RuntimeModel::kXgboost}) {
    o.model = model;
    auto m = Matcher::train(t, all(t), o);
    ASSERT_TRUE(m);
    auto text = m->save();
    ASSERT_TRUE(text) << text.error().message;
    auto back = Matcher::load(*text);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->probes(), m->probes());
    EXPECT_EQ(back->probeBudget(), m->probeBudget());
    auto first = m->nextProbe({});
    ASSERT_TRUE(first && *first);
    WorkloadEvidence ev{{{"memory_gb", 12}, {"parallel_fraction", 0.7}},
                        {{t.environments[**first].id, true, 900}, {"2x1-4g", false, 0}}};
    auto a = m->rank(ev), b = back->rank(ev);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(a->environments.size(), b->environments.size());
    for (std::size_t i = 0; i < a->environments.size(); ++i) {
      EXPECT_EQ(a->environments[i].env, b->environments[i].env);
      EXPECT_DOUBLE_EQ(a->environments[i].runtime_s, b->environments[i].runtime_s);
      EXPECT_DOUBLE_EQ(a->environments[i].log_sd, b->environments[i].log_sd);
      EXPECT_DOUBLE_EQ(a->environments[i].p_complete, b->environments[i].p_complete);
    }
    EXPECT_EQ(a->drivers.size(), b->drivers.size());
    EXPECT_EQ(a->explanation, b->explanation);
  }
  EXPECT_FALSE(Matcher::load(R"({"format": "something else"})"));
  EXPECT_FALSE(Matcher::load("not json"));
}

TEST(BoostedTrees, SaveAndLoadPredictTheSame) {
  DenseMatrix x{20, 2, {}};
  std::vector<float> y;
  for (int i = 0; i < 20; ++i) {
    x.values.push_back(static_cast<float>(i));
    x.values.push_back(static_cast<float>(i % 3));
    y.push_back(static_cast<float>(2 * i + (i % 3)));
  }
  auto m = BoostedTrees::train(x, y, {{"max_depth", "3"}, {"nthread", "1"}}, 20);
  ASSERT_TRUE(m) << m.error().message;
  auto json = m->save();
  ASSERT_TRUE(json);
  auto back = BoostedTrees::load(*json);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*m->predict(x), *back->predict(x));
  EXPECT_FALSE(BoostedTrees::load("{not a model"));
}

}  // namespace
}  // namespace foresight::match
