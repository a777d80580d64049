#pragma once
// Matcher: predicts each environment's runtime (hence cost) for a workload from
//   (a) the workload's fingerprint, (b) its outcomes on a few probe environments, and
//   (c) the environments' features,
// learning across workloads with gradient-boosted trees (XGBoost): one row per (workload,
// environment) of history, so workloads whose fingerprints and probe outcomes look alike share
// what they showed on similar hardware.
//
// Probes are fixed per trained matcher and chosen from the history by greedy forward selection:
// each next probe is the environment whose (log) runtimes explain the most variance of all the
// other environments' runtimes across past workloads — the most informative trial runs under a
// linear-Gaussian view. Fixed probes mean every past workload has the same descriptor.
//
// Uncertainty is the spread of a bagged ensemble (each member sees a bootstrap sample of the past
// workloads), in log runtime. A second ensemble predicts whether the run completes.
//
// Thread-safety: train() builds everything; rank() is const and safe to call concurrently.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "foresight/match/outcomes.h"

namespace foresight::match {

struct MatcherOptions {
  std::size_t probes = 3;
  std::size_t ensemble = 5;   // bagged members
  // XGBoost settings for small tabular data (a few thousand rows); not tuned to any data set.
  int rounds = 300;
  int max_depth = 4;
  double learning_rate = 0.05;
  double subsample = 0.8;
  double colsample = 0.8;
  std::uint64_t seed = 1;
  unsigned threads = 1;       // per XGBoost model
};

struct ProbeOutcome {
  std::string env;
  bool completed = false;
  double runtime_s = 0;
};

// What is known about the workload to place.
struct WorkloadEvidence {
  std::map<std::string, double> fingerprint;
  std::vector<ProbeOutcome> probes;
};

struct RankedEnvironment {
  std::string env;
  double runtime_s = 0, runtime_low_s = 0, runtime_high_s = 0;  // low/high: ±1 sd of the ensemble
  double cost = 0, cost_low = 0, cost_high = 0;                   // NaN when no price is known
  double log_sd = 0;          // ensemble spread in log runtime (0 for an observed probe)
  double p_complete = 1;
  bool observed = false;      // a probe: values are measured, not predicted
  bool admissible = true;     // predicted to complete (and meet the deadline)
};

struct Driver {
  std::string feature;
  double effect = 0;  // contribution to log runtime against the average environment
};

struct Ranking {
  std::vector<RankedEnvironment> environments;  // best first
  std::vector<Driver> drivers;                  // why the top choice: largest effects first
  std::string explanation;
};

class BoostedTrees;

class Matcher {
 public:
  // Trains on the given workloads (indices into table.workloads) only.
  static Result<Matcher> train(const OutcomeTable& table, const std::vector<std::size_t>& workloads,
                               const MatcherOptions& options);
  // Probes chosen from the history alone (no model), for callers that only need them.
  static std::vector<std::size_t> chooseProbes(const OutcomeTable& table,
                                               const std::vector<std::size_t>& workloads,
                                               std::size_t k);

  Matcher(Matcher&&) noexcept;
  Matcher& operator=(Matcher&&) noexcept;
  ~Matcher();

  // Probe environments to run first, as indices into the table's environments.
  const std::vector<std::size_t>& probes() const { return probes_; }

  // Ranks candidates (default: all environments). Unknown probe environments fail.
  Result<Ranking> rank(const WorkloadEvidence& evidence,
                       const std::vector<std::size_t>& candidates = {}) const;

 private:
  Matcher();
  struct Model;
  std::unique_ptr<Model> model_;
  std::vector<std::size_t> probes_;
};

// For the allocator's cost model and the `run` daemon: the best environments for a workload whose
// forecast does not fit where it runs, learnt from the whole history. With no probe outcomes in
// the evidence the matcher learns from fingerprints and environment features alone; `admissible`
// (optional) drops environments up front, e.g. those smaller than the forecast peak.
Result<Ranking> recommendEnvironments(const OutcomeTable& table, const WorkloadEvidence& evidence,
                                      MatcherOptions options,
                                      const std::function<bool(const Environment&)>& admissible = {});

}  // namespace foresight::match
