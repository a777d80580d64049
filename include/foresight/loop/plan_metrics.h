#pragma once
// What `foresight run` forecasts and plans, as gauges on the agent's /metrics, so that a dashboard
// shows each workload's forecast, limit and planned limit beside its usage, in dry-run too (what
// --apply would set). Computed from Autoscaler::view() at each scrape: nothing to keep in step.
//
//   foresight_plan_forecast_cpu_cores / _memory_bytes  the planner's quantile, max over its horizon
//   foresight_plan_limit_cpu_cores / _memory_bytes     the limit now (no sample: none)
//   foresight_plan_target_cpu_cores / _memory_bytes    the limit the planner wants (no sample: none)
//
// Label `workload`: the agent's name of it, as on its usage series, so that PromQL can join them.

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "foresight/loop/autoscaler.h"

namespace foresight::loop {

std::vector<prometheus::MetricFamily> planFamilies(const std::vector<Autoscaler::ViewRow>& rows,
                                                   const std::map<std::string, std::string>& shown_as);

class PlanMetrics : public prometheus::Collectable {
 public:
  explicit PlanMetrics(const Autoscaler& scaler) : scaler_(scaler) {}
  // The autoscaler knows a workload by the backend's name; its series are labelled `shown`.
  void name(const std::string& planned, const std::string& shown);
  void forget(const std::string& planned);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Autoscaler& scaler_;
  mutable std::mutex mu_;  // name()/forget() on the sampling thread, Collect() on HTTP threads
  std::map<std::string, std::string> shown_as_;
};

}  // namespace foresight::loop
