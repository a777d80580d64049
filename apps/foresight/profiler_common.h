#pragma once
// Shared by `profile`, `record` and `run`: which workloads to watch (selectors, a launched
// command, or every populated cgroup) and a fixed-period sampling loop.
//
// Thread-safety: WorkloadSource is used by the sampling thread only.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "foresight/collect/launch.h"
#include "foresight/collect/sampler.h"

namespace foresight::app {

struct WorkloadOptions {
  std::string root = "/";  // host root (tests point it at a fixture tree)
  std::vector<std::string> selectors;
  std::vector<std::string> command;  // after "--"
  int max_depth = 3;
  std::vector<std::string> collectors;  // empty: defaultCollectors()
  unsigned detail_every = collect::CollectorContext::kDefaultDetailEvery;
};

class WorkloadSource {
 public:
  static Result<std::unique_ptr<WorkloadSource>> create(const WorkloadOptions& o);
  // The workloads to sample this round (re-discovered in discovery mode).
  std::vector<collect::Workload> current();
  collect::Sampler& sampler() { return *sampler_; }
  // True when a launched command has exited (the recording should stop).
  bool commandExited();
  int commandExitCode() const;
  // failedOnItsOwn() of the launched command; false without one.
  bool commandFailed();

 private:
  WorkloadOptions options_;
  collect::CollectorContext ctx_;
  collect::CollectorRegistry registry_{"collector"};
  std::optional<collect::Sampler> sampler_;
  std::vector<collect::Workload> fixed_;
  std::optional<collect::LaunchedWorkload> launched_;
  bool discover_ = false;
};

// Calls round() every `period` until it returns false, `duration` elapses (0: no limit) or stop
// is set. Rounds are scheduled on a fixed grid so sampling does not drift.
void runEvery(std::chrono::duration<double> period, std::chrono::duration<double> duration,
              const std::atomic<bool>& stop, const std::function<bool()>& round);

// Whether a launched command failed on its own, which record and run report as exit status 3: it
// exited non-zero while no stop was requested. A terminal's Ctrl-C reaches the command too, which
// then dies of SIGINT; at --duration's end it is still running (terminated afterwards).
bool failedOnItsOwn(collect::LaunchedWorkload& command);

// SIGINT/SIGTERM set this flag (installed by installStopHandler()).
std::atomic<bool>& stopFlag();
void installStopHandler();

}  // namespace foresight::app
