// Controllers on synthetic intervals, and a software model of CPU bandwidth control in which the
// three controllers meet the experiment's phased demand.
#include <gtest/gtest.h>

#include <cmath>

#include "foresight/loop/controller.h"
#include "foresight/loop/experiment.h"

namespace foresight::loop {
namespace {

Interval seen(double usage, double limit, bool pressure = false, double demand = NAN) {
  Interval i;
  i.usage = usage;
  i.demand = std::isnan(demand) ? usage : demand;
  i.limit = limit;
  i.pressure = pressure;
  return i;
}

TEST(StaticController, UnlimitedDuringWarmUpThenPeakPlusMargin) {
  auto c = makeStaticController({/*warmup_intervals=*/3, /*margin=*/0.15});
  EXPECT_TRUE(std::isinf(c->decide(seen(1.0, kUnlimited))));
  EXPECT_TRUE(std::isinf(c->decide(seen(2.0, kUnlimited))));
  EXPECT_DOUBLE_EQ(c->decide(seen(0.5, kUnlimited)), 2.0 * 1.15);
  EXPECT_DOUBLE_EQ(c->decide(seen(9.0, 2.3, true)), 2.0 * 1.15);  // fixed from then on
}

TEST(ReactiveController, RaisesOnPressureAndLowersAfterQuiet) {
  ReactiveOptions o;
  o.quiet_intervals = 2;
  auto c = makeReactiveController(o);
  EXPECT_DOUBLE_EQ(c->decide(seen(1.0, kUnlimited)), 1.25);         // first: usage x 1.25
  EXPECT_DOUBLE_EQ(c->decide(seen(1.25, 1.25, true)), 1.25 * 1.5);  // throttled: x 1.5
  EXPECT_DOUBLE_EQ(c->decide(seen(0.5, 1.875)), 1.875);             // one quiet interval: hold
  EXPECT_DOUBLE_EQ(c->decide(seen(0.4, 1.875)), 0.5 * 1.25);        // two: recent peak x 1.25
}

TEST(ForesightController, ScalesDownSlowlyAndNeverBelowUsagePlusMargin) {
  ForesightOptions o;
  predict::SeasonalOptions so;
  so.max_period = 16;
  o.forecaster = seasonalForecasters(so);
  o.resource = Resource::kMemory;
  o.policy.max_step_down = 0.3;
  o.policy.cooldown_down_seconds = 0;
  o.policy.usage_margin = 0.1;
  o.policy.usage_margin_abs = 0;
  auto c = makeForesightController(o);
  double limit = kUnlimited;
  for (int i = 0; i < 30; ++i) limit = c->decide(seen(10.0, limit));
  EXPECT_GE(limit, 11.0);  // usage x 1.1 at least
  // Demand falls to 1: the limit follows, by at most max_step_down an interval.
  for (int i = 0; i < 30; ++i) {
    const double before = limit;
    limit = c->decide(seen(1.0, limit));
    EXPECT_GE(limit, before * (1 - o.policy.max_step_down) - 1e-9);
    EXPECT_GE(limit, 1.1 - 1e-9);
  }
  EXPECT_LT(limit, 2.0);
}

// Software CFS bandwidth: usage = min(demand, limit), throttled when demand exceeds the limit.
struct Simulated {
  double throttled = 0, quota = 0;
};
Simulated simulate(Controller& c, int cycles, int period) {
  Simulated s;
  double limit = kUnlimited;
  for (int t = 0; t < cycles * period; ++t) {
    const double demand = phasedCpuDemand(static_cast<double>(t % period) / period);
    const double usage = std::min(demand, limit);
    const double throttled = demand - usage;
    if (t >= 3 * period) {  // the experiment's three warm-up cycles are not scored
      s.throttled += throttled;
      s.quota += std::isinf(limit) ? 2.0 : limit;
    }
    limit = c.decide(seen(usage, limit, throttled > 0, usage + throttled));
  }
  s.quota /= (cycles - 3) * period;
  return s;
}

class ClosedLoopModel : public ::testing::TestWithParam<std::string> {};

// The experiment's foresight controller with its default forecaster (the better of the shipped
// LSTM and seasonal per workload) and with seasonal alone.
TEST_P(ClosedLoopModel, ForesightThrottlesFarLessThanReactiveAtNoMoreQuota) {
  const int period = 30, cycles = 8;
  ReactiveOptions ro;
  auto reactive = makeReactiveController(ro);
  ExperimentOptions eo;
  eo.cycle_seconds = period;
  eo.forecaster = GetParam();
  eo.models = {FORESIGHT_SOURCE_DIR "/models/lstm-bitbrains.fsm", FORESIGHT_SOURCE_DIR "/models/lstm-bitbrains-2.fsm"};
  auto options = foresightOptionsFor(/*memory=*/false, eo);
  ASSERT_TRUE(options) << options.error().message;
  auto foresight = makeForesightController(*options);
  const Simulated r = simulate(*reactive, cycles, period);
  const Simulated f = simulate(*foresight, cycles, period);
  // In the test report (--gtest_output=json:FILE), for the docs' figures.
  RecordProperty("reactive_throttled_s", std::to_string(r.throttled));
  RecordProperty("foresight_throttled_s", std::to_string(f.throttled));
  RecordProperty("reactive_mean_quota", std::to_string(r.quota));
  RecordProperty("foresight_mean_quota", std::to_string(f.quota));
  EXPECT_GT(r.throttled, 0.0);
  EXPECT_LE(f.throttled, r.throttled / 5)
      << "reactive " << r.throttled << " foresight " << f.throttled;
  EXPECT_LE(f.quota, r.quota) << "reactive " << r.quota << " foresight " << f.quota;
}

INSTANTIATE_TEST_SUITE_P(Forecasters, ClosedLoopModel, ::testing::Values("auto", "seasonal"));

TEST(ClosedLoopOptions, UnknownForecasterOrMissingModelIsAnError) {
  ExperimentOptions eo;
  eo.forecaster = "arima";
  EXPECT_FALSE(foresightOptionsFor(false, eo));
  eo.forecaster = "lstm";
  eo.models = {"/nonexistent/model.fsm"};
  auto r = foresightOptionsFor(false, eo);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent/model.fsm"), std::string::npos);
}

// The JSON lists the controllers in the order they were asked for and run (a sorted map listed
// them alphabetically).
TEST(ClosedLoopOptions, TheResultListsControllersInTheOrderAsked) {
  ExperimentOptions eo;
  eo.controllers = {"static", "reactive", "foresight"};
  ExperimentResult r;
  for (const auto& c : eo.controllers) r.controllers[c].mean_quota_cores = 1;
  const auto j = r.toJson(eo);
  std::vector<std::string> order;
  for (const auto& [name, _] : j["controllers"].items()) order.push_back(name);
  EXPECT_EQ(order, eo.controllers);
}

// A controller whose workload wrote no latency shows null in the cpu part, not a missing key
// that reads as "not measured by this protocol".
TEST(ClosedLoopOptions, AMissingLatencyIsNullInTheJson) {
  ExperimentOptions eo;
  eo.controllers = {"static", "foresight"};
  eo.cpu = true;
  eo.memory = false;
  ExperimentResult r;
  r.controllers["static"].p99_latency_ms = 12.5;
  r.controllers["foresight"];
  const auto j = r.toJson(eo);
  EXPECT_DOUBLE_EQ(j["controllers"]["static"]["p99_latency_ms"].get<double>(), 12.5);
  ASSERT_TRUE(j["controllers"]["foresight"].contains("p99_latency_ms"));
  EXPECT_TRUE(j["controllers"]["foresight"]["p99_latency_ms"].is_null());
}

}  // namespace
}  // namespace foresight::loop
