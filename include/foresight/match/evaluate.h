#pragma once
// MATCHING.md's evaluation: leave one workload group out, let the matcher run its probes on the
// held-out workload, score its choice by regret against the best environment.

#include <string>
#include <vector>

#include "foresight/match/matcher.h"

namespace foresight::match {

// regret = value(chosen) / value(best feasible) − 1; an infeasible choice counts as the worst
// feasible value. nullopt when the workload has no feasible environment.
std::optional<double> regret(const OutcomeTable& table, std::size_t workload, std::size_t chosen);

struct WorkloadScore {
  std::string workload, group;
  std::string chosen, best;
  double regret = 0;
  // The matcher's first choice / one of its first three is as good as the best (regret 0, so
  // any of tied bests counts).
  bool top1 = false, top3 = false;
  std::vector<std::string> probes;
  double probe_cost = 0;            // sum of the probe runs' objective values that are known
  std::size_t probes_unknown_cost = 0;  // failed probe runs without a runtime: not in probe_cost
  double probe_cost_vs_best = 0;    // probe_cost / value(best)
  std::string baseline_env;         // best-on-average over the training workloads
  double baseline_regret = 0;
  bool baseline_top1 = false;
  double random_regret = 0;         // expected regret of a uniform pick
  std::size_t informative_probes = 0;
};

struct Summary {
  std::size_t workloads = 0, skipped = 0;  // skipped: no feasible environment
  double median_regret = 0, mean_regret = 0;
  std::size_t top1 = 0, top3 = 0;
  double median_probe_cost_vs_best = 0;
  std::size_t probes_unknown_cost = 0;
  double baseline_median = 0, baseline_mean = 0;
  std::size_t baseline_top1 = 0;
  double random_median = 0, random_mean = 0;
};

struct EvaluationReport {
  std::vector<WorkloadScore> workloads;
  Summary summary;
};

struct EvaluationOptions {
  MatcherOptions matcher;
  std::string group_by;   // workload info column; empty: every workload is its own group
  bool use_fingerprints = true;
  unsigned threads = 1;   // groups evaluated in parallel
  // Let each fold pick how many probes are informative (1, half, all) by an inner
  // leave-one-group-out evaluation on its own training workloads only.
  bool self_tune = false;
};

// How a fold's matcher splits its probes when self-tuning: the candidate (the default split, 1,
// all) with the lowest inner mean regret (ties: the default split). nullopt: the default split,
// options.matcher.informative_probes as given (unset: half the budget capped by the factor
// model's rank, as Matcher::train resolves it).
Result<std::optional<std::size_t>> selectInformativeProbes(const OutcomeTable& table,
                                                           const std::vector<std::size_t>& workloads,
                                                           const EvaluationOptions& options);

// Every environment, by mean regret over the given workloads, lowest first (ties in catalog
// order); best-on-average is the first a workload has a run on.
std::vector<std::size_t> rankOnAverage(const OutcomeTable& table, const std::vector<std::size_t>& workloads);

Result<EvaluationReport> evaluate(const OutcomeTable& table, const EvaluationOptions& options);

std::string toJson(const EvaluationReport& report, const OutcomeTable& table,
                   const EvaluationOptions& options);

}  // namespace foresight::match
