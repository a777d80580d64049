// LstmStream: the per-workload streaming forecaster shared by the `lstm` policy and `foresight run`.
#include "foresight/predict/lstm/stream.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace foresight::predict::lstm {
namespace {

// An untrained (random) model: only the online tracker of (cpu, h, level) can bring the coverage
// of forecasts made h steps ahead to the level. Each horizon has its own tracker.
TEST(LstmStream, OnlineCalibrationPerHorizon) {
  const LstmModel m = LstmModel::initial(8, 4, kDefaultLevels, 5);
  LstmStream s(m, {}, 0.05);
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> ln(0.0, 0.5);
  const std::size_t n = 8000;
  std::vector<double> u(n);
  for (double& v : u) v = ln(rng);
  std::vector<double> q1(n + 4, NAN), q3(n + 4, NAN);
  for (std::size_t t = 0; t < n; ++t) {
    Observation o;
    o.step = t;
    o.time = 1372636800 + static_cast<std::int64_t>(t) * 300;
    o.usage = {u[t], NAN, NAN, NAN};
    s.observe(o);
    q1[t + 1] = s.quantile(Resource::kCpu, 1, 0.8);
    q3[t + 3] = s.quantile(Resource::kCpu, 3, 0.8);
  }
  double c1 = 0, c3 = 0, k = 0;
  for (std::size_t t = n / 2; t < n; ++t, ++k) {
    c1 += u[t] <= q1[t];
    c3 += u[t] <= q3[t];
  }
  EXPECT_NEAR(c1 / k, 0.8, 0.03);
  EXPECT_NEAR(c3 / k, 0.8, 0.03);
}

TEST(LstmStream, WithoutOnlineCalibrationTheRandomModelIsOff) {
  // The check above can fail: with eta = 0 the same random model is far from 0.8.
  const LstmModel m = LstmModel::initial(8, 4, kDefaultLevels, 5);
  LstmStream s(m, {}, 0.0);
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> ln(0.0, 0.5);
  double covered = 0, k = 0, q = NAN;
  for (std::size_t t = 0; t < 4000; ++t) {
    const double v = ln(rng);
    if (t >= 2000) {
      covered += v <= q;
      ++k;
    }
    Observation o;
    o.step = t;
    o.time = 1372636800 + static_cast<std::int64_t>(t) * 300;
    o.usage = {v, NAN, NAN, NAN};
    s.observe(o);
    q = s.quantile(Resource::kCpu, 1, 0.8);
  }
  EXPECT_GT(std::abs(covered / k - 0.8), 0.05);
}

}  // namespace
}  // namespace foresight::predict::lstm
