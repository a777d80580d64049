#pragma once
// Matcher: predicts each environment's runtime (hence cost) for a workload from
//   (a) the workload's fingerprint, (b) its outcomes on a few probe environments, and
//   (c) the environments' features,
// learning across workloads. The default runtime model is low-rank collaborative filtering
// (Selecta, PARIS): log runtime = workload level + environment speed + workload factors ·
// environment factors, the environment's parameters tied to its features (factor_model.h); a new
// workload's level and factors have a prior (from its fingerprint when there is one) that every
// probe updates. `RuntimeModel::kXgboost` keeps the earlier bagged boosted trees. Completion
// (does the run finish?) is predicted by boosted trees (XGBoost) with either.
//
// Probes: up to half the budget (rounded up) learns about the workload, the rest checks the most
// promising candidates (the factor model keeps at least one check).
//  - Informative probes are fixed per trained matcher. Factor model: greedy Bayesian D-optimal
//    design on the workload's factors, one probe per factor. Trees: greedy forward selection of
//    the environments whose (log) runtimes explain the most variance of all environments'
//    runtimes across past workloads. Being fixed, every past workload has the same descriptor.
//  - Checking probes are chosen one at a time by expected improvement over the best measured
//    outcome so far (as CherryPick does), so a near-best candidate is measured, not guessed.
//
// Uncertainty, in log runtime: factor model, the posterior predictive variance, calibrated on
// held-out predictions within the training data; trees, the spread of a bagged ensemble plus the
// members' out-of-bag error.
//
// Thread-safety: train() builds everything; rank() is const and safe to call concurrently.

#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "foresight/match/outcomes.h"

namespace foresight::match {

// What predicts runtime. kFactor: a low-rank model of log runtime across workloads and
// environments (factor_model.h), probes chosen by Bayesian D-optimal design. kXgboost: bagged
// boosted trees on environment features + fingerprint + probe outcomes (the earlier default).
// Completion is predicted by boosted trees with either.
enum class RuntimeModel { kFactor, kXgboost };
Result<RuntimeModel> parseRuntimeModel(const std::string& s);

struct MatcherOptions {
  RuntimeModel model = RuntimeModel::kFactor;
  // Workload info column whose groups the factor model's inner model selection holds out together
  // (as the evaluation does); empty: each workload alone.
  std::string group_by;
  std::size_t probes = 3;
  // How many of the probes are informative (the rest check candidates); default: half, rounded up.
  std::optional<std::size_t> informative_probes;
  std::size_t ensemble = 10;  // bagged members; 5 left the choice visibly seed-dependent on Scout
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
  double runtime_s = 0, runtime_low_s = 0, runtime_high_s = 0;  // low/high: ±1 sd (log_sd)
  double cost = 0, cost_low = 0, cost_high = 0;                   // NaN when no price is known
  double log_sd = 0;          // uncertainty in log runtime (0 for an observed probe)
  double p_complete = 1;
  bool observed = false;      // a probe: values are measured, not predicted
  bool admissible = true;     // predicted to complete (and meet the deadline)
  // What the ranking orders by, in the objective's units (seconds or cost): P(ok) × the lognormal
  // mean + (1 − P(ok)) × the worst expected value. The mean of a wide band lies above its median
  // (runtime_s), so an uncertain environment can rank below one with a higher median.
  double expected = 0;
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

  // The trained matcher as JSON (its factor model and XGBoost models embedded), so a daemon can
  // train once and reload after a restart; load() gives back a matcher that ranks identically.
  Result<std::string> save() const;
  static Result<Matcher> load(const std::string& json);

  // Informative probe environments, as indices into the table's environments (may be empty:
  // with a rank-0 factor model or a budget of one, every probe checks a candidate).
  const std::vector<std::size_t>& probes() const { return probes_; }

  // The next environment to run a probe on given what is known (informative probes first, then
  // expected improvement), among candidates not yet probed; nullopt when none is left.
  Result<std::optional<std::size_t>> nextProbe(const WorkloadEvidence& evidence,
                                               const std::vector<std::size_t>& candidates = {}) const;
  std::size_t probeBudget() const { return budget_; }

  // Ranks candidates (default: all environments). Unknown probe environments fail.
  Result<Ranking> rank(const WorkloadEvidence& evidence,
                       const std::vector<std::size_t>& candidates = {}) const;

 private:
  Matcher();
  struct Model;
  std::unique_ptr<Model> model_;
  std::vector<std::size_t> probes_;
  std::size_t budget_ = 0;
};

// For the allocator's cost model and the `run` daemon: the best environments for a workload whose
// forecast does not fit where it runs, learnt from the whole history. With no probe outcomes in
// the evidence the matcher learns from fingerprints and environment features alone; `admissible`
// (optional) drops environments up front, e.g. those smaller than the forecast peak.
Result<Ranking> recommendEnvironments(const OutcomeTable& table, const WorkloadEvidence& evidence,
                                      MatcherOptions options,
                                      const std::function<bool(const Environment&)>& admissible = {});

}  // namespace foresight::match
