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

// A restarted scale (a level shift) clears the online corrections of that resource: right after
// the restart, the calibrated stream forecasts what one without online calibration does, while
// before it the corrections learnt on the idle days and the climb had moved it away; memory, which
// did not shift, keeps its corrections.
TEST(LstmStream, ALevelShiftClearsTheOnlineCorrectionsOfItsResource) {
  LstmModel m = LstmModel::initial(8, 4, kDefaultLevels, 5);
  m.scale_restart = 12;
  LstmStream calibrated(m, {}, 0.05), plain(m, {}, 0.0);
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> ln(0.0, 0.5);
  Observation o;
  auto step = [&](std::size_t t, double cpu) {
    o.step = t;
    o.time = 1372636800 + static_cast<std::int64_t>(t) * 300;
    o.usage = {cpu, 1e9 * ln(rng), NAN, NAN};
    calibrated.observe(o);
    plain.observe(o);
  };
  auto quantiles = [&](Resource r, LstmStream& s) {
    std::vector<double> q;
    for (std::size_t h = 1; h <= 4; ++h)
      for (double level : {0.5, 0.9, 0.99}) q.push_back(s.quantile(r, h, level));
    return q;
  };
  std::size_t t = 0;
  for (; t < 600; ++t) {  // two days idle at about 0.01 cores
    step(t, 0.01 * ln(rng));
    quantiles(Resource::kCpu, calibrated), quantiles(Resource::kMemory, calibrated);
  }
  for (std::size_t k = 0; k < 11; ++k, ++t) {  // then busy: 11 steps above the clip
    step(t, 2.0 * ln(rng));
    quantiles(Resource::kCpu, calibrated);
  }
  EXPECT_NE(quantiles(Resource::kCpu, calibrated), quantiles(Resource::kCpu, plain));
  step(t, 2.0);  // the 12th: the scale restarts
  ASSERT_DOUBLE_EQ(calibrated.scale(Resource::kCpu), plain.scale(Resource::kCpu));
  const auto a = quantiles(Resource::kCpu, calibrated), b = quantiles(Resource::kCpu, plain);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_DOUBLE_EQ(a[i], b[i]) << i;
  EXPECT_NE(quantiles(Resource::kMemory, calibrated), quantiles(Resource::kMemory, plain));
}

}  // namespace
}  // namespace foresight::predict::lstm
