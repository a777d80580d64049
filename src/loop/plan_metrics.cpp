#include "foresight/loop/plan_metrics.h"

#include <array>

namespace foresight::loop {

std::vector<prometheus::MetricFamily> planFamilies(const std::vector<Autoscaler::ViewRow>& rows,
                                                   const std::map<std::string, std::string>& shown_as) {
  struct Quantity {
    const char* name;
    const char* help;
    std::optional<double> (*of)(const Autoscaler::ViewRow&);
  };
  static constexpr std::array<Quantity, 3> kQuantities = {{
      {"forecast", "Foresight's forecast of the workload's demand: the planner's quantile, max over its horizon",
       [](const Autoscaler::ViewRow& r) { return std::optional<double>(r.forecast); }},
      {"limit", "The workload's limit now, as its backend reads it (no sample: no limit)",
       [](const Autoscaler::ViewRow& r) { return r.current; }},
      {"target", "The limit Foresight's planner wants (in dry-run: what --apply would set; no sample: none)",
       [](const Autoscaler::ViewRow& r) { return r.target; }},
  }};
  std::vector<prometheus::MetricFamily> out;
  for (Resource r : {Resource::kCpu, Resource::kMemory}) {
    const char* unit = r == Resource::kCpu ? "cpu_cores" : "memory_bytes";
    for (const auto& q : kQuantities) {
      prometheus::MetricFamily f;
      f.name = fmt::format("foresight_plan_{}_{}", q.name, unit);
      f.help = q.help;
      f.type = prometheus::MetricType::Gauge;
      for (const auto& row : rows) {
        if (row.resource != r) continue;
        const std::optional<double> v = q.of(row);
        if (!v || !std::isfinite(*v)) continue;
        const auto shown = shown_as.find(row.workload);
        prometheus::ClientMetric m;
        m.label = {{"workload", shown == shown_as.end() ? row.workload : shown->second}};
        m.gauge.value = *v;
        f.metric.push_back(std::move(m));
      }
      if (!f.metric.empty()) out.push_back(std::move(f));
    }
  }
  return out;
}

void PlanMetrics::name(const std::string& planned, const std::string& shown) {
  std::lock_guard lock(mu_);
  shown_as_[planned] = shown;
}

void PlanMetrics::forget(const std::string& planned) {
  std::lock_guard lock(mu_);
  shown_as_.erase(planned);
}

std::vector<prometheus::MetricFamily> PlanMetrics::Collect() const {
  std::map<std::string, std::string> shown_as;
  {
    std::lock_guard lock(mu_);
    shown_as = shown_as_;
  }
  return planFamilies(scaler_.view(), shown_as);
}

}  // namespace foresight::loop
