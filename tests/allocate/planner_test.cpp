// Planner rules, with expected values worked out by hand from the forecasts below.
#include "foresight/allocate/planner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace foresight::allocate {
namespace {

constexpr double kMiB = 1024.0 * 1024;

// cpu quantiles at levels 0.5, 0.9, 0.99 over three steps; the p90 maximum is 2.0 (step 2).
predict::Forecast cpuForecast() {
  predict::Forecast f;
  f.workload = "web";
  f.time = 1000;
  f.step_seconds = 60;
  f.levels = {0.5, 0.9, 0.99};
  f.values[index(Resource::kCpu)] = {{1.0, 1.5, 2.5}, {1.2, 2.0, 3.0}, {0.8, 1.0, 1.2}};
  return f;
}

PlannerConfig cpuAtP90() {
  PlannerConfig c;
  c[Resource::kCpu].quantile = 0.9;
  return c;
}

const Decision& decisionFor(const Plan& p, Resource r) {
  for (const auto& d : p.decisions)
    if (d.resource == r) return d;
  throw std::runtime_error("no decision");
}

TEST(OomKillFromDemand, OnlyDemandAboveOrWithoutUsageIsAKill) {
  EXPECT_FALSE(oomKillFromDemand(10, 1e9, 1e9));   // demand = usage: no kill
  EXPECT_FALSE(oomKillFromDemand(10, 1e9, NAN));   // no demand known
  EXPECT_FALSE(oomKillFromDemand(10, NAN, NAN));
  auto kill = oomKillFromDemand(10, 1e9, 1.5e9);
  ASSERT_TRUE(kill);
  EXPECT_EQ(kill->time, 10);
  EXPECT_DOUBLE_EQ(kill->demand, 1.5e9);
  EXPECT_TRUE(oomKillFromDemand(11, NAN, 2e9));   // usage not read this round: the kill stands
}

TEST(Planner, InitialTargetIsTheHorizonMaxOfTheQuantile) {
  const auto f = cpuForecast();
  PlanInput in;
  in.forecast = &f;
  const auto plan = Planner(cpuAtP90()).plan(in);
  const auto& d = decisionFor(plan, Resource::kCpu);
  EXPECT_EQ(d.rule, "initial");
  EXPECT_DOUBLE_EQ(d.forecast, 2.0);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 2.0);
  EXPECT_NE(d.reason.find("p90"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("initial"), std::string::npos) << d.reason;
}

// The workload's ceiling (its cpuset) lowers max; a ceiling above max changes nothing.
TEST(Planner, CeilingBelowMaxBoundsTheTarget) {
  const auto f = cpuForecast();
  PlannerConfig c = cpuAtP90();
  c[Resource::kCpu].max = 4;
  PlanInput in;
  in.forecast = &f;
  in.ceiling[Resource::kCpu] = 1.5;
  auto plan = Planner(c).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 1.5);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "max-bound");
  in.ceiling[Resource::kCpu] = 8;
  plan = Planner(c).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 2.0);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "initial");
}

// The workload's floor (a guest's vCPUs present at boot) raises min; a current value at it is
// kept, and a floor above the ceiling yields to it.
TEST(Planner, FloorAboveMinBoundsTheTarget) {
  const auto f = cpuForecast();  // p90 max 2.0
  PlanInput in;
  in.forecast = &f;
  in.floor[Resource::kCpu] = 3;
  auto plan = Planner(cpuAtP90()).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 3.0);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "min-bound");
  in.current[Resource::kCpu] = 3;
  in.units[Resource::kCpu] = 1;
  plan = Planner(cpuAtP90()).plan(in);
  EXPECT_FALSE(decisionFor(plan, Resource::kCpu).change) << decisionFor(plan, Resource::kCpu).reason;
  in.current[Resource::kCpu] = 4;  // one more than the floor: down to it, not to the forecast's 2
  plan = Planner(cpuAtP90()).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 3.0);
  in = {};
  in.forecast = &f;
  in.floor[Resource::kCpu] = 3;
  in.ceiling[Resource::kCpu] = 2.5;
  plan = Planner(cpuAtP90()).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 2.5);
}

TEST(Planner, ReportsForecastBoundsForEveryForecastResource) {
  const auto f = cpuForecast();
  PlanInput in;
  in.forecast = &f;
  in.current[Resource::kCpu] = 2.0;  // no change, bounds still reported
  const auto plan = Planner(cpuAtP90()).plan(in);
  EXPECT_FALSE(plan.hasChanges());
  EXPECT_DOUBLE_EQ(*plan.lower[Resource::kCpu], 1.2);  // p50 max over steps: 1.0, 1.2, 0.8
  EXPECT_DOUBLE_EQ(*plan.upper[Resource::kCpu], 3.0);  // p99: 2.5, 3.0, 1.2
  EXPECT_FALSE(plan.lower[Resource::kMemory]);
}

TEST(Planner, QuantileBetweenLevelsIsInterpolatedAndHorizonCanBeCut) {
  const auto f = cpuForecast();
  PlannerConfig c;
  c[Resource::kCpu].quantile = 0.945;  // halfway between 0.9 and 0.99
  c.horizon_steps = 1;                 // step 1 only: 1.5 .. 2.5 -> 2.0
  PlanInput in;
  in.forecast = &f;
  const auto plan = Planner(c).plan(in);
  EXPECT_NEAR(decisionFor(plan, Resource::kCpu).forecast, 2.0, 1e-12);
  c.horizon_steps = 0;  // all steps: step 2 gives 2.0 .. 3.0 -> 2.5
  EXPECT_NEAR(decisionFor(Planner(c).plan(in), Resource::kCpu).forecast, 2.5, 1e-12);
}

TEST(Planner, HysteresisKeepsSmallChanges) {
  const auto f = cpuForecast();
  PlanInput in;
  in.forecast = &f;
  in.current[Resource::kCpu] = 1.9;  // |2.0 - 1.9| = 0.1 <= 0.10 * 1.9
  const auto plan = Planner(cpuAtP90()).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "hysteresis");
  EXPECT_FALSE(plan.hasChanges());
  in.current[Resource::kCpu] = 1.8;  // 0.2 > 0.18: changes
  EXPECT_TRUE(Planner(cpuAtP90()).plan(in).hasChanges());
}

TEST(Planner, ScalesUpFastButAtMostOneStep) {
  const auto f = cpuForecast();
  PlanInput in;
  in.forecast = &f;
  in.current[Resource::kCpu] = 0.5;  // desired 2.0, max_step_up 100% -> 1.0
  const auto plan = Planner(cpuAtP90()).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "max-step-up");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 1.0);
}

TEST(Planner, ScalesDownSlowly) {
  const auto f = cpuForecast();
  PlanInput in;
  in.forecast = &f;
  in.current[Resource::kCpu] = 4.0;  // desired 2.0, max_step_down 10% -> 3.6
  const auto plan = Planner(cpuAtP90()).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "max-step-down");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 3.6);
}

// Whole vCPUs (a libvirt guest): the p90 maximum is 2.0. From 4, the 10% step (3.6) rounds back
// to 4 and would be planned forever: one vCPU down instead. From 3, one vCPU down reaches it; up
// from 1 the step (2.0) is whole already; with a desire of 2.2 (headroom 10%), 3 vCPUs.
TEST(Planner, InWholeUnitsAStepDownIsAtLeastOneUnitAndTargetsRoundUp) {
  const auto f = cpuForecast();
  PlanInput in;
  in.forecast = &f;
  in.units[Resource::kCpu] = 1;
  in.current[Resource::kCpu] = 4.0;
  auto plan = Planner(cpuAtP90()).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "max-step-down");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 3.0);
  in.current[Resource::kCpu] = 3.0;
  plan = Planner(cpuAtP90()).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 2.0);
  in.current[Resource::kCpu] = 2.0;  // what it needs
  plan = Planner(cpuAtP90()).plan(in);
  EXPECT_FALSE(plan.target[Resource::kCpu]);
  PlannerConfig headroom = cpuAtP90();
  headroom[Resource::kCpu].headroom = 0.1;
  headroom[Resource::kCpu].hysteresis = 0;
  plan = Planner(headroom).plan(in);  // desired 2.2: a third vCPU
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 3.0);
  in.current[Resource::kCpu] = 3.0;  // and no step down from there, though 10% down is 2.7
  plan = Planner(headroom).plan(in);
  EXPECT_FALSE(plan.target[Resource::kCpu]) << decisionFor(plan, Resource::kCpu).reason;
  in.current.values = {};  // a first target, whole too
  plan = Planner(headroom).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 3.0);
}

TEST(Planner, CooldownBlocksScaleDownButNotScaleUp) {
  const auto f = cpuForecast();
  PlanInput in;
  in.forecast = &f;
  in.now = 10'000;
  in.last_change[index(Resource::kCpu)] = 10'000 - 100;  // down cooldown is 300 s
  in.current[Resource::kCpu] = 4.0;
  EXPECT_EQ(decisionFor(Planner(cpuAtP90()).plan(in), Resource::kCpu).rule, "cooldown");
  in.current[Resource::kCpu] = 1.5;  // up: cooldown_up is 0
  const auto plan = Planner(cpuAtP90()).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "forecast");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 2.0);
  in.last_change[index(Resource::kCpu)] = 10'000 - 300;  // expired
  in.current[Resource::kCpu] = 4.0;
  EXPECT_EQ(decisionFor(Planner(cpuAtP90()).plan(in), Resource::kCpu).rule, "max-step-down");
}

TEST(Planner, BoundsAndHeadroom) {
  const auto f = cpuForecast();
  auto c = cpuAtP90();
  c[Resource::kCpu].headroom = 0.25;  // 2.0 * 1.25 = 2.5
  PlanInput in;
  in.forecast = &f;
  EXPECT_DOUBLE_EQ(*Planner(c).plan(in).target[Resource::kCpu], 2.5);
  c[Resource::kCpu].max = 2.2;
  auto plan = Planner(c).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "max-bound");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 2.2);
  c[Resource::kCpu].max = 100;
  c[Resource::kCpu].min = 3;
  plan = Planner(c).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "min-bound");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 3.0);
}

// An operator lowers max below the current value: the dead band and the cool-down no longer keep
// the current value; before, a value within 10% above the new max stayed there for as long as the
// forecast did, so max bounded the desired value but not what was enforced.
TEST(Planner, ABoundMovedPastTheCurrentValueIsNotHeldOffByHysteresisOrCooldown) {
  const auto f = cpuForecast();
  auto c = cpuAtP90();
  c[Resource::kCpu].max = 1.9;  // desired 2.0 -> max-bound 1.9
  PlanInput in;
  in.forecast = &f;
  in.now = 10'000;
  in.current[Resource::kCpu] = 2.0;  // within the 10% band of 1.9
  auto plan = Planner(c).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "max-bound");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 1.9);
  in.last_change[index(Resource::kCpu)] = 10'000 - 100;  // in the down cool-down
  plan = Planner(c).plan(in);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 1.9);
  c[Resource::kCpu].max = 100;
  c[Resource::kCpu].min = 2.1;  // min raised past the current value
  plan = Planner(c).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "min-bound");
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 2.1);
}

predict::Forecast memoryForecast(double mib) {
  predict::Forecast f;
  f.workload = "db";
  f.levels = {0.5, 0.95};
  f.values[index(Resource::kMemory)] = {{mib * kMiB * 0.8, mib * kMiB}};
  return f;
}

TEST(Planner, MemoryNeverBelowUsagePlusMargin) {
  const auto f = memoryForecast(100);  // p95 = 100 MiB
  PlanInput in;
  in.forecast = &f;
  in.usage[Resource::kMemory] = 200 * kMiB;  // floor = 200 * 1.1 + 64 = 284 MiB
  in.current[Resource::kMemory] = 1024 * kMiB;
  auto plan = Planner(PlannerConfig{}).plan(in);
  // Desired is the floor (284 MiB), but one step down is at most 10%: 921.6 MiB.
  auto d = decisionFor(plan, Resource::kMemory);
  EXPECT_NEAR(d.desired, 284 * kMiB, 1.0);
  EXPECT_EQ(d.rule, "max-step-down");
  EXPECT_NEAR(*plan.target[Resource::kMemory], 921.6 * kMiB, 1.0);
  EXPECT_EQ(d.reason,
            "memory: forecast p95 max over 1 step = 100.00MiB, current 1.00GiB, desired "
            "284.00MiB, rule max-step-down -> 921.60MiB (usage 200.00MiB, floor 284.00MiB)");

  // Below the floor now: raise past the step limit and a fresh cooldown, to the floor plus the
  // hysteresis band (10%): 284 x 1.1 = 312.4 MiB.
  PlannerConfig c;
  c[Resource::kMemory].max_step_up = 0.1;
  c[Resource::kMemory].cooldown_up_seconds = 600;
  in.now = 1000;
  in.last_change[index(Resource::kMemory)] = 990;
  in.current[Resource::kMemory] = 150 * kMiB;
  plan = Planner(c).plan(in);
  d = decisionFor(plan, Resource::kMemory);
  EXPECT_EQ(d.rule, "usage-floor");
  EXPECT_NEAR(*plan.target[Resource::kMemory], 312.4 * kMiB, 1.0);
  EXPECT_NE(d.reason.find("floor"), std::string::npos) << d.reason;

  // Usage grows a little (floor 289.5 MiB): the limit set above still clears it, no new write.
  in.current[Resource::kMemory] = 312.4 * kMiB;
  in.usage[Resource::kMemory] = 205 * kMiB;
  plan = Planner(c).plan(in);
  EXPECT_FALSE(decisionFor(plan, Resource::kMemory).change);

  // The floor also beats the workload's max bound.
  in.current[Resource::kMemory] = 150 * kMiB;
  in.usage[Resource::kMemory] = 200 * kMiB;
  c[Resource::kMemory].max = 256 * kMiB;
  plan = Planner(c).plan(in);
  EXPECT_NEAR(*plan.target[Resource::kMemory], 312.4 * kMiB, 1.0);

  // But not the ceiling, past which the backend can set nothing (a guest's maximum memory): the
  // target stops there, and a current value at it is kept, not written again each round.
  in.ceiling[Resource::kMemory] = 300 * kMiB;
  plan = Planner(c).plan(in);
  d = decisionFor(plan, Resource::kMemory);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kMemory], 300 * kMiB);
  EXPECT_EQ(d.rule, "max-bound");
  EXPECT_NEAR(d.desired, 284 * kMiB, 1.0) << "what it wants stays said";
  in.current[Resource::kMemory] = 300 * kMiB;
  in.usage[Resource::kMemory] = 290 * kMiB;  // floor 383 MiB
  plan = Planner(c).plan(in);
  EXPECT_FALSE(decisionFor(plan, Resource::kMemory).change) << decisionFor(plan, Resource::kMemory).reason;
}

// A first limit set by the usage floor (no limit before, forecast below the floor) clears the
// floor by the hysteresis band, so that usage a little higher at the next sample is no new write.
TEST(Planner, AFirstLimitAtTheUsageFloorClearsItByTheBand) {
  const auto f = memoryForecast(50);
  PlanInput in;
  in.forecast = &f;
  in.usage[Resource::kMemory] = 60 * kMiB;  // floor = 60 * 1.1 + 64 = 130 MiB
  auto plan = Planner(PlannerConfig{}).plan(in);
  auto d = decisionFor(plan, Resource::kMemory);
  EXPECT_EQ(d.rule, "usage-floor");
  EXPECT_NEAR(d.desired, 130 * kMiB, 1.0);
  EXPECT_NEAR(*plan.target[Resource::kMemory], 143 * kMiB, 1.0);
  in.current[Resource::kMemory] = *plan.target[Resource::kMemory];
  in.usage[Resource::kMemory] = 60.5 * kMiB;
  in.now = 10;
  in.last_change[index(Resource::kMemory)] = 0;
  plan = Planner(PlannerConfig{}).plan(in);
  EXPECT_FALSE(decisionFor(plan, Resource::kMemory).change) << decisionFor(plan, Resource::kMemory).reason;
  // A first limit the forecast sets is the forecast, no band.
  const auto high = memoryForecast(400);
  in = {};
  in.forecast = &high;
  in.usage[Resource::kMemory] = 60 * kMiB;
  plan = Planner(PlannerConfig{}).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kMemory).rule, "initial");
  EXPECT_NEAR(*plan.target[Resource::kMemory], decisionFor(plan, Resource::kMemory).desired, 1.0);
}

// Usage above the workload's max (1 GiB) wobbling by 1 %: the floor beats max, and the limit it
// set is then held by the dead band like any other, not rewritten every round (before: a write
// each round, alternating between the floor and the floor plus the band).
TEST(Planner, AFloorAboveMaxSettlesInsteadOfFollowingEveryWobble) {
  const auto f = memoryForecast(100);
  PlannerConfig c;
  c[Resource::kMemory].max = 1024 * kMiB;
  c[Resource::kMemory].cooldown_down_seconds = 0;
  PlanInput in;
  in.forecast = &f;
  in.current[Resource::kMemory] = 1024 * kMiB;
  int changes = 0;
  for (int i = 0; i < 120; ++i) {
    in.now = 1000 + i;
    in.usage[Resource::kMemory] = 1.2 * 1024 * kMiB * (i % 2 ? 1.01 : 0.99);
    const auto plan = Planner(c).plan(in);
    const auto& d = decisionFor(plan, Resource::kMemory);
    if (d.change) {
      ++changes;
      in.current[Resource::kMemory] = *d.target;
    }
    EXPECT_GE(*in.current[Resource::kMemory], *in.usage[Resource::kMemory]) << i;
  }
  EXPECT_LE(changes, 1);
}

// A target the backends would round to the current value (memory to a page) is no change.
TEST(Planner, ATargetWithinTheBackendsResolutionIsNoChange) {
  const auto f = memoryForecast(100);
  PlannerConfig c;
  c[Resource::kMemory].hysteresis = 0;
  c[Resource::kMemory].usage_margin = 0;
  c[Resource::kMemory].usage_margin_abs = 0;
  PlanInput in;
  in.forecast = &f;
  in.current[Resource::kMemory] = 100 * kMiB + 4096;  // page-rounded, as read back
  in.usage[Resource::kMemory] = 100 * kMiB + 1000;    // floor: 1000 bytes into the page
  auto plan = Planner(c).plan(in);
  EXPECT_FALSE(decisionFor(plan, Resource::kMemory).change) << decisionFor(plan, Resource::kMemory).reason;
  in.current[Resource::kMemory] = 100 * kMiB + 16384;
  plan = Planner(c).plan(in);
  EXPECT_TRUE(decisionFor(plan, Resource::kMemory).change);
}

// After an OOM kill at a 512 MiB limit (implied demand 614.4 MiB): the forecast (100 MiB) and a
// fresh cooldown would keep or shrink the limit; the oom-floor raises it, capped at max, and lets
// go after oom_hold_seconds.
TEST(Planner, OomKillDemandIsAFloorForTheHoldTime) {
  const auto f = memoryForecast(100);
  PlannerConfig c;
  c[Resource::kMemory].cooldown_up_seconds = 600;
  c[Resource::kMemory].oom_hold_seconds = 3600;
  PlanInput in;
  in.forecast = &f;
  in.usage[Resource::kMemory] = 50 * kMiB;  // the restarted workload, small again
  in.current[Resource::kMemory] = 512 * kMiB;
  in.now = 10000;
  in.last_change[index(Resource::kMemory)] = 9990;
  in.oom = OomKill{9995, 614.4 * kMiB};
  auto plan = Planner(c).plan(in);
  auto d = decisionFor(plan, Resource::kMemory);
  EXPECT_EQ(d.rule, "oom-floor");
  ASSERT_TRUE(plan.target[Resource::kMemory]);
  EXPECT_NEAR(*plan.target[Resource::kMemory], 614.4 * kMiB, 1.0);
  EXPECT_NE(d.reason.find("OOM kill 5 s ago: demand 614.40MiB"), std::string::npos) << d.reason;

  // Held at that level: no shrink back while the hold lasts.
  in.current[Resource::kMemory] = 614.4 * kMiB;
  in.now = 9995 + 3599;
  in.last_change[index(Resource::kMemory)] = 10000;
  plan = Planner(c).plan(in);
  EXPECT_FALSE(decisionFor(plan, Resource::kMemory).change);
  EXPECT_NE(decisionFor(plan, Resource::kMemory).reason.find("OOM kill 3599 s ago"), std::string::npos);

  // The hold over: the forecast decides again (one step down).
  in.now = 9995 + 3600;
  plan = Planner(c).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kMemory).rule, "max-step-down");

  // The operator's max caps the floor.
  c[Resource::kMemory].max = 560 * kMiB;
  in.now = 10000;
  in.current[Resource::kMemory] = 512 * kMiB;
  plan = Planner(c).plan(in);
  EXPECT_EQ(decisionFor(plan, Resource::kMemory).rule, "oom-floor");
  EXPECT_NEAR(*plan.target[Resource::kMemory], 560 * kMiB, 1.0);
}

// Stalls on memory at the current limit: above the threshold (default 10 ms in 6 s, 1/600) the
// limit rises by Senpai's back-off ((share x 600 / 20)^2, at most 1), beating the cool-down; a
// back-off within the hysteresis band only holds the limit. The forecast (8 MiB) and the usage
// (1 MiB, no margin) alone would step it down.
TEST(Planner, AWorkloadStallingAtItsMemoryLimitIsNotShrunkAndIsRaisedByTheBackOff) {
  const auto f = memoryForecast(8);
  PlannerConfig c;
  c[Resource::kMemory].usage_margin = 0;
  c[Resource::kMemory].usage_margin_abs = 0;
  c[Resource::kMemory].cooldown_up_seconds = 600;
  PlanInput in;
  in.forecast = &f;
  in.usage[Resource::kMemory] = 1 * kMiB;
  in.current[Resource::kMemory] = 64 * kMiB;
  in.now = 10000;
  // Measured over the last 10 s, from 9990.
  const auto planWith = [&](double share, double limit) {
    in.stall = MemoryStall{share, limit, 9990};
    return decisionFor(Planner(c).plan(in), Resource::kMemory);
  };
  const auto without = decisionFor(Planner(c).plan(in), Resource::kMemory);
  EXPECT_EQ(without.rule, "max-step-down");
  EXPECT_NEAR(*without.target, 57.6 * kMiB, 1.0);

  // 10 %: (0.1 x 600 / 20)^2 = 9, capped at 1: doubled, though the last change was 10 s ago.
  in.last_change[index(Resource::kMemory)] = 9990;
  auto d = planWith(0.10, 64 * kMiB);
  EXPECT_EQ(d.rule, "pressure");
  EXPECT_TRUE(d.change);
  EXPECT_NEAR(*d.target, 128 * kMiB, 1.0);
  EXPECT_NE(d.reason.find("stalled on memory 10.00% of the time at this limit, above 0.17%: raise it by 100%"),
            std::string::npos) << d.reason;
  in.last_change[index(Resource::kMemory)].reset();

  // 2 %: (0.02 x 600 / 20)^2 = 0.36.
  d = planWith(0.02, 64 * kMiB);
  EXPECT_EQ(d.rule, "pressure");
  EXPECT_NEAR(*d.target, 64 * 1.36 * kMiB, 1.0);

  // 0.5 %: (0.005 x 600 / 20)^2 = 0.0225, within the 10 % band: held, not stepped down.
  d = planWith(0.005, 64 * kMiB);
  EXPECT_EQ(d.rule, "pressure");
  EXPECT_FALSE(d.change);
  EXPECT_NE(d.reason.find("hold it"), std::string::npos) << d.reason;

  // Below the threshold, measured under another limit, or over an interval in which the limit
  // changed (partly under the last one): the forecast decides.
  in.last_change[index(Resource::kMemory)] = 9995;
  EXPECT_EQ(planWith(0.10, 64 * kMiB).rule, "cooldown");
  in.last_change[index(Resource::kMemory)].reset();
  EXPECT_EQ(planWith(0.001, 64 * kMiB).rule, "max-step-down");
  EXPECT_EQ(planWith(0.10, 32 * kMiB).rule, "max-step-down");

  // The operator's max caps the raise; a threshold of 1 turns the rule off.
  c[Resource::kMemory].max = 100 * kMiB;
  d = planWith(0.10, 64 * kMiB);
  EXPECT_EQ(d.rule, "pressure");
  EXPECT_NEAR(*d.target, 100 * kMiB, 1.0);
  c[Resource::kMemory].pressure_threshold = 1;
  EXPECT_EQ(planWith(0.10, 64 * kMiB).rule, "max-step-down");
}

TEST(Planner, NoForecastKeepsTheCurrentAllocation) {
  predict::Forecast f;
  f.workload = "idle";
  f.levels = {0.5};
  PlanInput in;
  in.forecast = &f;
  in.current[Resource::kCpu] = 1.0;
  const auto plan = Planner(PlannerConfig{}).plan(in);
  EXPECT_FALSE(plan.hasChanges());
  EXPECT_EQ(decisionFor(plan, Resource::kCpu).rule, "no-forecast");
  EXPECT_EQ(plan.reason(), "no change");
}

}  // namespace
}  // namespace foresight::allocate

namespace foresight::allocate {
namespace {

// An idle workload's forecast of zero cpu still gets the built-in floor (VPA's 25 millicores).
TEST(Planner, IdleCpuKeepsTheDefaultFloor) {
  predict::Forecast f;
  f.levels = {0.5, 0.95};
  f.values[index(Resource::kCpu)] = {{0.0, 0.0}};
  PlanInput in;
  in.forecast = &f;
  const auto plan = Planner(PlannerConfig{}).plan(in);
  ASSERT_TRUE(plan.target[Resource::kCpu]);
  EXPECT_DOUBLE_EQ(*plan.target[Resource::kCpu], 0.025);
}

TEST(PlannerConfig, ShippedFileStatesTheBuiltInDefaults) {
  auto c = loadPlannerConfig(FORESIGHT_SOURCE_DIR "/config/planner.yaml");
  ASSERT_TRUE(c) << c.error().message;
  const PlannerConfig builtin;
  for (Resource r : {Resource::kCpu, Resource::kMemory}) {
    SCOPED_TRACE(std::string(name(r)));
    const auto& a = (*c)[r];
    const auto& b = builtin[r];
    EXPECT_EQ(a.quantile, b.quantile);
    EXPECT_EQ(a.headroom, b.headroom);
    EXPECT_EQ(a.hysteresis, b.hysteresis);
    EXPECT_EQ(a.max_step_up, b.max_step_up);
    EXPECT_EQ(a.max_step_down, b.max_step_down);
    EXPECT_EQ(a.cooldown_up_seconds, b.cooldown_up_seconds);
    EXPECT_EQ(a.cooldown_down_seconds, b.cooldown_down_seconds);
    EXPECT_EQ(a.min, b.min);
    EXPECT_EQ(a.max, b.max);
    EXPECT_EQ(a.usage_margin, b.usage_margin);
    EXPECT_EQ(a.usage_margin_abs, b.usage_margin_abs);
    EXPECT_EQ(a.oom_hold_seconds, b.oom_hold_seconds);
    EXPECT_EQ(a.pressure_threshold, b.pressure_threshold);
    EXPECT_EQ(a.lower_quantile, b.lower_quantile);
    EXPECT_EQ(a.upper_quantile, b.upper_quantile);
  }
  auto all = loadPlannerConfigs(FORESIGHT_SOURCE_DIR "/config/planner.yaml");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->leave_alone, PlannerConfigs{}.leave_alone);
  auto web = loadPlannerConfig(FORESIGHT_SOURCE_DIR "/config/planner.yaml", "example-web");
  ASSERT_TRUE(web);
  EXPECT_EQ((*web)[Resource::kCpu].min, 0.5);
  EXPECT_EQ((*web)[Resource::kMemory].max, 16.0 * 1024 * 1024 * 1024);
  EXPECT_EQ((*web)[Resource::kMemory].quantile, 0.95);  // not overridden
}

TEST(PlannerConfig, OverridesAndErrors) {
  auto c = parsePlannerConfig("defaults:\n  cpu: {quantile: 0.9}\nworkloads:\n  db:\n"
                              "    memory: {min: 1G, max: 2G}\n",
                              "p.yaml", "db");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ((*c)[Resource::kCpu].quantile, 0.9);
  EXPECT_EQ((*c)[Resource::kMemory].min, 1024.0 * 1024 * 1024);
  auto typo = parsePlannerConfig("defaults:\n  cpu: {quantil: 0.9}\n", "p.yaml");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("p.yaml: defaults.cpu: unknown key 'quantil'"),
            std::string::npos)
      << typo.error().message;
  EXPECT_FALSE(parsePlannerConfig("defaults:\n  gpu: {quantile: 0.9}\n", "p.yaml"));
  EXPECT_FALSE(parsePlannerConfig("defaults:\n  cpu: {quantile: 1.5}\n", "p.yaml"));
  EXPECT_FALSE(parsePlannerConfig("defaults:\n  cpu: {min: 4, max: 2}\n", "p.yaml"));
  EXPECT_FALSE(parsePlannerConfig("defaults:\n  memory: {max: lots}\n", "p.yaml"));
  EXPECT_FALSE(loadPlannerConfig("/nonexistent/planner.yaml"));
}

// Values that make no sense are refused, naming the key: before, `cooldown_down_seconds: inf`
// became a negative cool-down (no cool-down at all), `headroom: nan` a NaN target and
// `hysteresis: 10` a planner that never lowers.
TEST(PlannerConfig, ValuesThatMakeNoSenseAreRefusedNamingTheKey) {
  for (const auto& [policy, message] : std::vector<std::pair<std::string, std::string>>{
           {"{cooldown_down_seconds: inf}", "cpu.cooldown_down_seconds: 'inf' is not a finite number"},
           {"{cooldown_down_seconds: 1e30}", "cpu.cooldown_down_seconds: 1e+30 s is beyond"},
           {"{min: nan}", "cpu.min: 'nan' is not a finite number"},
           {"{headroom: .nan}", "cpu.headroom: '.nan' is not"},
           {"{hysteresis: 10}", "cpu.hysteresis: 10 must be below 1"},
           {"{hysteresis: -1}", "cpu.hysteresis: -1 cannot be negative"},
           {"{headroom: -2}", "cpu.headroom: -2 cannot be negative"},
           {"{min: -4}", "cpu.min: -4 cannot be negative"},
           {"{cooldown_down_seconds: -100}", "cpu.cooldown_down_seconds: -100 cannot be negative"},
           {"{lower_quantile: 0.95, quantile: 0.9}", "needs lower_quantile <= quantile <= upper_quantile"},
           {"{pressure_threshold: 0}", "cpu.pressure_threshold: 0 must be in (0, 1]"},
           {"{pressure_threshold: 1.5}", "cpu.pressure_threshold: 1.5 must be in (0, 1]"},
       }) {
    SCOPED_TRACE(policy);
    auto c = parsePlannerConfig("defaults:\n  cpu: " + policy + "\n", "p.yaml");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find(message), std::string::npos) << c.error().message;
  }
  auto unbounded = parsePlannerConfig("defaults:\n  memory: {max: null}\n", "p.yaml");
  ASSERT_TRUE(unbounded) << unbounded.error().message;
  EXPECT_TRUE(std::isinf((*unbounded)[Resource::kMemory].max));
}

// Every workload's section is checked, not only the one asked for; each has its own policies.
TEST(PlannerConfig, EveryWorkloadSectionIsCheckedAndKeptApart) {
  const std::string text =
      "defaults:\n  cpu: {quantile: 0.9}\nworkloads:\n  db:\n    cpu: {min: 0.5, max: 0.5}\n"
      "  web:\n    memory: {max: 2G}\n";
  auto all = parsePlannerConfigs(text, "p.yaml");
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->workloads.size(), 2u);
  EXPECT_EQ(all->of("db")[Resource::kCpu].max, 0.5);
  EXPECT_EQ(all->of("db")[Resource::kCpu].quantile, 0.9);  // the defaults beneath
  EXPECT_TRUE(std::isinf(all->of("web")[Resource::kCpu].max));
  EXPECT_TRUE(std::isinf(all->of("other")[Resource::kMemory].max));
  auto typo = parsePlannerConfig(text + "  foo:\n    cpu: {bogus: 1}\n", "p.yaml", "db");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("p.yaml: workloads.foo.cpu: unknown key 'bogus'"), std::string::npos)
      << typo.error().message;
  EXPECT_FALSE(parsePlannerConfigs("workloads: [a, b]\n", "p.yaml"));
}

// `leave_alone`: patterns of workloads `run` never resizes. The built-in list holds when the file
// has none, the file's replaces it (an empty one: none), and a pattern that could never match a
// workload's name (a leading '/') or is not a string is refused with the file and line.
TEST(PlannerConfig, LeaveAloneMatchesPatternsAndTheFileReplacesTheBuiltInList) {
  auto builtin = parsePlannerConfigs("defaults: {}\n", "p.yaml");
  ASSERT_TRUE(builtin) << builtin.error().message;
  EXPECT_EQ(builtin->leftAlone("system.slice/ssh.service"), "system.slice/ssh.service");
  EXPECT_EQ(builtin->leftAlone("system.slice/nginx.service"), std::nullopt);
  EXPECT_EQ(builtin->leftAlone("system.slice/ssh.service/child"), std::nullopt);  // the pattern is whole
  EXPECT_EQ(builtin->leftAlone("user.slice/user-1000.slice/session-3.scope"), "user.slice/*");
  EXPECT_EQ(builtin->leftAlone("system.slice/containerd.service"), "system.slice/containerd.service");
  EXPECT_EQ(builtin->leftAlone("system.slice/docker-4f2a.scope"), std::nullopt);  // a container: a workload
  auto own = parsePlannerConfigs("leave_alone:\n  - user.slice/*\n  - system.slice/db-?.service\n", "p.yaml");
  ASSERT_TRUE(own) << own.error().message;
  EXPECT_EQ(own->leftAlone("user.slice/user-1000.slice/session-3.scope"), "user.slice/*");  // '*' crosses '/'
  EXPECT_EQ(own->leftAlone("system.slice/db-1.service"), "system.slice/db-?.service");
  EXPECT_EQ(own->leftAlone("system.slice/db-10.service"), std::nullopt);
  EXPECT_EQ(own->leftAlone("system.slice/ssh.service"), std::nullopt);  // replaced, not added to
  for (const char* none : {"leave_alone: []\n", "leave_alone:\n"}) {
    auto empty = parsePlannerConfigs(none, "p.yaml");
    ASSERT_TRUE(empty) << empty.error().message;
    EXPECT_EQ(empty->leftAlone("system.slice/ssh.service"), std::nullopt) << none;
  }
  for (const auto& [text, said] : std::vector<std::pair<std::string, std::string>>{
           {"defaults: {}\nleave_alone:\n  - /system.slice/ssh.service\n", "p.yaml:3: leave_alone: '/system.slice/ssh.service'"},
           {"leave_alone:\n  - [a, b]\n", "p.yaml:2: leave_alone: ''"},
           {"leave_alone: system.slice/ssh.service\n", "p.yaml:1: leave_alone: expected a list"}}) {
    auto bad = parsePlannerConfigs(text, "p.yaml");
    ASSERT_FALSE(bad) << text;
    EXPECT_NE(bad.error().message.find(said), std::string::npos) << bad.error().message;
  }
}

}  // namespace
}  // namespace foresight::allocate
