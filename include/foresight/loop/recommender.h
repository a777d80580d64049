#pragma once
// `foresight recommend`: Foresight as a Kubernetes VPA recommender. Each round lists the VPAs
// whose spec.recommenders name it, reads their pods' usage per container (the metrics API, max
// over the pods) and OOM kills, and feeds each container to the autoscaler as a workload
// "namespace/vpa/container"; its backend (kubernetes, mode vpa) writes the recommendation into
// the VPA's status, which the stock VPA updater and admission controller apply.
//
// Thread-safety: none; one thread calls round().

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "foresight/allocate/kubernetes.h"
#include "foresight/loop/autoscaler.h"

namespace foresight::loop {

class VpaRecommender {
 public:
  // `ns` "" = every namespace. The autoscaler's backend must be the kubernetes one in vpa mode
  // for the same recommender (or dry-run).
  VpaRecommender(allocate::k8s::VpaDiscovery discovery, std::string recommender, std::string ns,
                 Autoscaler& autoscaler);

  struct Round {
    std::size_t vpas = 0;        // VPAs naming the recommender whose pods were found
    std::size_t containers = 0;  // containers with usage this round
    std::size_t samples = 0;     // new samples fed (metrics newer than the last one fed)
    std::size_t plans = 0;       // samples that gave a plan (enough history)
    std::size_t errors = 0;      // VPAs or containers that failed this round (logged)
  };
  // One round. Fails only when the VPAs cannot be listed; a VPA that fails is logged and skipped.
  Result<Round> round();

 private:
  allocate::k8s::VpaDiscovery discovery_;
  std::string recommender_, ns_;
  Autoscaler& autoscaler_;
  static constexpr std::int64_t kForgetAfterSeconds = 86400;
  struct Seen {
    std::int64_t time = 0;  // the metrics timestamp last fed
    std::int64_t oom = 0;   // the OOM kill last fed
  };
  std::map<std::string, Seen> seen_;  // by workload
};

}  // namespace foresight::loop
