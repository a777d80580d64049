#pragma once
// The closed loop of `foresight run`: each sample of a workload's usage feeds its streaming
// forecasters (one per resource); their quantiles over the next few samples go to the allocator's
// Planner; a changing plan is applied through a backend and recorded in the audit trail, or, in
// dry-run, logged as what would be done.
//
// Thread-safety: none; the agent calls it from its sampling thread only.

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "foresight/allocate/audit.h"
#include "foresight/allocate/backend.h"
#include "foresight/allocate/planner.h"
#include "foresight/predict/seasonal.h"

namespace foresight::loop {

struct AutoscalerConfig {
  allocate::PlannerConfig planner;
  predict::SeasonalOptions forecaster;  // periods and windows in samples
  std::size_t lookahead = 3;            // samples the allocation must cover
  std::size_t min_samples = 10;         // no plan before this much history
  std::vector<Resource> resources = {Resource::kCpu, Resource::kMemory};
  bool apply = false;                   // false: dry-run, log what would be set
  std::string backend_name;             // recorded with each change, for rollback
  allocate::BackendOptions backend_options;
};

class Autoscaler {
 public:
  // `audit` may be empty in dry-run.
  Autoscaler(AutoscalerConfig config, std::unique_ptr<allocate::Backend> backend,
             std::optional<allocate::AuditLog> audit);

  // One sample of `workload` (the backend's name for it) at `now` (Unix seconds). Returns the
  // plan made, or nullopt while the workload's history is too short.
  Result<std::optional<allocate::Plan>> observe(const std::string& workload, std::int64_t now,
                                                const std::array<double, kResourceCount>& usage);
  void forget(const std::string& workload) { workloads_.erase(workload); }

 private:
  struct State {
    std::map<Resource, predict::SeasonalForecaster> forecasters;
    std::array<std::optional<std::int64_t>, kResourceCount> last_change{};
    std::size_t samples = 0;
  };
  AutoscalerConfig config_;
  std::unique_ptr<allocate::Backend> backend_;
  std::optional<allocate::AuditLog> audit_;
  allocate::Planner planner_;
  std::vector<double> levels_;
  std::map<std::string, State> workloads_;
};

}  // namespace foresight::loop
