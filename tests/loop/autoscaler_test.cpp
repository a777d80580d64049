// The closed loop of `foresight run` against the allocator's in-memory dry-run backend.
#include "foresight/loop/autoscaler.h"

#include <gtest/gtest.h>

#include "foresight/predict/lstm/model.h"
#include "foresight/predict/lstm/stream.h"

namespace foresight::loop {
namespace {

std::array<double, kResourceCount> usage(double cpu, double memory) {
  return {cpu, memory, NAN, NAN};
}

TEST(Autoscaler, PlansAfterEnoughHistoryAndAppliesThroughTheBackend) {
  AutoscalerConfig c;
  c.apply = true;
  c.min_samples = 5;
  c.planner[Resource::kMemory].usage_margin_abs = 0;
  Autoscaler a(c, allocate::makeDryRunBackend(nullptr), std::nullopt);
  for (int t = 0; t < 4; ++t) {
    auto p = a.observe("web", 1000 + t, usage(1.0, 1e9));
    ASSERT_TRUE(p);
    EXPECT_FALSE(*p) << "planned before min_samples";
  }
  auto p = a.observe("web", 1004, usage(1.0, 1e9));
  ASSERT_TRUE(p && *p);
  ASSERT_TRUE((*p)->target[Resource::kCpu]);
  EXPECT_NEAR(*(*p)->target[Resource::kCpu], 1.0, 1e-9);   // steady usage: the forecast is 1 core
  EXPECT_GE(*(*p)->target[Resource::kMemory], 1.1e9 - 1);  // the memory floor: usage + 10%
  auto view = a.view();
  ASSERT_EQ(view.size(), 2u);
  EXPECT_EQ(view[0].workload, "web");
  // Applied: the next sample sees the new limits as current and changes nothing (hysteresis).
  p = a.observe("web", 1005, usage(1.0, 1e9));
  ASSERT_TRUE(p && *p);
  EXPECT_FALSE((*p)->hasChanges()) << (*p)->reason();
  a.forget("web");
  EXPECT_TRUE(a.view().empty());
}

TEST(Autoscaler, DryRunChangesNothing) {
  AutoscalerConfig c;
  c.min_samples = 3;
  auto backend = allocate::makeDryRunBackend(nullptr);
  Autoscaler a(c, std::move(backend), std::nullopt);
  for (int t = 0; t < 5; ++t) {
    auto p = a.observe("web", 1000 + t, usage(2.0, 5e8));
    ASSERT_TRUE(p);
    if (t >= 2) {
      ASSERT_TRUE(*p);
      EXPECT_TRUE((*p)->hasChanges());  // nothing was applied, so the same change is planned again
      EXPECT_FALSE((*p)->decisions.empty());
      EXPECT_EQ((*p)->decisions[0].rule.find("dry-run"), std::string::npos);
    }
  }
  for (const auto& row : a.view())
    EXPECT_NE(row.rule.find("dry-run"), std::string::npos) << row.rule;
}

// The LSTM forecaster (an untrained model here) behind the same loop: forecasts for every
// resource asked for, ordered bands, and finite limits planned from them.
TEST(Autoscaler, PlansFromTheLstmForecaster) {
  AutoscalerConfig c;
  c.min_samples = 10;
  c.forecaster = lstmForecasters(std::make_shared<const predict::lstm::LstmModel>(
                                     predict::lstm::LstmModel::initial(8, 4, predict::lstm::kDefaultLevels, 3)),
                                 predict::lstm::kDefaultEta);
  Autoscaler a(c, allocate::makeDryRunBackend(nullptr), std::nullopt);
  std::optional<allocate::Plan> last;
  for (int t = 0; t < 60; ++t) {
    auto p = a.observe("batch", 1000 + t, usage(t % 10 < 5 ? 0.5 : 1.5, 2e9));
    ASSERT_TRUE(p);
    if (*p) last = **p;
  }
  ASSERT_TRUE(last);
  ASSERT_EQ(last->decisions.size(), 2u);
  for (const auto& d : last->decisions) {
    EXPECT_TRUE(std::isfinite(d.forecast)) << d.rule;
    EXPECT_GT(d.forecast, 0.0) << d.rule;
  }
  ASSERT_TRUE(last->target[Resource::kMemory]);
  EXPECT_GE(*last->target[Resource::kMemory], 2e9);  // never below usage
}

}  // namespace
}  // namespace foresight::loop
