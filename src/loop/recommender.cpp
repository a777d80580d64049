#include "foresight/loop/recommender.h"

#include <atomic>
#include <cmath>
#include <thread>

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
  auto sets = trace::readInstant(server,
                                   fmt::format("max_over_time(kube_replicaset_owner{{{0}}}[{1}]) or "
                                               "max_over_time(kube_job_owner{{{0}}}[{1}])",
                                               owned_by, range),
                                   h.end);
  if (!sets) return tl::unexpected(sets.error());
  std::vector<std::string> replicasets, jobs;
  for (auto& [l, value] : *sets) {
    if (!l["replicaset"].empty()) replicasets.push_back(l["replicaset"]);
    if (!l["job_name"].empty()) jobs.push_back(l["job_name"]);
  }
  std::string query = fmt::format("max_over_time(kube_pod_owner{{{}}}[{}])", owned_by, range);
  for (const auto& [kind, owners] : {std::pair{"ReplicaSet", &replicasets}, {"Job", &jobs}})
    if (!owners->empty())
      query += fmt::format(" or max_over_time(kube_pod_owner{{namespace={},owner_kind=\"{}\",owner_name=~{}}}[{}])",
                           trace::promString(h.ns), kind, trace::promAnyOf(*owners), range);
  sets = trace::readInstant(server, query, h.end);
  if (!sets) return tl::unexpected(sets.error());
  std::set<std::string> pods;
  for (auto& [l, value] : *sets)
    if (!l["pod"].empty()) pods.insert(l["pod"]);
  return pods;
}

// The window of a rate() at `step_seconds`: a rate needs two scrapes in its window, and two
// minutes hold two at the common 15-60 s intervals.
std::int64_t rateWindow(std::int64_t step_seconds) { return std::max<std::int64_t>(step_seconds, 120); }

}  // namespace

HistoryReader prometheusHistory(trace::PrometheusQuery server, std::int64_t step_seconds) {
  server.step_seconds = std::max<std::int64_t>(1, step_seconds);
  const std::int64_t window = rateWindow(server.step_seconds);
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
    q.promql = trace::podContainerQueries(h.ns, {pods->begin(), pods->end()}, h.containers, window, h.max_cpus);
    return trace::readPrometheus(q);
  };
}

ThrottlingReader prometheusThrottling(trace::PrometheusQuery server, std::int64_t step_seconds) {
  const std::int64_t window_seconds = rateWindow(step_seconds);
  return [server, window_seconds](const std::string& ns, std::int64_t time) -> Result<std::map<std::string, double>> {
    auto samples = trace::readInstant(server, trace::namespaceThrottlingQuery(ns, window_seconds), time);
    if (!samples) return tl::unexpected(samples.error());
    std::map<std::string, double> out;
    for (auto& [labels, value] : *samples)
      if (std::isfinite(value) && value > 0) out[labels["pod"] + "/" + labels["container"]] = value;
    return out;
  };
}

VpaRecommender::VpaRecommender(allocate::k8s::VpaDiscovery discovery, std::string recommender,
                               std::string ns, Autoscaler& autoscaler, HistoryReader history,
                               std::int64_t history_seconds)
    : discovery_(std::move(discovery)), recommender_(std::move(recommender)), ns_(std::move(ns)),
      autoscaler_(autoscaler), history_(std::move(history)), history_seconds_(history_seconds) {}

std::optional<HistoryRequest> VpaRecommender::historyRequest(const allocate::k8s::RecommendedVpa& vpa,
                                                             const std::vector<allocate::k8s::ContainerUsage>& usage) {
  std::vector<std::string> containers;
  std::set<std::string> pods;
  std::int64_t first = 0;  // the earliest live sample: the history ends before it
  for (const auto& c : usage) {
    if (!vpa.recommends(c.container) || seen_.count(vpa.workload() + "/" + c.container)) continue;
    containers.push_back(c.container);
    pods.insert(c.pod_names.begin(), c.pod_names.end());
    first = first == 0 ? c.time : std::min(first, c.time);
  }
  if (containers.empty() || history_seconds_ <= 0 || !history_) return std::nullopt;
  HistoryRequest h;
  h.ns = vpa.ns;
  h.target_kind = vpa.target_kind;
  h.target_name = vpa.target_name;
  h.pods.assign(pods.begin(), pods.end());
  h.containers = std::move(containers);
  h.start = first - history_seconds_;
  h.end = first - 1;
  if (throttling_) {  // the past as demand too, as the live samples
    std::set<std::string> nodes;
    for (const auto& c : usage) nodes.insert(c.pod_nodes.begin(), c.pod_nodes.end());
    for (const auto& n : nodes) {
      auto cpus = discovery_.nodeCpus(n);
      if (cpus)
        h.max_cpus = std::max(h.max_cpus, *cpus);
      else
        noteDemandError(cpus.error().message);
    }
  }
  return h;
}

std::vector<Result<std::vector<trace::RawSeries>>> VpaRecommender::readHistories(
    const std::vector<HistoryRequest>& requests) const {
  std::vector<Result<std::vector<trace::RawSeries>>> out(requests.size(), std::vector<trace::RawSeries>{});
  // Several at once: after a restart every VPA asks, and each asks Prometheus four times; one
  // after another, a thousand VPAs would wait for four thousand round trips.
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next++) < requests.size();) out[i] = history_(requests[i]);
  };
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < std::min(kHistoryReaders, requests.size()); ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  return out;
}

void VpaRecommender::reportConditions(const allocate::k8s::RecommendedVpa& vpa, bool pods_matched, Round& r) {
  if (!report_conditions_) return;
  auto written = discovery_.reportConditions(vpa, pods_matched);
  if (!written) {
    ++r.errors;
    spdlog::warn("recommend: {}", written.error().message);
  }
}

// Every round would flood the log.
void VpaRecommender::noteDemandError(const std::string& error) {
  if (!demand_errors_.count(error))
    spdlog::warn("recommend: cpu demand is usage only where throttling or a node's CPUs cannot be read: {}", error);
  demand_errors_now_.insert(error);
}

double VpaRecommender::cpuDemand(const allocate::k8s::RecommendedVpa& vpa, const allocate::k8s::ContainerUsage& c,
                                 std::map<std::string, std::map<std::string, double>>& by_namespace) {
  if (!throttling_) return NAN;
  auto it = by_namespace.find(vpa.ns);
  if (it == by_namespace.end()) {  // once a namespace and round
    auto read = throttling_(vpa.ns, c.time);
    if (!read) noteDemandError(read.error().message);
    it = by_namespace.emplace(vpa.ns, read ? std::move(*read) : std::map<std::string, double>{}).first;
  }
  double demand = NAN;
  for (std::size_t i = 0; i < c.pod_names.size(); ++i) {
    const auto t = it->second.find(c.pod_names[i] + "/" + c.container);
    if (t == it->second.end()) continue;
    auto cpus = discovery_.nodeCpus(c.pod_nodes[i]);
    if (!cpus) {
      noteDemandError(cpus.error().message);
      continue;
    }
    const double d = collect::cpuDemand(c.pod_cpu[i], t->second, *cpus);
    demand = std::isnan(demand) ? d : std::max(demand, d);
  }
  return demand;
}

Result<VpaRecommender::Round> VpaRecommender::round() {
  auto vpas = discovery_.vpas(recommender_, ns_);
  if (!vpas) return tl::unexpected(vpas.error());
  Round r;
  demand_errors_now_.clear();
  std::set<std::string> listed;
  for (const auto& vpa : *vpas) listed.insert(vpa.workload());
  // First every VPA's usage (its namespace listed once) and the history its new containers ask
  // for, read side by side; then the samples, VPA by VPA.
  std::vector<Result<std::vector<allocate::k8s::ContainerUsage>>> usages;
  std::vector<HistoryRequest> requests;
  std::vector<std::size_t> requested_by;  // index into *vpas
  for (std::size_t i = 0; i < vpas->size(); ++i) {
    const auto& vpa = (*vpas)[i];
    if (!vpa.error.empty()) {  // logged by the discovery
      usages.emplace_back(std::vector<allocate::k8s::ContainerUsage>{});
      continue;
    }
    usages.push_back(discovery_.usage(vpa));
    if (!usages.back()) continue;
    if (auto h = historyRequest(vpa, *usages.back())) {
      requests.push_back(std::move(*h));
      requested_by.push_back(i);
    }
  }
  std::map<std::size_t, Result<std::vector<trace::RawSeries>>> pasts;
  if (!requests.empty() && !(leading_ && !leading_())) {
    auto read = readHistories(requests);
    for (std::size_t k = 0; k < read.size(); ++k) pasts.emplace(requested_by[k], std::move(read[k]));
  }
  std::int64_t newest = 0;  // the newest metrics time this round
  std::map<std::string, std::map<std::string, double>> throttled;  // by namespace, read when first needed
  for (std::size_t i = 0; i < vpas->size(); ++i) {
    const auto& vpa = (*vpas)[i];
    if (leading_ && !leading_()) {
      r.cut_short = true;
      return r;
    }
    // A failed read (a target or the metrics API briefly unavailable) costs the round, not the
    // history: that stays while the VPA does.
    if (!vpa.error.empty()) {
      ++r.errors;
      reportConditions(vpa, false, r);
      continue;
    }
    const auto& usage = usages[i];
    if (!usage) {
      spdlog::warn("recommend: VPA {} ({}): {}", vpa.workload(), vpa.target(), usage.error().message);
      ++r.errors;
      continue;
    }
    if (!usage->empty()) ++r.vpas;
    // Asked once: a container that starts without its history (the server down) gains its own.
    if (auto past = pasts.find(i); past != pasts.end()) {
      if (!past->second) {
        ++r.errors;
        spdlog::warn("recommend: VPA {}: its containers start without their history: {}", vpa.workload(),
                     past->second.error().message);
      } else {
        for (const auto& s : *past->second) r.history += autoscaler_.warm(vpa.workload() + "/" + s.id, s);
      }
    }
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
      // recommender may have been restarted just after it. An older one that the pod's status
      // still shows keeps the rest of its hold (a day by default), also where this replica's
      // audit trail never saw it: another replica held the lease then, or it ran in dry-run.
      if (first) {
        seen.oom = c.time - 3600;
        if (c.oom_limit > 0 && c.oom_time <= seen.oom)
          autoscaler_.rememberOomKill(workload, c.oom_time, collect::memoryDemandAfterOomKill(c.oom_limit));
      }
      if (c.time <= seen.time) continue;  // the metrics API has nothing newer yet
      seen.time = c.time;
      std::array<double, kResourceCount> use{c.cpu, c.memory, NAN, NAN};
      std::optional<std::array<double, kResourceCount>> demand;
      if (const double cpu = cpuDemand(vpa, c, throttled); cpu > c.cpu) {
        demand = use;
        (*demand)[index(Resource::kCpu)] = cpu;
      }
      if (c.oom_time > seen.oom && c.oom_limit > 0) {
        seen.oom = c.oom_time;
        if (!demand) demand = use;
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
    reportConditions(vpa, !usage->empty(), r);
  }
  demand_errors_ = std::move(demand_errors_now_);
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
