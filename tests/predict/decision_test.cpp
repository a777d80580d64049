#include "foresight/predict/decision.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>

namespace foresight::predict {
namespace {

const std::array<double, 3> kLevels = {0.5, 0.9, 0.99};
const std::array<double, 3> kValues = {1, 2, 10};

// Hand-computed: 0.5 -> 0.9 adds (2 - 1) x 0.7 = 0.7 expected unused against kappa x 0.4;
// 0.9 -> 0.99 adds 8 x 0.945 = 7.56 against kappa x 0.09.
TEST(CostOptimal, ClimbsWhileCoverageIsCheaperThanItsViolationCost) {
  EXPECT_EQ(costOptimal(kLevels, kValues, 1.0, 1.0, IdleFloor::kScaled).level, 0.5);    // 0.4 < 0.7
  EXPECT_EQ(costOptimal(kLevels, kValues, 1.0, 2.0, IdleFloor::kScaled).level, 0.9);    // 0.8 > 0.7, 0.18 < 7.56
  EXPECT_EQ(costOptimal(kLevels, kValues, 1.0, 80.0, IdleFloor::kScaled).level, 0.9);   // 7.2 < 7.56
  EXPECT_EQ(costOptimal(kLevels, kValues, 1.0, 90.0, IdleFloor::kScaled).level, 0.99);  // 8.1 > 7.56
  EXPECT_EQ(costOptimal(kLevels, kValues, 1.0, 90.0, IdleFloor::kScaled).value, 10.0);
}

TEST(CostOptimal, IsScaleFree) {
  for (double kappa : {1.0, 2.0, 80.0, 90.0}) {
    const std::array<double, 3> big = {1000, 2000, 10000};
    EXPECT_EQ(costOptimal(kLevels, big, 1000.0, kappa, IdleFloor::kScaled).level,
              costOptimal(kLevels, kValues, 1.0, kappa, IdleFloor::kScaled).level)
        << kappa;
  }
}

TEST(CostOptimal, RepairsCrossedQuantilesAndFloorsAnIdleForecast) {
  const std::array<double, 3> crossed = {3, 2, 4};  // treated as 3, 3, 4
  const auto c = costOptimal(kLevels, crossed, 1.0, 11.0, IdleFloor::kScaled);
  EXPECT_EQ(c.level, 0.99);  // 0 extra to reach 0.9; 1 x 0.945 < 11 x 0.09 to reach 0.99
  EXPECT_EQ(c.value, 4.0);
  const std::array<double, 3> idle = {0, 0, 0};
  const auto f = costOptimal(kLevels, idle, 2.0, 1.0, IdleFloor::kScaled);  // free coverage: climbs to the top
  EXPECT_EQ(f.level, 0.99);
  EXPECT_DOUBLE_EQ(f.value, (2 * 0.99 - 1) * 2.0);  // the idle-burst floor
}

TEST(CostOptimal, WithoutTheIdleFloorTheChosenQuantileIsTheAllocation) {
  const std::array<double, 3> idle = {0, 0, 0.5};
  const auto f = costOptimal(kLevels, idle, 2.0, 1000.0, IdleFloor::kNone);
  EXPECT_EQ(f.level, 0.99);
  EXPECT_EQ(f.value, 0.5);  // below (2 x 0.99 - 1) x 2, where kScaled would lift it
  EXPECT_DOUBLE_EQ(costOptimal(kLevels, idle, 2.0, 1000.0, IdleFloor::kScaled).value, 1.96);
  const std::array<double, 3> negative = {-1, -1, -1};  // quantiles below zero allocate nothing
  EXPECT_EQ(costOptimal(kLevels, negative, 2.0, 1000.0, IdleFloor::kNone).value, 0.0);
}

TEST(RunningScale, ClipsBurstsAndIgnoresMissing) {
  RunningScale s(0.5);
  EXPECT_EQ(s.value(), 0.5);  // floor before any sample
  s.add(1.0);
  s.add(NAN);
  s.add(100.0);  // clipped to 8 x 1.0
  EXPECT_DOUBLE_EQ(s.value(), 4.5);
}

// After a day idle at 0.01, the workload runs at 2. Without a restart the clipped mean needs
// days to get there; with restart_after = 12 the 12th step in a row above the clip restarts the
// mean from those 12 steps. A burst shorter than that is clipped as before.
TEST(RunningScale, RestartsAfterALevelShiftNotAfterABurst) {
  RunningScale plain(1e-3), restarting(1e-3, 12);
  for (int t = 0; t < 288; ++t) plain.add(0.01), restarting.add(0.01);
  for (int t = 0; t < 11; ++t) plain.add(2.0), restarting.add(2.0);
  EXPECT_DOUBLE_EQ(restarting.value(), plain.value());  // 11 steps: still a burst
  EXPECT_LT(plain.value(), 0.1);
  plain.add(2.0);
  restarting.add(2.0);
  EXPECT_DOUBLE_EQ(restarting.value(), 2.0);
  EXPECT_LT(plain.value(), 0.1);
  // From there it is a running mean over the 12 steps and those after.
  restarting.add(1.0);
  EXPECT_DOUBLE_EQ(restarting.value(), (12 * 2.0 + 1.0) / 13);

  // A run broken by one sample under the clip starts counting again.
  RunningScale broken(1e-3, 3);
  broken.add(1.0);
  broken.add(100.0);
  broken.add(100.0);
  broken.add(1.0);
  broken.add(1000.0);
  broken.add(1000.0);
  EXPECT_LT(broken.value(), 100.0);
  broken.add(1000.0);
  EXPECT_DOUBLE_EQ(broken.value(), 1000.0);
}

}  // namespace
}  // namespace foresight::predict
