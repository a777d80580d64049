#include "foresight/match/ranker.h"

#include <algorithm>

#include "foresight/match/matcher.h"
#include "foresight/match/outcomes.h"

namespace foresight::match {

Result<MatcherRanker> MatcherRanker::forWorkload(const MatchData& data, const std::string& workload) {
  WorkloadEvidence evidence;
  for (const auto& r : data.history.runs)
    if (r.workload == workload) evidence.probes.push_back({r.env, r.completed, r.runtime_s});
  if (auto it = data.history.fingerprints.find(workload); it != data.history.fingerprints.end())
    evidence.fingerprint = it->second;
  if (evidence.probes.empty() && evidence.fingerprint.empty())
    return fail(ErrorCode::kNotFound, "workload '{}': no runs and no fingerprint in the history",
                workload);
  // Cost where the history has prices (what the cost model minimises too), else runtime.
  auto table = buildOutcomeTable(data, Objective::kCost, std::nullopt);
  if (!table) table = buildOutcomeTable(data, Objective::kRuntime, std::nullopt);
  if (!table) return tl::unexpected(table.error());
  auto ranking = recommendEnvironments(*table, evidence, MatcherOptions{});
  if (!ranking) return tl::unexpected(ranking.error());
  MatcherRanker r;
  r.explanation_ = ranking->explanation;
  for (const auto& e : ranking->environments) {
    const Environment* env = data.catalog.find(e.env);
    std::string type = e.env;
    if (env)
      if (auto it = env->labels.find("instance_type"); it != env->labels.end()) type = it->second;
    if (std::find(r.order_.begin(), r.order_.end(), type) == r.order_.end())
      r.order_.push_back(type);
  }
  return r;
}

std::vector<std::string> MatcherRanker::rank(const allocate::CapacityRequest&,
                                             const allocate::PriceCatalog& catalog) const {
  std::vector<std::string> out;
  for (const auto& t : order_)
    if (catalog.find(t)) out.push_back(t);
  return out;
}

}  // namespace foresight::match
