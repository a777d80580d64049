#pragma once
// Kubernetes backend, two modes (option mode=):
//   resize  in-place pod resize: PATCH /api/v1/namespaces/{ns}/pods/{pod}/resize with a
//           strategic merge patch of spec.containers[].resources (requests = limits = target),
//           then watches the pod: PodResizePending/Infeasible, or no completion within the
//           timeout, puts the previous resources back and fails. Workload: "ns/pod[/container]".
//   vpa     custom VPA recommender: for a VerticalPodAutoscaler whose spec.recommenders names
//           this recommender (default "foresight"), writes
//           status.recommendation.containerRecommendations[] (target, lowerBound, upperBound,
//           uncappedTarget) with a JSON patch on the status subresource, as the stock
//           recommender does; the stock VPA updater applies it. Workload: "ns/vpa/container".
// Auth from a kubeconfig (token, client certificate; exec plugins are not supported) or the
// in-cluster service account. TLS is always verified; insecure-skip-tls-verify is refused. Token,
// client certificate, key and CA given as files are read again when the files change.
// Only tested against a fake HTTP server that checks the documented wire format.
//
// Thread-safety: none; one backend per thread.

#include <memory>
#include <optional>
#include <string>

#include "foresight/allocate/backend.h"

namespace foresight::allocate::k8s {

// Where and how to reach the API server.
struct ClusterAccess {
  std::string server;  // https://host:port (http:// only for a local proxy or test server)
  std::string ca_pem;  // CA bundle (PEM) to verify the server; empty = system trust store
  std::string token;   // bearer token
  std::string token_file;  // where `token` came from, read again when it changes (rotation)
  std::string client_cert_pem, client_key_pem;
  // The files the PEMs above came from (empty: given inline as *-data). Read again when they
  // change, as client-go does: a client certificate renewed by cert-manager or kubeadm, the
  // cluster CA rotated in a pod's service-account volume.
  std::string ca_file, client_cert_file, client_key_file;
  std::string default_namespace = "default";
  std::string context;  // the kubeconfig context used (the current one unless named); in-cluster: ""
};

// kubeconfig: `context` empty = current-context. Errors name the file and the missing entry.
Result<ClusterAccess> loadKubeconfig(const std::string& path, const std::string& context);
// In-cluster: KUBERNETES_SERVICE_HOST/PORT and the service account files under `sa_dir`.
Result<ClusterAccess> loadInCluster(const std::string& sa_dir);

// Kubernetes resource quantities: "1500m", "2", "512Mi", "1G", "1e3".
Result<double> parseQuantity(const std::string& q);
// cpu as millicores ("1500m", rounded up), memory as whole bytes ("536870912").
std::string formatCpu(double cores);
std::string formatMemory(double bytes);

struct Settings {
  std::string mode = "resize";  // resize | vpa
  std::string recommender = "foresight";
  int resize_timeout_seconds = 60;  // how long to watch the pod for the kubelet's answer
  double lower_ratio = 0.9;     // vpa: lowerBound = target * lower_ratio
  double upper_ratio = 1.2;     // vpa: upperBound = target * upper_ratio
  std::map<std::string, std::string> pinned;  // see Backend::pinned()
};

std::unique_ptr<Backend> makeBackend(ClusterAccess access, Settings settings);

// vpa mode: writes a recommendation whose lowerBound/upperBound come from the forecast (e.g.
// Plan::lower and Plan::upper) instead of target x lower_ratio/upper_ratio. `backend` must come
// from makeBackend() or the registry in vpa mode.
Status recommend(Backend& backend, const std::string& workload, const Allocation& target,
                 const Allocation& lower, const Allocation& upper);

}  // namespace foresight::allocate::k8s
