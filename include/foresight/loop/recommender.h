#pragma once
// `foresight recommend`: Foresight as a Kubernetes VPA recommender. Each round lists the VPAs
// whose spec.recommenders name it, reads their pods' usage per container (the metrics API, max
// over the pods) and OOM kills, and feeds each container to the autoscaler as a workload
// "namespace/vpa/container"; its backend (kubernetes, mode vpa) writes the recommendation into
// the VPA's status, which the stock VPA updater and admission controller apply.
//
// Thread-safety: none; one thread calls round().

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "foresight/allocate/kubernetes.h"
#include "foresight/loop/autoscaler.h"
#include "foresight/trace/prometheus.h"

namespace foresight::loop {

// What a VPA's containers did over [start, end] (Unix seconds).
struct HistoryRequest {
  std::string ns;
  std::string target_kind, target_name;       // the VPA's target ("Deployment", "web")
  std::vector<std::string> pods;              // the pods that run the containers now
  std::vector<std::string> containers;
  std::int64_t start = 0, end = 0;
  // > 0: cpu as demand (usage plus CFS throttling), at most this many CPUs, the most of the
  // nodes the pods run on now; 0: usage.
  double max_cpus = 0;
};
// The answer: the most any of the target's pods used at each step, one series per container
// (its id the container's name), cpu in cores and memory in bytes, at the recommender's period.
// Called from several threads at once (a round's new VPAs are read side by side).
using HistoryReader = std::function<Result<std::vector<trace::RawSeries>>(const HistoryRequest&)>;
// From a Prometheus server's cAdvisor metrics (trace::podContainerQueries), at `step_seconds`
// (`server`'s url, token and timeout; its range and queries are set per call). The pods are those
// that run now and, where Prometheus also scrapes kube-state-metrics, those the target ran before
// within the range (kube_pod_owner, through kube_replicaset_owner for a Deployment's or a
// Rollout's ReplicaSets, kube_job_owner for a CronJob's Jobs): after a rollout, the old pods'
// history counts too.
HistoryReader prometheusHistory(trace::PrometheusQuery server, std::int64_t step_seconds);

// Each container's CFS throttled seconds per second in namespace `ns` around `time` (Unix
// seconds), by "pod/container": the cpu it wanted above its limit, which the metrics API does not
// show.
using ThrottlingReader = std::function<Result<std::map<std::string, double>>(const std::string& ns, std::int64_t time)>;
// From cAdvisor's container_cpu_cfs_throttled_seconds_total in Prometheus, read every
// `step_seconds` (the recommender's period): its rate over the history's window, summed per scrape
// job and the most of any job (as the history's usage).
ThrottlingReader prometheusThrottling(trace::PrometheusQuery server, std::int64_t step_seconds);

class VpaRecommender {
 public:
  // `ns` "" = every namespace. The autoscaler's backend must be the kubernetes one in vpa mode
  // for the same recommender (or dry-run).
  // `history`, when given, is asked once for the last `history_seconds` of each container the
  // recommender has not seen before (all of them after its own restart), so that it recommends
  // at once rather than after --min-history, from what the container did rather than from minutes.
  VpaRecommender(allocate::k8s::VpaDiscovery discovery, std::string recommender, std::string ns,
                 Autoscaler& autoscaler, HistoryReader history = {}, std::int64_t history_seconds = 86400);

  struct Round {
    std::size_t vpas = 0;        // VPAs naming the recommender whose pods were found
    std::size_t containers = 0;  // containers with usage this round
    std::size_t samples = 0;     // new samples fed (metrics newer than the last one fed)
    std::size_t plans = 0;       // samples that gave a plan (enough history)
    std::size_t errors = 0;      // VPAs or containers that failed this round (logged)
    std::size_t history = 0;     // past samples fed from the history (containers seen first)
    bool cut_short = false;      // stopped before its end: no longer leading (onlyWhile)
  };
  // One round. Fails only when the VPAs cannot be listed; a VPA that fails is logged and skipped.
  Result<Round> round();
  // Rounds go on only while `leading` says so, checked before each VPA (leader election: a replica
  // that lost its lease mid-round stops there). A round cut short forgets nothing.
  void onlyWhile(std::function<bool()> leading) { leading_ = std::move(leading); }
  // With `throttling`, a container's cpu demand is its usage plus its throttled time per second,
  // pod by pod, at most its node's CPUs (collect::cpuDemand, as `run` has it from the cgroup);
  // without, or where it cannot be read (warned in the round that starts, not again while it
  // lasts), its usage.
  void throttlingFrom(ThrottlingReader throttling) { throttling_ = std::move(throttling); }
  // Keep each VPA's status.conditions as the stock recommender does (VpaDiscovery::reportConditions;
  // the discovery needs the listing). Off in a dry run, which writes nothing.
  void reportConditions(bool on) { report_conditions_ = on; }

 private:
  // What `vpa`'s containers not seen before ask of the history (none: all seen, or no reader).
  std::optional<HistoryRequest> historyRequest(const allocate::k8s::RecommendedVpa& vpa,
                                               const std::vector<allocate::k8s::ContainerUsage>& usage);
  void reportConditions(const allocate::k8s::RecommendedVpa& vpa, bool pods_matched, Round& r);
  bool report_conditions_ = false;
  // Warned in the first round it happens, not again while it goes on.
  void noteDemandError(const std::string& error);
  // The answers, in order, read by up to kHistoryReaders threads at once.
  std::vector<Result<std::vector<trace::RawSeries>>> readHistories(const std::vector<HistoryRequest>& requests) const;
  static constexpr std::size_t kHistoryReaders = 8;
  allocate::k8s::VpaDiscovery discovery_;
  std::string recommender_, ns_;
  Autoscaler& autoscaler_;
  HistoryReader history_;
  std::int64_t history_seconds_;
  std::function<bool()> leading_;
  ThrottlingReader throttling_;
  std::set<std::string> demand_errors_, demand_errors_now_;  // last round's (logged), this round's
  // `vpa`'s container `c`'s cpu demand (cores), the most of its pods', from `by_namespace` (this
  // round's throttling by namespace, then by "pod/container"; read when first needed): NaN where
  // it is only its usage.
  double cpuDemand(const allocate::k8s::RecommendedVpa& vpa, const allocate::k8s::ContainerUsage& c,
                   std::map<std::string, std::map<std::string, double>>& by_namespace);
  static constexpr std::int64_t kForgetAfterSeconds = 86400;
  struct Seen {
    std::int64_t time = 0;  // the metrics timestamp last fed
    std::int64_t oom = 0;   // the OOM kill last fed
  };
  std::map<std::string, Seen> seen_;  // by workload
};

}  // namespace foresight::loop
