#pragma once
// The closed loop of `foresight run`: each sample of a workload's usage feeds its streaming
// forecasters (one per resource); their quantiles over the next few samples go to the allocator's
// Planner; a changing plan is applied through a backend and recorded in the audit trail, or, in
// dry-run, logged as what would be done.
//
// Thread-safety: observe() and forget() from one thread (the agent's sampling thread); view() from
// any thread.

#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "foresight/allocate/audit.h"
#include "foresight/allocate/backend.h"
#include "foresight/allocate/cost.h"
#include "foresight/allocate/planner.h"
#include "foresight/loop/forecaster.h"
#include "foresight/trace/reader.h"

namespace foresight::loop {

// What a workload can be given at all, beside its policy's min and max (allocate::PlanInput).
struct Bounds {
  allocate::Allocation floor, ceiling;
};

// How to raise `workload`'s ceiling of `r` to hold `wanted` (`host`: the host's capacity, if known).
using CeilingAdvice = std::function<std::string(const std::string& workload, Resource r, double wanted,
                                                double ceiling, std::optional<double> host)>;
// `run`'s: a cgroup's cpuset ("widen its cpuset (3.00 cores forecast, 2 CPUs in its cpuset, 4 on this host)").
std::string widenCpuset(const std::string& workload, Resource r, double wanted, double ceiling,
                        std::optional<double> host);

// When a workload's desired allocation exceeds what this host has, where the extra capacity should
// come from (the allocator's cost model: grow in place, move, add; by purchase option).
struct CapacityAdvice {
  std::shared_ptr<const allocate::MachineRanker> ranker;  // the cost model's (may be null)
  std::shared_ptr<const allocate::CostModel> cost;
  allocate::Allocation host;       // this host's capacity (cpu cores, memory bytes)
  std::string machine;             // the host's catalog type, may be empty
  double hours = 24;               // how long the extra capacity is priced for
  std::int64_t every_seconds = 3600;  // at most one advice per workload this often
  // Advice only once the forecast has stayed above the host this long: capacity is bought by the
  // hour, and a burst's upper quantile (the `make run` demo's phase changes put its p95 at 2.7
  // cores on a 2-core host it fits on) is the planner's matter, not a purchase.
  std::int64_t sustain_seconds = 60;
  // The advice when the forecast exceeds the workload's own ceiling (observe()'s) but fits the
  // host: the capacity is here, so the advice is to raise the ceiling, not to buy. `run`:
  // widenCpuset; `guests`: raiseGuestMaximum. Null: none.
  CeilingAdvice raise_ceiling;
};

struct AutoscalerConfig {
  allocate::PlannerConfig planner;
  // Workloads (the backend's names) with policies of their own (the planner file's `workloads:`),
  // in place of `planner`.
  std::map<std::string, allocate::PlannerConfig> workload_planners;
  ForecasterFactory forecaster = seasonalForecasters({});  // one per workload
  std::size_t lookahead = 3;            // samples the allocation must cover
  std::size_t min_samples = 10;         // no plan before this many samples
  // ... and before this much time since the first one. A limit set from seconds of history caps
  // the workload at whatever phase it was in: from its first 10 samples the `make run` demo
  // workload got 0.61 cores in its quiet phase, and its next burst queued behind that limit
  // (p99 886 ms, against 2.7 ms unlimited).
  std::int64_t min_history_seconds = 60;
  // The most the loop's clock advances between two samples (0: no bound). A wall clock stepped
  // forward (NTP after a VM resumed from a snapshot) would otherwise count as history watched, end
  // cool-downs and lift an OOM hold at once; `run` sets it with clockStepFor(its period).
  std::int64_t max_clock_step_seconds = 0;
  std::vector<Resource> resources = {Resource::kCpu, Resource::kMemory};
  bool apply = false;        // false: dry-run, log what would be set
  // A refused change (a webhook, a read-only cgroup) is retried after this long, doubled with each
  // refusal in a row up to the max: every round would flood the backend and the log.
  std::int64_t apply_retry_seconds = 5;
  std::int64_t apply_retry_max_seconds = 600;
  std::string backend_name;  // recorded with each change, for rollback
  allocate::BackendOptions backend_options;
  std::optional<CapacityAdvice> advice;
  // Whether another writer may have changed the limits since this loop's audit trail last did
  // (`recommend --leader-elect`: the replica that held the lease before kept its own trail): then
  // a limit found in force at a workload's first plan counts as changed then, and the planner's
  // cool-downs run from there rather than from the trail's older change, or from none.
  bool limits_found_start_cooldowns = false;
};

// The bound on the loop clock's step for samples every `sample_seconds`: ten periods, so that a
// few late or missed rounds still count in full, and at least a minute.
std::int64_t clockStepFor(double sample_seconds);

class Autoscaler {
 public:
  // `audit` may be empty in dry-run.
  Autoscaler(AutoscalerConfig config, std::unique_ptr<allocate::Backend> backend,
             std::optional<allocate::AuditLog> audit);

  // One sample of `workload` (the backend's name for it) at `now` (Unix seconds). The forecaster
  // sees `demand` (usage plus what a limit held back, collect::resourceDemand; usage when absent),
  // the planner's usage floors see `usage`. `bounds`: what the workload can be given at all, per
  // resource, where read this round (absent: not read, the last read stands), the planner's floor
  // and ceiling: `run` gives the CPUs of a cgroup's cpuset, `guests` a guest's maximum vCPUs and
  // memory (the capacity advice, when configured, then says how to raise them) and its vCPUs
  // present at boot (not unplugged).
  // `left_alone`: planned for and shown but never applied, also with `apply` (`run`: its own
  // cgroup, PID 1's, the planner file's leave_alone); its changing decisions show "(left alone)"
  // where dry-run's show "(dry-run)". `stall`: its memory stall at its limit where read this round
  // (`run`: PSI, a detail file), for the planner's pressure rule until the next read. Returns the
  // plan made, or nullopt while the workload's history is too short.
  Result<std::optional<allocate::Plan>> observe(
      const std::string& workload, std::int64_t now, const std::array<double, kResourceCount>& usage,
      const std::optional<std::array<double, kResourceCount>>& demand = std::nullopt,
      const Bounds& bounds = {}, bool left_alone = false,
      const std::optional<allocate::MemoryStall>& stall = std::nullopt);
  // The past of a workload not seen yet (e.g. from Prometheus when `foresight recommend`
  // restarts), in time order: it feeds the forecasters and counts as history watched, as if
  // observed, but plans nothing. Returns the samples fed: 0 for a workload already seen.
  std::size_t warm(const std::string& workload, const trace::RawSeries& past);
  // An OOM kill of `workload` at `wall` learnt after the fact (a pod's status read when the
  // recommender first sees its container): the planner's hold runs from the kill, not from when it
  // was read, and a kill older than the hold is ignored. Same thread as observe().
  void rememberOomKill(const std::string& workload, std::int64_t wall, double demand);
  void forget(const std::string& workload);
  // New planner policies (an edited planner file), from the next observe() on; what the loop
  // keeps of each workload (history, cool-downs, an OOM hold) stays. Same thread as observe().
  void setPlanners(const allocate::PlannerConfig& defaults,
                   const std::map<std::string, allocate::PlannerConfig>& workloads);
  // Whether observe() applies its plans (false: dry-run).
  bool applies() const { return config_.apply; }
  // Whether the backend manages a workload of this name at all (Backend::manages).
  Status manages(const std::string& workload) const { return backend_->manages(workload); }
  const allocate::Backend& backend() const { return *backend_; }

  // What the loop last saw and decided, per workload and resource, for a live view.
  struct ViewRow {
    std::string workload;
    Resource resource = Resource::kCpu;
    // usage: the last measured (a resource missing this round keeps its last read);
    // forecast: the planner's quantile, max over the horizon.
    double usage = NAN, forecast = NAN;
    std::optional<double> current, target;
    std::string rule;
    std::string advice;  // where extra capacity should come from, when it does not fit
  };
  // Safe to call from another thread than observe().
  std::vector<ViewRow> view() const;

 private:
  struct State {
    std::unique_ptr<WorkloadForecaster> forecaster;
    std::array<std::optional<std::int64_t>, kResourceCount> last_change{};
    bool planned = false;  // a plan was made (limits_found_start_cooldowns acts before the first)
    std::size_t samples = 0;
    std::int64_t first_seen = 0;
    std::string last_dry_run;  // the target last logged in dry-run
    std::optional<std::int64_t> last_advice;
    std::optional<std::int64_t> exceeding_since;  // the forecast above the host since then
    // The last measured usage of each resource: a sample can lack one (the profiler reads the
    // working set every detail_every rounds), and the memory usage floor must not lapse then.
    std::array<double, kResourceCount> last_usage{NAN, NAN, NAN, NAN};
    std::optional<allocate::OomKill> oom;  // the latest, for the planner's oom-floor
    std::optional<allocate::MemoryStall> stall;  // the latest read, for the planner's pressure rule
    Bounds bounds;                         // the last read of each, for the planner
    int apply_failures = 0;                // refused applies in a row
    std::int64_t retry_at = 0;             // no apply before this (loop time)
  };
  State& stateOf(const std::string& workload);
  void adviseIfItDoesNotFit(const std::string& workload, const allocate::Plan& plan,
                            const allocate::Allocation& current, std::int64_t now, State& st);
  AutoscalerConfig config_;
  std::unique_ptr<allocate::Backend> backend_;
  allocate::Allocation units_;  // backend_->units(), fixed for a backend
  std::optional<allocate::AuditLog> audit_;
  const allocate::Planner& plannerOf(const std::string& workload) const;
  allocate::Planner planner_;
  std::map<std::string, allocate::Planner> workload_planners_;
  std::vector<double> levels_;  // every planner's levels
  std::map<std::string, State> workloads_;
  // OOM kills of forgotten workloads: a service the OOM killer ended is restarted in a new cgroup
  // under the same path, which must keep the kill's floor or be killed again at the old limit.
  std::map<std::string, allocate::OomKill> past_ooms_;
  void changesFromTheAuditTrail(const std::string& workload, State& st);
  std::int64_t oomHoldSeconds() const;  // the longest of every planner's
  // The planner's intervals (history, cool-downs, OOM hold) run on the sample times made
  // monotonic: a wall clock stepped back (NTP) adds no time rather than negative time, which
  // would hold every raise as "cooldown" and blind young workloads until it caught up; a step
  // forward adds at most max_clock_step_seconds.
  std::int64_t loopTime(std::int64_t now);
  std::int64_t onLoopClock(std::int64_t wall) const;  // a past wall time, as warm() places the past
  std::optional<std::int64_t> last_wall_;
  std::int64_t loop_now_ = 0;
  mutable std::mutex view_mutex_;
  std::map<std::pair<std::string, Resource>, ViewRow> view_;
};

}  // namespace foresight::loop
