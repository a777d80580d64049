#include "foresight/match/outcomes.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

namespace foresight::match {

Result<Objective> parseObjective(const std::string& s) {
  if (s == "cost") return Objective::kCost;
  if (s == "runtime") return Objective::kRuntime;
  return fail(ErrorCode::kInvalidArgument, "unknown objective '{}' (known: cost, runtime)", s);
}

std::size_t OutcomeTable::environmentIndex(const std::string& id) const {
  for (std::size_t i = 0; i < environments.size(); ++i)
    if (environments[i].id == id) return i;
  return std::string::npos;
}

std::size_t OutcomeTable::workloadIndex(const std::string& id) const {
  auto it = std::find(workloads.begin(), workloads.end(), id);
  return it == workloads.end() ? std::string::npos : static_cast<std::size_t>(it - workloads.begin());
}

void implyPrices(OutcomeTable& t, const std::vector<std::size_t>& workloads) {
  for (std::size_t e = 0; e < t.environments.size(); ++e) {
    if (e >= t.price_implied.size() || !t.price_implied[e]) continue;
    std::vector<double> v;
    for (auto w : workloads) {
      const auto& implied = t.outcomes[w][e].implied_price_per_hour;
      v.insert(v.end(), implied.begin(), implied.end());
    }
    if (v.empty()) {
      t.price_per_hour[e] = std::numeric_limits<double>::quiet_NaN();
    } else {
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      t.price_per_hour[e] = v[v.size() / 2];
    }
  }
  for (auto& row : t.outcomes)
    for (std::size_t e = 0; e < t.environments.size(); ++e)
      if (auto& o = row[e]; o.has_run && o.cost_from_price)
        o.cost = o.runtime_s / 3600 * t.price_per_hour[e];
}

Result<OutcomeTable> buildOutcomeTable(const MatchData& data, Objective objective,
                                       std::optional<double> deadline_s,
                                       const std::string& purchase_option) {
  OutcomeTable t;
  t.objective = objective;
  t.deadline_s = deadline_s;
  t.environments = data.catalog.environments;
  const std::size_t m = t.environments.size();
  // Indexed once: histories can hold many thousands of runs.
  std::unordered_map<std::string, std::size_t> workload_of, env_of;
  for (std::size_t e = 0; e < m; ++e) env_of.emplace(t.environments[e].id, e);
  for (const auto& run : data.history.runs)
    if (workload_of.emplace(run.workload, t.workloads.size()).second) t.workloads.push_back(run.workload);
  if (t.workloads.empty()) return fail(ErrorCode::kInvalidArgument, "no runs in the history");
  t.outcomes.assign(t.workloads.size(), std::vector<Outcome>(m));
  // Repeated runs of a workload on an environment: it counts as completing when most runs did,
  // with the geometric mean runtime of those that completed (runtimes are noisy multiplicatively).
  struct Cell {
    int runs = 0, completed = 0, costs_done = 0, costs_all = 0, runtimes = 0;
    double log_runtime = 0, runtime_all = 0, cost_done = 0, cost_all = 0, last_done = 0;
  };
  std::vector<std::vector<Cell>> cells(t.workloads.size(), std::vector<Cell>(m));
  for (const auto& run : data.history.runs) {
    const auto w = workload_of.at(run.workload);
    const auto env = env_of.find(run.env);
    if (env == env_of.end())
      return fail(ErrorCode::kNotFound, "run of '{}' names unknown environment '{}'", run.workload,
                  run.env);
    // The readers refuse these with file and line; here for histories built in code.
    if ((run.completed && !(run.runtime_s > 0)) || run.runtime_s < 0)
      return fail(ErrorCode::kInvalidArgument, "run of '{}' on '{}': {} run with runtime_s {}",
                  run.workload, run.env, run.completed ? "a completed" : "a failed",
                  run.runtime_s);
    const auto e = env->second;
    auto& c = cells[w][e];
    ++c.runs;
    if (!std::isnan(run.runtime_s)) c.runtime_all += run.runtime_s, ++c.runtimes;
    const bool done = run.completed;
    if (done) ++c.completed, c.log_runtime += std::log(run.runtime_s), c.last_done = run.runtime_s;
    if (run.cost) {
      ++c.costs_all, c.cost_all += *run.cost;
      if (done) {
        ++c.costs_done, c.cost_done += *run.cost;
        t.outcomes[w][e].implied_price_per_hour.push_back(*run.cost / run.runtime_s * 3600);
      }
    }
  }
  for (std::size_t w = 0; w < t.workloads.size(); ++w)
    for (std::size_t e = 0; e < m; ++e) {
      const auto& c = cells[w][e];
      auto& o = t.outcomes[w][e];
      if (c.runs == 0) continue;
      o.has_run = true;
      o.completed = 2 * c.completed > c.runs;
      // A failed cell's runtime (and so its cost) is unknown when none of its runs recorded one.
      o.runtime_s = !o.completed       ? (c.runtimes ? c.runtime_all / c.runtimes : NAN)
                    : c.completed == 1 ? c.last_done  // exactly as recorded
                                       : std::exp(c.log_runtime / c.completed);
      if (o.completed && c.costs_done) o.cost = c.cost_done / c.costs_done;
      else if (!o.completed && c.costs_all) o.cost = c.cost_all / c.costs_all;
      else o.cost_from_price = true;
    }
  t.price_per_hour.assign(m, std::numeric_limits<double>::quiet_NaN());
  t.price_implied.assign(m, true);
  for (std::size_t e = 0; e < m; ++e)
    if (auto p = data.catalog.price(t.environments[e], purchase_option))
      t.price_per_hour[e] = *p, t.price_implied[e] = false;
  std::vector<std::size_t> all(t.workloads.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  implyPrices(t, all);
  if (objective == Objective::kCost) {
    for (std::size_t e = 0; e < m; ++e) {
      if (std::isnan(t.price_per_hour[e]))
        return fail(ErrorCode::kInvalidArgument,
                    "environment '{}' has no '{}' price and no run with a cost: use --objective "
                    "runtime or add price_per_hour",
                    t.environments[e].id, purchase_option);
      // Regret is relative to the best cost: a free environment or run would leave it undefined.
      if (!(t.price_per_hour[e] > 0))
        return fail(ErrorCode::kInvalidArgument,
                    "environment '{}' costs 0 per hour ('{}' price): regret relative to a cost of 0 "
                    "is undefined; use --objective runtime or give its price",
                    t.environments[e].id, purchase_option);
    }
    for (std::size_t w = 0; w < t.workloads.size(); ++w)
      for (std::size_t e = 0; e < m; ++e)
        if (t.outcomes[w][e].has_run && t.outcomes[w][e].completed && !(t.outcomes[w][e].cost > 0))
          return fail(ErrorCode::kInvalidArgument,
                      "run of '{}' on '{}' costs 0: regret relative to a cost of 0 is undefined; use "
                      "--objective runtime or give its cost",
                      t.workloads[w], t.environments[e].id);
  }
  for (const auto& w : t.workloads) {
    auto fp = data.history.fingerprints.find(w);
    t.fingerprints.push_back(fp == data.history.fingerprints.end() ? std::map<std::string, double>{}
                                                                   : fp->second);
    auto info = data.history.workload_info.find(w);
    t.info.push_back(info == data.history.workload_info.end()
                         ? std::map<std::string, std::string>{}
                         : info->second);
  }
  return t;
}

}  // namespace foresight::match
