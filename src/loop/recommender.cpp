#include "foresight/loop/recommender.h"

#include <cmath>

#include "foresight/collect/collector.h"
#include "foresight/core/log.h"

namespace foresight::loop {

namespace {

// The pods kube-state-metrics saw the target own within the request's range (none where it is not
// scraped): owned directly (a StatefulSet's, a Job's, ...), or through a ReplicaSet (a
// Deployment's, a Rollout's) or a Job (a CronJob's) it owned.
Result<std::set<std::string>> earlierPods(const trace::PrometheusQuery& server, const HistoryRequest& h) {
  const std::string range = fmt::format("{}s", std::max<std::int64_t>(1, h.end - h.start));
  const std::string owned_by = fmt::format("namespace={},owner_kind={},owner_name={}", trace::promString(h.ns),
                                           trace::promString(h.target_kind), trace::promString(h.target_name));
  auto sets = trace::readLabelSets(server,
                                   fmt::format("max_over_time(kube_replicaset_owner{{{0}}}[{1}]) or "
                                               "max_over_time(kube_job_owner{{{0}}}[{1}])",
                                               owned_by, range),
                                   h.end);
  if (!sets) return tl::unexpected(sets.error());
  std::vector<std::string> replicasets, jobs;
  for (auto& l : *sets) {
    if (!l["replicaset"].empty()) replicasets.push_back(l["replicaset"]);
    if (!l["job_name"].empty()) jobs.push_back(l["job_name"]);
  }
  std::string query = fmt::format("max_over_time(kube_pod_owner{{{}}}[{}])", owned_by, range);
  for (const auto& [kind, owners] : {std::pair{"ReplicaSet", &replicasets}, {"Job", &jobs}})
    if (!owners->empty())
      query += fmt::format(" or max_over_time(kube_pod_owner{{namespace={},owner_kind=\"{}\",owner_name=~{}}}[{}])",
                           trace::promString(h.ns), kind, trace::promAnyOf(*owners), range);
  sets = trace::readLabelSets(server, query, h.end);
  if (!sets) return tl::unexpected(sets.error());
  std::set<std::string> pods;
  for (auto& l : *sets)
    if (!l["pod"].empty()) pods.insert(l["pod"]);
  return pods;
}

}  // namespace

HistoryReader prometheusHistory(trace::PrometheusQuery server, std::int64_t step_seconds) {
  server.step_seconds = std::max<std::int64_t>(1, step_seconds);
  // A rate needs two scrapes in its window: two minutes hold two at the common 15-60 s intervals.
  const std::int64_t window = std::max<std::int64_t>(server.step_seconds, 120);
  return [server, window](const HistoryRequest& h) -> Result<std::vector<trace::RawSeries>> {
    auto pods = earlierPods(server, h);
    if (!pods) return tl::unexpected(pods.error());
    if (!pods->empty())
      spdlog::debug("recommend: {}/{} {}: {} pods in kube-state-metrics over the history", h.ns, h.target_kind,
                    h.target_name, pods->size());
    pods->insert(h.pods.begin(), h.pods.end());
    trace::PrometheusQuery q = server;
    q.start = h.start;
    q.end = h.end;
    q.promql = trace::podContainerQueries(h.ns, {pods->begin(), pods->end()}, h.containers, window);
    return trace::readPrometheus(q);
  };
}

VpaRecommender::VpaRecommender(allocate::k8s::VpaDiscovery discovery, std::string recommender,
                               std::string ns, Autoscaler& autoscaler, HistoryReader history,
                               std::int64_t history_seconds)
    : discovery_(std::move(discovery)), recommender_(std::move(recommender)), ns_(std::move(ns)),
      autoscaler_(autoscaler), history_(std::move(history)), history_seconds_(history_seconds) {}

void VpaRecommender::warmNewContainers(const allocate::k8s::RecommendedVpa& vpa,
                                       const std::vector<allocate::k8s::ContainerUsage>& usage, Round& r) {
  std::vector<std::string> containers;
  std::set<std::string> pods;
  std::int64_t first = 0;  // the earliest live sample: the history ends before it
  for (const auto& c : usage) {
    if (!vpa.recommends(c.container) || seen_.count(vpa.workload() + "/" + c.container)) continue;
    containers.push_back(c.container);
    pods.insert(c.pod_names.begin(), c.pod_names.end());
    first = first == 0 ? c.time : std::min(first, c.time);
  }
  if (containers.empty() || history_seconds_ <= 0) return;
  // Asked once: a container that starts without its history (the server down) gains its own.
  HistoryRequest h;
  h.ns = vpa.ns;
  h.target_kind = vpa.target_kind;
  h.target_name = vpa.target_name;
  h.pods.assign(pods.begin(), pods.end());
  h.containers = std::move(containers);
  h.start = first - history_seconds_;
  h.end = first - 1;
  auto past = history_(h);
  if (!past) {
    ++r.errors;
    spdlog::warn("recommend: VPA {}: its containers start without their history: {}", vpa.workload(),
                 past.error().message);
    return;
  }
  for (const auto& s : *past) r.history += autoscaler_.warm(vpa.workload() + "/" + s.id, s);
}

Result<VpaRecommender::Round> VpaRecommender::round() {
  auto vpas = discovery_.vpas(recommender_, ns_);
  if (!vpas) return tl::unexpected(vpas.error());
  Round r;
  std::set<std::string> listed;
  std::int64_t newest = 0;  // the newest metrics time this round
  for (const auto& vpa : *vpas) {
    if (leading_ && !leading_()) {
      r.cut_short = true;
      return r;
    }
    listed.insert(vpa.workload());
    // A failed read (a target or the metrics API briefly unavailable) costs the round, not the
    // history: that stays while the VPA does.
    if (!vpa.error.empty()) {  // logged by the discovery
      ++r.errors;
      continue;
    }
    auto usage = discovery_.usage(vpa);
    if (!usage) {
      spdlog::warn("recommend: VPA {} ({}): {}", vpa.workload(), vpa.target(), usage.error().message);
      ++r.errors;
      continue;
    }
    if (!usage->empty()) ++r.vpas;
    if (history_) warmNewContainers(vpa, *usage, r);
    for (const auto& c : *usage) {
      // A container whose policy says mode Off takes no recommendation (the stock recommender's
      // rule); asking would be refused every round.
      if (!vpa.recommends(c.container)) continue;
      const std::string workload = vpa.workload() + "/" + c.container;
      ++r.containers;
      newest = std::max(newest, c.time);
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
  // Forgotten with its history: a container whose VPA was deleted, or that has had no metrics
  // for a day while others had (renamed, or removed from the pods). A target scaled to zero for
  // the night keeps its containers' history.
  for (auto it = seen_.begin(); it != seen_.end();) {
    const std::string vpa = it->first.substr(0, it->first.rfind('/'));
    if (listed.count(vpa) && !(newest > 0 && newest - it->second.time > kForgetAfterSeconds)) {
      ++it;
      continue;
    }
    autoscaler_.forget(it->first);
    it = seen_.erase(it);
  }
  return r;
}

}  // namespace foresight::loop
