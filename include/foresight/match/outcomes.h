#pragma once
// The run history as a workload × environment table of outcomes, with each environment's price,
// under one objective. Everything the matcher and the evaluation compare reads from here.

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "foresight/match/data.h"

namespace foresight::match {

enum class Objective { kCost, kRuntime };
Result<Objective> parseObjective(const std::string& s);

struct Outcome {
  bool has_run = false;     // no run → the environment cannot be scored for this workload
  bool completed = false;
  double runtime_s = std::numeric_limits<double>::quiet_NaN();
  double cost = std::numeric_limits<double>::quiet_NaN();
  // $/hour that its completed runs with a cost imply (cost / runtime), for an environment without
  // a listed price; and whether `cost` is runtime × the environment's price (no run had one).
  std::vector<double> implied_price_per_hour;
  bool cost_from_price = false;
};

struct OutcomeTable {
  std::vector<std::string> workloads;
  std::vector<Environment> environments;
  // $/hour per environment: its price, or when it has none, the median of cost/runtime over its
  // runs; NaN when neither is known (then the cost objective is unavailable).
  std::vector<double> price_per_hour;
  // Per environment: price_per_hour is implied from runs' costs (empty: every price is given).
  std::vector<bool> price_implied;
  std::vector<std::vector<Outcome>> outcomes;  // [workload][environment]
  std::vector<std::map<std::string, double>> fingerprints;  // [workload], may be empty
  std::vector<std::map<std::string, std::string>> info;     // [workload]
  Objective objective = Objective::kCost;
  std::optional<double> deadline_s;

  std::size_t environmentIndex(const std::string& id) const;  // npos when unknown
  std::size_t workloadIndex(const std::string& id) const;

  // The value to minimise, and whether the outcome counts as feasible (completed and, with a
  // deadline, within it).
  double value(const Outcome& o) const { return objective == Objective::kCost ? o.cost : o.runtime_s; }
  bool feasible(const Outcome& o) const {
    return o.has_run && o.completed && std::isfinite(value(o)) &&
           (!deadline_s || o.runtime_s <= *deadline_s);
  }
};

// Sets the price of each environment without a listed price to the median that the given
// workloads' runs imply (NaN when none of them has a completed run with a cost there), and the
// costs derived from it: what a matcher trained on those workloads alone can know.
void implyPrices(OutcomeTable& table, const std::vector<std::size_t>& workloads);

Result<OutcomeTable> buildOutcomeTable(const MatchData& data, Objective objective,
                                       std::optional<double> deadline_s,
                                       const std::string& purchase_option = kOnDemand);

}  // namespace foresight::match
