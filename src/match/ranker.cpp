#include "foresight/match/ranker.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "foresight/core/log.h"

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
  return forEvidence(data, evidence);
}

Result<MatcherRanker> MatcherRanker::forEvidence(const MatchData& data,
                                                 const WorkloadEvidence& evidence) {
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

LiveMatcherRanker::LiveMatcherRanker(MatchData data) : data_(std::move(data)) {
  for (const auto& [w, fp] : data_.history.fingerprints)
    for (const auto& [column, v] : fp) columns_.insert(column);
}

void LiveMatcherRanker::observe(const std::string& workload, std::map<std::string, double> features) {
  std::erase_if(features, [&](const auto& kv) { return !columns_.count(kv.first); });
  std::lock_guard lock(mu_);
  latest_[workload] = std::move(features);
}

void LiveMatcherRanker::forget(const std::string& workload) {
  std::lock_guard lock(mu_);
  latest_.erase(workload);
}

std::vector<std::string> LiveMatcherRanker::rank(const allocate::CapacityRequest& request,
                                                 const allocate::PriceCatalog& catalog) const {
  WorkloadEvidence evidence;
  {
    std::lock_guard lock(mu_);
    if (auto it = latest_.find(request.workload); it != latest_.end()) evidence.fingerprint = it->second;
  }
  if (evidence.fingerprint.empty()) {
    spdlog::info("{}: matcher: no fingerprint sharing a column with the history yet; machine types "
                 "in catalog order", request.workload);
    return fallback_.rank(request, catalog);
  }
  auto ranker = MatcherRanker::forEvidence(data_, evidence);
  if (!ranker) {
    spdlog::warn("{}: matcher: {}; machine types in catalog order", request.workload,
                 ranker.error().message);
    return fallback_.rank(request, catalog);
  }
  auto order = ranker->rank(request, catalog);
  if (order.empty()) {
    spdlog::warn("{}: matcher: none of its machine types ({}) is in the price catalog; machine types "
                 "in catalog order", request.workload, fmt::join(ranker->order(), ", "));
    return fallback_.rank(request, catalog);
  }
  spdlog::info("{}: matcher ranks {} from {} fingerprint features: {}", request.workload,
               fmt::format("{}", fmt::join(order, " > ")), evidence.fingerprint.size(),
               ranker->explanation());
  return order;
}

}  // namespace foresight::match
