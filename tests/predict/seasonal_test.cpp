#include "foresight/predict/seasonal.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>

namespace foresight::predict {
namespace {

TEST(SeasonalForecaster, FindsThePeriodAndRepeatsTheCycle) {
  SeasonalOptions o;
  o.max_period = 60;
  o.horizon = 5;
  SeasonalForecaster f(o);
  // A phased demand: 8 steps at 0.2, 7 at 1.5, 5 at 0.6 (period 20).
  auto demand = [](std::size_t t) {
    std::size_t p = t % 20;
    return p < 8 ? 0.2 : p < 15 ? 1.5 : 0.6;
  };
  std::size_t t = 0;
  for (; t < 200; ++t) f.observe(demand(t));
  ASSERT_TRUE(f.period());
  EXPECT_EQ(*f.period(), 20u);
  // Forecasts of the next steps follow the cycle, including the coming rise.
  const std::vector<double> levels = {0.5, 0.9};
  for (std::size_t h = 1; h <= 5; ++h) {
    std::vector<double> out(2);
    f.forecast(h, levels, out);
    EXPECT_NEAR(out[0], demand(t - 1 + h), 1e-9) << "h=" << h;
    EXPECT_GE(out[1], out[0]);
  }
}

TEST(SeasonalForecaster, NoPeriodInNoise) {
  SeasonalOptions o;
  o.max_period = 60;
  SeasonalForecaster f(o);
  std::mt19937 rng(3);
  std::normal_distribution<double> n(5, 1);
  for (int t = 0; t < 400; ++t) f.observe(n(rng));
  EXPECT_FALSE(f.period());
}

TEST(SeasonalForecaster, ErrorQuantilesCoverATrendAtTheNominalRate) {
  // A growing working set with noise: the median of recent values lags the trend; the conformal
  // errors must lift the band so that the 90% upper quantile covers about 90% of outcomes.
  SeasonalOptions o;
  o.max_period = 60;
  o.horizon = 3;
  o.errors = 200;
  SeasonalForecaster f(o);
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0, 2);
  const std::vector<double> levels = {0.9};
  std::size_t scored = 0, covered = 0;
  std::deque<double> pending;  // 3-step-ahead forecasts awaiting their outcome
  for (int t = 0; t < 3000; ++t) {
    const double u = 100 + 0.5 * t + noise(rng);
    if (pending.size() == 3) {
      if (t > 500) {
        ++scored;
        covered += u <= pending.front();
      }
      pending.pop_front();
    }
    f.observe(u);
    std::vector<double> out(1);
    f.forecast(3, levels, out);
    pending.push_back(out[0]);
  }
  const double rate = static_cast<double>(covered) / static_cast<double>(scored);
  EXPECT_NEAR(rate, 0.9, 0.03);
}

TEST(SeasonalForecaster, FollowGrowthMeetsARampBeforeItArrives) {
  SeasonalOptions o;
  o.max_period = 60;
  o.horizon = 2;
  o.follow_growth = true;
  SeasonalForecaster f(o);
  for (int t = 0; t < 10; ++t) f.observe(64.0);
  for (int t = 1; t <= 4; ++t) f.observe(64.0 + 10 * t);  // growing by 10 a step, now at 104
  const std::vector<double> levels = {0.5};
  std::vector<double> out(1);
  f.forecast(2, levels, out);
  EXPECT_GE(out[0], 124.0 - 1e-9);  // where the ramp will be in two steps
  SeasonalOptions plain = o;
  plain.follow_growth = false;
  SeasonalForecaster g(plain);
  for (int t = 0; t < 10; ++t) g.observe(64.0);
  for (int t = 1; t <= 4; ++t) g.observe(64.0 + 10 * t);
  g.forecast(2, levels, out);
  EXPECT_LT(out[0], 104.0);  // the median of recent values lags the ramp
}

TEST(SeasonalForecaster, NeverNegativeAndMissingValuesAreSkipped) {
  SeasonalForecaster f;
  for (int t = 0; t < 100; ++t) f.observe(t % 3 == 0 ? NAN : 0.0);
  std::vector<double> levels = {0.01, 0.5}, out(2);
  f.forecast(1, levels, out);
  EXPECT_GE(out[0], 0.0);
  EXPECT_FALSE(std::isnan(out[1]));
}

// The backtest policy keeps only its lead ready; its forecasts there must be those of a forecaster
// that keeps every horizon (the same errors, the same period resets), to the bit.
TEST(SeasonalForecaster, OnlyTheHorizonGivesTheSameForecastsThere) {
  for (bool growth : {false, true}) {
    SeasonalOptions all;
    all.max_period = 40;
    all.horizon = 7;
    all.errors = 30;
    all.follow_growth = growth;
    SeasonalOptions one = all;
    one.only_horizon = true;
    SeasonalForecaster f(all), g(one);
    std::mt19937 rng(11);
    std::normal_distribution<double> noise(0, 0.3);
    const std::vector<double> levels = {0.05, 0.5, 0.9, 0.99};
    std::vector<double> a(levels.size()), b(levels.size());
    for (int t = 0; t < 600; ++t) {
      // Period 12, then 25 (the errors restart), with gaps.
      const double u = t % 17 == 0 ? NAN : 3 + std::sin(t * 6.283185 / (t < 300 ? 12 : 25)) + noise(rng);
      f.observe(u);
      g.observe(u);
      f.forecast(7, levels, a);
      g.forecast(7, levels, b);
      for (std::size_t i = 0; i < levels.size(); ++i)
        ASSERT_EQ(std::bit_cast<std::uint64_t>(a[i]), std::bit_cast<std::uint64_t>(b[i]))
            << "t=" << t << " level " << levels[i] << " growth " << growth;
    }
    EXPECT_THROW(g.forecast(6, levels, b), std::out_of_range);
  }
}

}  // namespace
}  // namespace foresight::predict
