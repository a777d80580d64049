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

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  std::string kubeconfig;  // the file read (accessFrom); in-cluster: ""
};

// kubeconfig: `context` empty = current-context. Errors name the file and the missing entry.
Result<ClusterAccess> loadKubeconfig(const std::string& path, const std::string& context);
// In-cluster: KUBERNETES_SERVICE_HOST/PORT and the service account files under `sa_dir`.
Result<ClusterAccess> loadInCluster(const std::string& sa_dir);
// As the backend options say, as kubectl looks: option `kubeconfig` (and `context`), else
// $KUBECONFIG (its first file), else ~/.kube/config, else the in-cluster service account (option
// `service_account_dir`, default /var/run/secrets/kubernetes.io/serviceaccount).
Result<ClusterAccess> accessFrom(const BackendOptions& o);

// Kubernetes resource quantities: "1500m", "2", "512Mi", "1G", "1e3".
Result<double> parseQuantity(const std::string& q);
// cpu as millicores ("1500m", rounded up), memory as whole bytes ("536870912").
std::string formatCpu(double cores);
std::string formatMemory(double bytes);

// The VPAs as `foresight recommend`'s listing returned them this round, by API path, shared by
// VpaDiscovery (which replaces them with each listing) and the vpa backend (which reads a VPA from
// here instead of a GET, and puts back what its status write returns): one GET fewer per
// container and round. Only this recommender writes these VPAs' status (their spec.recommenders
// name it), so the listing is as fresh as the round, as an informer's cache would be.
class VpaObjects {
 public:
  void replaceAll(std::map<std::string, nlohmann::json> by_path) { objects_ = std::move(by_path); }
  const nlohmann::json* find(const std::string& path) const {
    auto it = objects_.find(path);
    return it == objects_.end() ? nullptr : &it->second;
  }
  void put(const std::string& path, nlohmann::json object) { objects_[path] = std::move(object); }
  void erase(const std::string& path) { objects_.erase(path); }

 private:
  std::map<std::string, nlohmann::json> objects_;
};
// A VPA's API path.
std::string vpaPath(const std::string& ns, const std::string& name);

struct Settings {
  std::string mode = "resize";  // resize | vpa
  std::shared_ptr<VpaObjects> listed;  // vpa: the recommender's listing (null: GET each VPA)
  std::string recommender = "foresight";
  int resize_timeout_seconds = 60;  // how long to watch the pod for the kubelet's answer
  // vpa: lowerBound = target * lower_ratio, upperBound = target * upper_ratio, unless
  // applyWithin() gives the forecast's bounds (the loop's plans do).
  double lower_ratio = 0.9;
  double upper_ratio = 1.2;
  std::map<std::string, std::string> pinned;  // see Backend::pinned()
};

std::unique_ptr<Backend> makeBackend(ClusterAccess access, Settings settings);
// The registry's backend (makeKubernetesBackend: settings from the options, the server and
// kubeconfig pinned for a rollback), on `resolved` access when given (accessFrom(options) already
// called), else accessFrom(options); in vpa mode reading VPAs from `listed` where it has them.
std::unique_ptr<Backend> makeBackend(const BackendOptions& options, const ClusterAccess* resolved,
                                     std::shared_ptr<VpaObjects> listed = nullptr);


// ---------------------------------------------------------------------------------------------
// What `foresight recommend` reads of a cluster to act as a VPA recommender: the VPAs that name it,
// their pods' usage (the metrics API, as the stock recommender reads it) and OOM kills.

// A VerticalPodAutoscaler whose spec.recommenders names the recommender, with its target's pods.
struct RecommendedVpa {
  std::string ns, name;
  std::string target_kind, target_name;  // spec.targetRef's ("Deployment", "web")
  std::string selector;  // the target's pods as a labelSelector ("app=web,tier in (a,b)")
  std::string error;     // why the target did not resolve to a selector ("" when it did)
  // spec.resourcePolicy.containerPolicies[].mode by containerName ("*": the others').
  std::map<std::string, std::string> modes;
  std::string workload() const { return ns + "/" + name; }  // + "/container": the vpa backend's name
  std::string target() const { return target_kind + "/" + target_name; }  // for messages
  // Whether the VPA takes recommendations for `container` (its policy's mode is not Off).
  bool recommends(const std::string& container) const {
    auto it = modes.find(container);
    if (it == modes.end()) it = modes.find("*");
    return it == modes.end() || it->second != "Off";
  }
};

// One container (by name) across a VPA's pods: the most any pod used (a recommendation is per
// container and must fit every pod), at the newest of the pods' metrics timestamps.
struct ContainerUsage {
  std::string container;
  std::int64_t time = 0;  // Unix seconds
  double cpu = 0;         // cores
  double memory = 0;      // working-set bytes
  std::vector<std::string> pod_names;  // the pods that run it
  std::vector<double> pod_cpu;          // each one's cpu (cores), as pod_names
  std::vector<std::string> pod_nodes;   // each one's node (spec.nodeName; "" not scheduled)
  // The latest OOM kill of this container in any pod (lastState.terminated.reason OOMKilled):
  // when, and the memory limit it ran under (0: none set).
  std::int64_t oom_time = 0;
  double oom_limit = 0;
};

// A label selector in the API's string form ("app=web,tier in (a,b),!canary", as
// k8s.io/apimachinery/pkg/labels parses it: =, ==, !=, in, notin, exists, !exists, > and <),
// matched against a pod's labels, so that one listing of a namespace's pods serves all its VPAs.
// Written here because no C++ library implements the grammar.
class LabelSelector {
 public:
  static Result<LabelSelector> parse(const std::string& text);
  bool matches(const std::map<std::string, std::string>& labels) const;

 private:
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist, kGreater, kLess };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Requirement> requirements_;
};

class ApiClient;

class VpaDiscovery {
 public:
  // The selector of a Deployment, StatefulSet, DaemonSet, ReplicaSet or Job cannot change (the API
  // refuses an update of it), so it is read again only after `selector_ttl_seconds`, for a target
  // deleted and created anew under its name; other kinds' selectors are read every round.
  // Each listing replaces `listed` (when given) with the VPAs that name the recommender.
  explicit VpaDiscovery(ClusterAccess access, double selector_ttl_seconds = 600,
                        std::shared_ptr<VpaObjects> listed = nullptr);
  VpaDiscovery(VpaDiscovery&&) noexcept;
  VpaDiscovery& operator=(VpaDiscovery&&) noexcept;
  ~VpaDiscovery();
  // The VPAs of `ns` ("" = every namespace) that name `recommender`. One whose target does not
  // resolve to a pod selector comes with `error` set (logged once per change), not an error for
  // the others.
  Result<std::vector<RecommendedVpa>> vpas(const std::string& recommender, const std::string& ns);
  // Its pods' usage per container (empty: no pod has metrics yet). The pods and their metrics
  // are listed once per namespace and round (the first VPA of the namespace asks; vpas() starts
  // a round), as the stock recommender lists PodMetrics once: two requests per namespace instead
  // of two per VPA.
  Result<std::vector<ContainerUsage>> usage(const RecommendedVpa& vpa);
  // The VPA's status.conditions as the stock recommender keeps them, for `kubectl describe vpa`:
  // ConfigUnsupported (its target did not resolve: `vpa.error`), NoPodsMatched (none of the
  // target's pods has metrics), RecommendationProvided (whether its status holds one). Others'
  // conditions are kept. Written (a status PATCH) only when one changes; a condition that stays
  // keeps its lastTransitionTime. Needs the listing (`listed`); false: nothing to write.
  Result<bool> reportConditions(const RecommendedVpa& vpa, bool pods_matched);
  // A node's CPUs (status.capacity.cpu): what a container's cpu demand cannot pass. The nodes are
  // listed again after 10 minutes, or after a minute when `node` is not among them (a new node).
  Result<double> nodeCpus(const std::string& node);

 private:
  struct ListedPods;
  Result<std::string> selectorOf(const std::string& ns, const nlohmann::json& target_ref);
  const ListedPods& listPods(const std::string& ns);
  std::unique_ptr<ApiClient> api_;
  std::map<std::string, std::unique_ptr<ListedPods>> round_pods_;  // by namespace, this round's
  std::map<std::string, double> node_cpus_;
  double nodes_read_at_ = -1e18;  // steady clock, seconds
  std::string nodes_error_;       // why the last listing failed ("" when it did not)
  std::map<std::string, std::string> unresolved_;  // VPA -> the error logged for it
  struct Cached {
    std::string selector;
    double read_at = 0;  // steady clock, seconds
  };
  double selector_ttl_seconds_;
  std::shared_ptr<VpaObjects> listed_;
  std::map<std::string, Cached> selectors_;  // by namespace and targetRef; pruned to those in use
};

// "2026-12-05T21:40:00Z" (fractions and offsets allowed) as Unix seconds.
Result<std::int64_t> parseRfc3339(const std::string& text);

// ---------------------------------------------------------------------------------------------
// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does
// it (the stock VPA recommender's --leader-elect), so that of several replicas of `foresight
// recommend` one writes at a time. The holder renews the lease every `retry_seconds`; another
// takes it once it has seen the same record unchanged for `lease_seconds` on its own clock (so
// clocks need not agree), or at once when the holder released it on a clean stop. Every write is
// a PUT with the resourceVersion read, so two candidates cannot both win a round.
struct LeaseSettings {
  std::string ns = "kube-system", name = "foresight-recommender";
  std::string identity;  // "" = hostname_random, as client-go's examples make it
  // client-go's defaults, which the stock VPA recommender keeps.
  double lease_seconds = 15, renew_deadline_seconds = 10, retry_seconds = 2;
};

class LeaderElector {
 public:
  LeaderElector(ClusterAccess access, LeaseSettings settings);
  ~LeaderElector();  // stop()
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Tries to take or renew the lease every retry_seconds on a thread of its own, from now on.
  void start();
  // Whether this one holds the lease: its last successful renewal is younger than the renew
  // deadline, and no one else has taken it since. Any thread.
  bool leading() const;
  // Whether it has ever led (a replica that led and no longer does must stop writing).
  bool hasLed() const;
  // The holder last seen ("" none), for the log. Any thread.
  std::string holder() const;
  // Stops trying; a lease it holds is released (holder cleared), so a standby takes over at once.
  void stop();
  const std::string& identity() const { return settings_.identity; }

  // One attempt, as the thread makes it: true when this one holds the lease afterwards. For tests.
  Result<bool> tryAcquireOrRenew();

 private:
  struct State;
  LeaseSettings settings_;
  std::unique_ptr<State> state_;
};

}  // namespace foresight::allocate::k8s
