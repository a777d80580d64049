#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "factor_model.h"
#include "foresight/match/evaluate.h"
#include "synthetic.h"

namespace foresight::match {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A planted rank-1 history: log runtime = a_w + b_e + u_w · v_e + small noise.
struct Planted {
  Eigen::VectorXd a, b, u, v;
  Eigen::MatrixXd y;
};

Planted planted(int workloads, int envs, unsigned seed, double noise = 0.01) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n01(0, 1);
  Planted p;
  p.a.resize(workloads), p.u.resize(workloads), p.b.resize(envs), p.v.resize(envs);
  for (int e = 0; e < envs; ++e) p.b(e) = 0.5 * n01(rng), p.v(e) = n01(rng);
  for (int w = 0; w < workloads; ++w) p.a(w) = 6 + n01(rng), p.u(w) = 0.6 * n01(rng);
  p.y.resize(workloads, envs);
  for (int w = 0; w < workloads; ++w)
    for (int e = 0; e < envs; ++e) p.y(w, e) = p.a(w) + p.b(e) + p.u(w) * p.v(e) + noise * n01(rng);
  return p;
}

TEST(FactorModel, PlantedRankOneIsRecoveredFromThreeProbes) {
  const int envs = 15;
  auto p = planted(41, envs, 3);
  // The last workload is new: train on the others, then show it three designed probes.
  const Eigen::MatrixXd train = p.y.topRows(40);
  const Eigen::MatrixXd no_features(envs, 0), no_fp(40, 0);
  auto m = FactorModel::fit(train, no_features, no_fp, {1, 0.1});
  ASSERT_EQ(m.rank(), 1);
  const auto probes = m.design(3, false);
  ASSERT_EQ(probes.size(), 3u);
  std::vector<std::pair<std::size_t, double>> obs;
  for (auto e : probes) obs.push_back({e, p.y(40, static_cast<Eigen::Index>(e))});
  const auto belief = m.update(m.prior(Eigen::VectorXd(0)), obs);
  for (int e = 0; e < envs; ++e) {
    EXPECT_NEAR(m.mean(belief, e), p.y(40, e), 0.08) << "environment " << e;
    EXPECT_GT(m.variance(belief, e), 0);
  }
  // Without the probes the prediction is only the average workload's.
  const auto prior = m.prior(Eigen::VectorXd(0));
  double before = 0, after = 0;
  for (int e = 0; e < envs; ++e)
    before += std::pow(m.mean(prior, e) - p.y(40, e), 2),
        after += std::pow(m.mean(belief, e) - p.y(40, e), 2);
  EXPECT_LT(after, 0.05 * before);
}

TEST(FactorModel, SelectionFindsAFactorWhereThereIsOne) {
  auto p = planted(24, 12, 8, 0.05);
  std::vector<int> groups;
  for (int w = 0; w < 24; ++w) groups.push_back(w / 2);
  auto m = FactorModel::select(p.y, Eigen::MatrixXd(12, 0), Eigen::MatrixXd(24, 0), groups, 3,
                               FactorModel::defaultCandidates());
  EXPECT_GE(m.rank(), 1);
  EXPECT_GT(m.calibration(), 0);
}

// b_e and v_e are linear in one feature; the last environment has no run at all.
TEST(FactorModel, EnvironmentWithNoHistoryIsPredictedFromItsFeatures) {
  const int envs = 10, workloads = 30;
  std::mt19937 rng(4);
  std::normal_distribution<double> n01(0, 1);
  Eigen::MatrixXd x(envs, 1);
  for (int e = 0; e < envs; ++e) x(e, 0) = -1.5 + 3.0 * e / (envs - 1);
  x.col(0).array() -= x.col(0).mean();
  x.col(0) /= std::sqrt(x.col(0).squaredNorm() / envs);
  Eigen::MatrixXd y(workloads + 1, envs);
  for (int w = 0; w <= workloads; ++w) {
    const double a = 5 + n01(rng), u = 0.5 * n01(rng);
    for (int e = 0; e < envs; ++e) y(w, e) = a - 0.8 * x(e, 0) + u * x(e, 0) + 0.01 * n01(rng);
  }
  Eigen::MatrixXd train = y.topRows(workloads);
  train.col(envs - 1).setConstant(kNaN);
  auto m = FactorModel::fit(train, x, Eigen::MatrixXd(workloads, 0), {1, 0.3});
  std::vector<std::pair<std::size_t, double>> obs;
  for (auto e : m.design(2, false, {0, 1, 2, 3, 4, 5, 6, 7, 8}))
    obs.push_back({e, y(workloads, static_cast<Eigen::Index>(e))});
  const auto belief = m.update(m.prior(Eigen::VectorXd(0)), obs);
  EXPECT_NEAR(m.mean(belief, envs - 1), y(workloads, envs - 1), 0.15);
  // Its effects name the feature, and the parts add up to its difference from the average.
  const auto fx = m.effects(belief, envs - 1);
  ASSERT_EQ(fx.size(), 2u);
  EXPECT_GT(std::abs(fx[0]), std::abs(fx[1]));
}

// Only environment 4 tells workloads apart (v = 0 elsewhere): the factor design must try it first.
TEST(FactorModel, DesignProbesWhereWorkloadsDiffer) {
  const int envs = 5, workloads = 30;
  std::mt19937 rng(9);
  std::normal_distribution<double> n01(0, 1);
  Eigen::MatrixXd y(workloads, envs);
  for (int w = 0; w < workloads; ++w) {
    const double a = 5 + n01(rng), u = n01(rng);
    for (int e = 0; e < envs; ++e) y(w, e) = a + 0.1 * e + (e == 4 ? 2 * u : 0) + 0.01 * n01(rng);
  }
  auto m = FactorModel::fit(y, Eigen::MatrixXd(envs, 0), Eigen::MatrixXd(workloads, 0), {1, 0.1});
  EXPECT_EQ(m.design(1, true), std::vector<std::size_t>{4});
}

TEST(FactorModel, FingerprintGivesThePrior) {
  // u is the fingerprint: a new workload's factor is known before any probe.
  const int envs = 8, workloads = 30;
  std::mt19937 rng(2);
  std::normal_distribution<double> n01(0, 1);
  Eigen::VectorXd v(envs);
  for (int e = 0; e < envs; ++e) v(e) = n01(rng);
  Eigen::MatrixXd y(workloads + 1, envs), fp(workloads + 1, 1);
  for (int w = 0; w <= workloads; ++w) {
    const double u = n01(rng);
    fp(w, 0) = u;
    for (int e = 0; e < envs; ++e) y(w, e) = 5 + u * v(e) + 0.01 * n01(rng);
  }
  auto m = FactorModel::fit(y.topRows(workloads), Eigen::MatrixXd(envs, 0), fp.topRows(workloads),
                            {1, 0.1});
  const auto belief = m.prior(fp.row(workloads).transpose());
  for (int e = 0; e < envs; ++e) EXPECT_NEAR(m.mean(belief, e), y(workloads, e), 0.1);
  // A fingerprint far outside the history is held to its edge, not extrapolated.
  const auto far = m.prior(Eigen::VectorXd::Constant(1, 1000.0));
  for (int e = 0; e < envs; ++e)
    EXPECT_LE(m.mean(far, e), y.topRows(workloads).col(e).maxCoeff() + 0.1);
}

TEST(FactorModel, JsonRoundTripPredictsTheSame) {
  auto p = planted(12, 6, 1);
  Eigen::MatrixXd x(6, 1);
  x << -1, -0.5, 0, 0.2, 0.5, 1;
  auto m = FactorModel::fit(p.y, x, Eigen::MatrixXd(12, 0), {2, 1});
  auto back = FactorModel::fromJson(nlohmann::json::parse(m.toJson().dump()));
  ASSERT_TRUE(back);
  const auto b1 = m.update(m.prior(Eigen::VectorXd(0)), {{1, 6.0}});
  const auto b2 = back->update(back->prior(Eigen::VectorXd(0)), {{1, 6.0}});
  for (std::size_t e = 0; e < 6; ++e) {
    EXPECT_DOUBLE_EQ(m.mean(b1, e), back->mean(b2, e));
    EXPECT_DOUBLE_EQ(m.variance(b1, e), back->variance(b2, e));
  }
  EXPECT_FALSE(FactorModel::fromJson(nlohmann::json{{"rank", 1}}));
}

// The whole matcher on the Amdahl fixture: the factor model is the default.
TEST(FactorModel, MatcherBeatsBestOnAverageOnAmdahl) {
  auto t = testing::amdahlTable(24, 11);
  EvaluationOptions opt;
  opt.group_by = "app";
  opt.matcher.probes = 3;
  opt.matcher.ensemble = 3;  // the completion model's; small keeps the test quick
  opt.matcher.rounds = 60;
  ASSERT_EQ(opt.matcher.model, RuntimeModel::kFactor);
  auto r = evaluate(t, opt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_LT(r->summary.mean_regret, r->summary.baseline_mean);
}

}  // namespace
}  // namespace foresight::match
