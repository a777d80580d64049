// The closed loop of `foresight run` against the allocator's in-memory dry-run backend.
#include "foresight/loop/autoscaler.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace foresight::loop
