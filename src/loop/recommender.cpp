#include "foresight/loop/recommender.h"

#include <cmath>

#include "foresight/collect/collector.h"
#include "foresight/core/log.h"

namespace foresight::loop {

VpaRecommender::VpaRecommender(allocate::k8s::VpaDiscovery discovery, std::string recommender,
                               std::string ns, Autoscaler& autoscaler)
    : discovery_(std::move(discovery)), recommender_(std::move(recommender)), ns_(std::move(ns)),
      autoscaler_(autoscaler) {}

Result<VpaRecommender::Round> VpaRecommender::round() {
  auto vpas = discovery_.vpas(recommender_, ns_);
  if (!vpas) return tl::unexpected(vpas.error());
  Round r;
  std::set<std::string> present;
  for (const auto& vpa : *vpas) {
    // Its containers stay known through a failed read (a target or the metrics API briefly
    // unavailable): only a VPA that is gone drops their history.
    const auto keep = [&] {
      ++r.errors;
      for (const auto& [w, s] : seen_)
        if (w.rfind(vpa.workload() + "/", 0) == 0) present.insert(w);
    };
    if (!vpa.error.empty()) {  // logged by the discovery
      keep();
      continue;
    }
    auto usage = discovery_.usage(vpa);
    if (!usage) {
      spdlog::warn("recommend: VPA {} ({}): {}", vpa.workload(), vpa.target, usage.error().message);
      keep();
      continue;
    }
    if (!usage->empty()) ++r.vpas;
    for (const auto& c : *usage) {
      // A container whose policy says mode Off takes no recommendation (the stock recommender's
      // rule); asking would be refused every round.
      if (!vpa.recommends(c.container)) continue;
      const std::string workload = vpa.workload() + "/" + c.container;
      present.insert(workload);
      ++r.containers;
      auto [it, first] = seen_.try_emplace(workload);
      Seen& seen = it->second;
      // A kill up to an hour before the recommender first saw the container still counts: the
      // recommender may have been restarted just after it.
      if (first) seen.oom = c.time - 3600;
      if (c.time <= seen.time) continue;  // the metrics API has nothing newer yet
      seen.time = c.time;
      std::array<double, kResourceCount> use{c.cpu, c.memory, NAN, NAN};
      std::optional<std::array<double, kResourceCount>> demand;
      if (c.oom_time > seen.oom && c.oom_limit > 0) {
        seen.oom = c.oom_time;
        demand = use;
        (*demand)[index(Resource::kMemory)] =
            std::max(c.memory, collect::memoryDemandAfterOomKill(c.oom_limit));
        spdlog::warn("recommend: {} was OOM-killed at a memory limit of {}", workload,
                     allocate::formatBytes(c.oom_limit));
      }
      ++r.samples;
      auto plan = autoscaler_.observe(workload, c.time, use, demand);
      if (!plan) {
        ++r.errors;
        spdlog::warn("recommend: {}: {}", workload, plan.error().message);
      } else if (*plan) {
        ++r.plans;
      }
    }
  }
  // A VPA deleted, or a container gone from its pods: forgotten with its history.
  for (auto it = seen_.begin(); it != seen_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    autoscaler_.forget(it->first);
    it = seen_.erase(it);
  }
  return r;
}

}  // namespace foresight::loop
