#pragma once
// The backtest of EVALUATION.md: replays each series through each policy with a lead time, sweeps
// every policy's risk knob in the same pass, and scores the evaluation part.

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "foresight/predict/policy.h"
#include "foresight/trace/series.h"

namespace foresight::sim {

struct Protocol {
  std::size_t lead_steps = 1;
  double train_fraction = 0.5;
  double target_violation = 0.01;
};

inline const std::vector<double> kIsoRiskLevels = {0.05, 0.02, 0.01, 0.005};
inline const std::vector<double> kCoverageLevels = {0.5, 0.8, 0.9, 0.95};

struct Scores {
  double knob = 0;
  double slack = 0;            // sum max(a-u,0) / sum a
  double violation_rate = 0;   // share of steps with u > a
  double shortfall = 0;        // sum max(u-a,0) / sum u
  double changes_per_day = 0;  // changes > 1% per series per day
  // Violation rate among the largest fifth of the series (by mean usage over their warm-up
  // part): pooled slack is counted in volume and violations in steps, so a policy could lower
  // the one by moving violations onto its largest workloads; this shows whether it does.
  double largest_violation_rate = 0;
};

// One series' scores at its resource's calibrated knob (RunOptions::per_series): which workloads
// hold the unused allocation and take the violations that the pooled figures sum up.
struct SeriesScores {
  std::string id;
  std::uint64_t steps = 0, violations = 0;
  double sum_usage = 0, sum_allocation = 0, sum_unused = 0, sum_shortfall = 0;
  double changes_per_day = 0;
  // The series' own usage over its scored steps, whatever the policy: its 99th percentile over its
  // mean, how far above its mean it reaches 1% of the time (NaN when the mean is 0).
  double usage_p99_to_mean = 0;
};

struct ResourceResult {
  predict::Knob knob;
  Scores default_scores;
  std::optional<Scores> calibrated;  // absent when no warm-up step was scored
  std::vector<Scores> frontier;  // one per knob grid value
  std::map<double, std::optional<double>> iso_risk, iso_risk_shortfall, iso_risk_largest_violation;
  std::map<double, double> coverage;  // empty unless the policy gives intervals
  // At the calibrated knob, in trace order, series with a scored step; empty unless
  // RunOptions::per_series.
  std::vector<SeriesScores> per_series;
};

struct PolicyResult {
  std::string name;
  std::map<Resource, ResourceResult> resources;
  double thread_seconds = 0;  // CPU-side time spent replaying this policy
  std::uint64_t series_steps = 0;
};

// A few series kept whole for plots: usage, and per policy the default-knob allocation and, for
// interval policies, the 90% band; evaluation part only.
struct ExampleSeries {
  std::string id;
  Resource resource = Resource::kCpu;
  std::int64_t start = 0, step_seconds = 0;
  std::vector<double> usage;
  std::map<std::string, std::vector<double>> allocation, band_lo, band_hi;
};

struct Report {
  std::size_t series = 0, skipped = 0;
  std::int64_t step_seconds = 0;
  std::vector<std::string> warnings;  // the trace's (trace::unitWarnings)
  std::uint64_t evaluation_steps = 0;
  Protocol protocol;
  std::vector<PolicyResult> policies;
  std::vector<ExampleSeries> examples;
  double wall_seconds = 0;
};

struct NamedPolicy {
  std::string name;
  predict::PolicyFactory* factory;
};

struct RunOptions {
  Protocol protocol;
  unsigned threads = 0;
  std::size_t examples = 3;  // series kept for plots
  bool per_series = false;   // fill ResourceResult::per_series
  // Called after each series with (done, total); from worker threads.
  std::function<void(std::size_t, std::size_t)> on_progress;
};

// Policies must have been prepare()d on the trace.
Report runBacktest(const trace::Trace& trace, const std::vector<NamedPolicy>& policies,
                   const RunOptions& options);

// The allocations a policy commits for one resource at each knob, indexed by the step they are
// for (NaN where none was committed). For tests and diagnostics.
std::vector<std::vector<double>> replayAllocations(const predict::PolicyFactory& factory,
                                                   const trace::Series& series,
                                                   const Protocol& protocol, Resource resource);

// Linear interpolation of y at violation rate v along a frontier in knob order, between neighbouring
// knobs; where the sweep crosses v more than once, at the crossing with the least slack. nullopt
// where the sweep does not reach v.
std::optional<double> interpolateAtViolation(const std::vector<Scores>& frontier, double v,
                                             double Scores::*y);

}  // namespace foresight::sim
