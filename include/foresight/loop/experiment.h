#pragma once
// The closed-loop experiment of issue "allocator": a workload with a repeating demand runs in a
// real cgroup while a controller sets its limit every interval; static, reactive and foresight
// controllers take turns on identical workloads. `foresight bench closed-loop` runs it.

#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "foresight/core/result.h"

namespace foresight::loop {

struct ExperimentOptions {
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::filesystem::path self_exe;  // the foresight binary, to start the workload
  double interval_seconds = 1.0;   // sampling and decision period
  double cycle_seconds = 30;       // period of the workload's demand pattern
  int warmup_cycles = 3;           // run but not scored
  int scored_cycles = 3;
  std::vector<std::string> controllers = {"static", "reactive", "foresight"};
  // The foresight controller's forecaster: "auto", "lstm" (the model files, averaged) or "seasonal".
  std::string forecaster = "auto";
  std::vector<std::filesystem::path> models;
  bool cpu = true, memory = true;  // which parts to run
  // Set (by a signal handler) to stop: the running part ends its workload, removes its cgroup and
  // the run fails with "interrupted".
  const std::atomic<bool>* stop = nullptr;
};

struct ControllerResult {
  double throttled_seconds = 0;          // cpu part, scored window
  double mean_quota_cores = 0;           // cpu part, time-average of the quota in force
  std::optional<double> p99_latency_ms;  // cpu part: the workload's requests
  int oom_kills = 0;                     // memory part, scored window
  double mean_memory_limit_bytes = 0;    // memory part
  int warmup_oom_kills = 0;
};

struct ExperimentResult {
  std::map<std::string, ControllerResult> controllers;
  nlohmann::ordered_json toJson(const ExperimentOptions& o) const;  // controllers in o's order
};

Result<ExperimentResult> runClosedLoopExperiment(const ExperimentOptions& options);

// The foresight controller's settings in the experiment (cpu, or memory).
struct ForesightOptions;
// Fails when the LSTM model cannot be loaded.
Result<ForesightOptions> foresightOptionsFor(bool memory, const ExperimentOptions& options);

// The workloads, run in the child process by `foresight bench workload`.
struct WorkloadOptions {
  std::string kind = "cpu";  // cpu: phased request load; memory: a growing working set
  double cycle_seconds = 30;
  double duration_seconds = 60;
  double start_epoch = 0;     // phases are aligned to this wall-clock time (0: now)
  double score_after = 0;     // seconds after start_epoch from which latencies count
  std::filesystem::path out;  // JSON result (cpu: p99 latency)
};
int runWorkload(WorkloadOptions o);

// Demand of the phased cpu workload at a point of its cycle, in cores (phase in [0, 1)).
double phasedCpuDemand(double phase);
// Working set of the memory workload at a point of its cycle, in bytes.
double memoryWorkingSet(double phase);

}  // namespace foresight::loop
