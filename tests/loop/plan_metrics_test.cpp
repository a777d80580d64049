// `foresight run`'s forecasts and plans as Prometheus gauges, from a real Autoscaler on the
// in-memory dry-run backend, as the agent's /metrics serialises them.
#include "foresight/loop/plan_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

namespace foresight::loop {
namespace {

// The exposition of `families`, after a line end so that every sample follows one.
std::string exposition(const std::vector<prometheus::MetricFamily>& families) {
  std::string text(1, '\n');
  text += prometheus::TextSerializer().Serialize(families);
  return text;
}

// The value of the sample `series` (name and labels, as exposed) in `text`; NaN when absent.
double sample(const std::string& text, const std::string& series) {
  std::string key(1, '\n');
  key += series;
  key += ' ';
  const auto at = text.find(key);
  if (at == std::string::npos) return NAN;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(PlanMetrics, ForecastLimitAndTargetPerWorkloadLabelledAsTheAgentNamesIt) {
  AutoscalerConfig c;
  c.min_samples = 5;
  c.min_history_seconds = 0;
  c.planner[Resource::kMemory].usage_margin_abs = 0;
  Autoscaler scaler(c, allocate::makeDryRunBackend(nullptr), std::nullopt);  // dry-run: plans only
  PlanMetrics metrics(scaler);
  EXPECT_TRUE(metrics.Collect().empty()) << "no plan yet, no series";
  metrics.name("shop.slice/web", "/shop.slice/web");
  for (int t = 0; t < 6; ++t) ASSERT_TRUE(scaler.observe("shop.slice/web", 1000 + t, {1.0, 1e9, NAN, NAN}));
  const std::string text = exposition(metrics.Collect());
  EXPECT_NE(text.find("# TYPE foresight_plan_forecast_cpu_cores gauge"), std::string::npos) << text;
  // Steady at 1 core and 1e9 bytes: the forecast is that, and the planner wants at least it.
  EXPECT_NEAR(sample(text, R"(foresight_plan_forecast_cpu_cores{workload="/shop.slice/web"})"), 1.0, 1e-6) << text;
  EXPECT_NEAR(sample(text, R"(foresight_plan_forecast_memory_bytes{workload="/shop.slice/web"})"), 1e9, 1e3) << text;
  const auto view = scaler.view();
  ASSERT_EQ(view.size(), 2u);
  for (const auto& row : view) {
    const std::string unit = row.resource == Resource::kCpu ? "cpu_cores" : "memory_bytes";
    const std::string labels = R"({workload="/shop.slice/web"})";
    ASSERT_TRUE(row.target) << name(row.resource);
    EXPECT_DOUBLE_EQ(sample(text, "foresight_plan_target_" + unit + labels), *row.target) << text;
    // The dry-run backend's workload has no limit yet: no sample rather than a made-up value.
    EXPECT_FALSE(row.current);
    EXPECT_TRUE(std::isnan(sample(text, "foresight_plan_limit_" + unit + labels))) << text;
  }
  // A workload the agent gave no name keeps the autoscaler's; a forgotten one has no series.
  metrics.forget("shop.slice/web");
  const std::string unnamed = exposition(metrics.Collect());
  EXPECT_NE(unnamed.find(R"({workload="shop.slice/web"})"), std::string::npos) << unnamed;
  scaler.forget("shop.slice/web");
  EXPECT_TRUE(metrics.Collect().empty());
}

}  // namespace
}  // namespace foresight::loop
