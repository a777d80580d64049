#include "foresight/predict/forecast.h"

#include <gtest/gtest.h>

namespace foresight::predict {
namespace {

TEST(Forecast, InterpolatesBetweenLevelsAndClamps) {
  Forecast f;
  f.levels = {0.5, 0.9, 0.99};
  f.values[index(Resource::kCpu)] = {{1.0, 2.0, 4.0}, {2.0, 3.0, 5.0}};
  EXPECT_EQ(f.horizon(), 2u);
  EXPECT_DOUBLE_EQ(f.quantile(Resource::kCpu, 1, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(f.quantile(Resource::kCpu, 1, 0.7), 1.5);    // halfway 0.5..0.9
  EXPECT_DOUBLE_EQ(f.quantile(Resource::kCpu, 2, 0.945), 4.0);  // halfway 0.9..0.99
  EXPECT_DOUBLE_EQ(f.quantile(Resource::kCpu, 1, 0.1), 1.0);    // clamped
  EXPECT_DOUBLE_EQ(f.quantile(Resource::kCpu, 1, 0.999), 4.0);  // clamped
  EXPECT_TRUE(std::isnan(f.quantile(Resource::kCpu, 3, 0.5)));
  EXPECT_TRUE(std::isnan(f.quantile(Resource::kMemory, 1, 0.5)));
}

}  // namespace
}  // namespace foresight::predict
