// Kubernetes backend over cpp-httplib (OpenSSL). See kubernetes.h for the wire format.
#include "foresight/allocate/kubernetes.h"

#include "kubernetes_api.h"

#include <openssl/evp.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "foresight/core/files.h"
#include "foresight/core/log.h"

namespace foresight::allocate::k8s {
namespace {
using nlohmann::json;

Result<std::string> base64Decode(const std::string& in, const std::string& what) {
  std::string clean;
  for (char c : in)
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  if (clean.size() % 4 != 0) return fail(ErrorCode::kParse, "{}: not base64", what);
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) return fail(ErrorCode::kParse, "{}: not base64", what);
  std::size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

// "<key>-data" (base64) or "<key>" (a file path, relative to the kubeconfig's folder, stored in
// `*file` so that the file can be read again when it is rotated).
Result<std::string> dataOrFile(const YAML::Node& node, const std::string& key,
                               const std::string& kubeconfig, std::string* file) {
  if (node[key + "-data"]) return base64Decode(node[key + "-data"].as<std::string>(), kubeconfig + ": " + key + "-data");
  if (node[key]) {
    std::filesystem::path p = node[key].as<std::string>();
    if (p.is_relative()) p = std::filesystem::path(kubeconfig).parent_path() / p;
    *file = p.string();
    return readWholeFile(p.string());
  }
  return std::string();
}

YAML::Node findNamed(const YAML::Node& list, const std::string& name, const char* field) {
  if (list && list.IsSequence())
    for (const auto& item : list)
      if (item["name"] && item["name"].as<std::string>() == name) return item[field];
  // Not YAML::Node(): a default node is a defined null, so `!found` would not tell it apart.
  return YAML::Node(YAML::NodeType::Undefined);
}

}  // namespace

Result<ClusterAccess> loadKubeconfig(const std::string& path, const std::string& context_name) {
  ClusterAccess a;
  try {
    const YAML::Node root = YAML::LoadFile(path);
    const std::string ctx_name =
        context_name.empty() ? root["current-context"].as<std::string>("") : context_name;
    if (ctx_name.empty()) return fail(ErrorCode::kInvalidArgument, "{}: no current-context", path);
    a.context = ctx_name;
    const YAML::Node ctx = findNamed(root["contexts"], ctx_name, "context");
    if (!ctx) return fail(ErrorCode::kNotFound, "{}: no context '{}'", path, ctx_name);
    const std::string cluster_name = ctx["cluster"].as<std::string>("");
    const std::string user_name = ctx["user"].as<std::string>("");
    if (ctx["namespace"]) a.default_namespace = ctx["namespace"].as<std::string>();
    const YAML::Node cluster = findNamed(root["clusters"], cluster_name, "cluster");
    if (!cluster) return fail(ErrorCode::kNotFound, "{}: no cluster '{}'", path, cluster_name);
    a.server = cluster["server"].as<std::string>("");
    if (a.server.empty()) return fail(ErrorCode::kParse, "{}: cluster '{}' has no server", path, cluster_name);
    if (cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>())
      return fail(ErrorCode::kInvalidArgument,
                  "{}: cluster '{}' sets insecure-skip-tls-verify; Foresight always verifies TLS",
                  path, cluster_name);
    auto ca = dataOrFile(cluster, "certificate-authority", path, &a.ca_file);
    if (!ca) return tl::unexpected(ca.error());
    a.ca_pem = *ca;
    const YAML::Node user = findNamed(root["users"], user_name, "user");
    if (user) {
      if (user["exec"] || user["auth-provider"])
        return fail(ErrorCode::kInvalidArgument,
                    "{}: user '{}' uses an exec/auth-provider plugin, which Foresight does not run; "
                    "use a token or client certificate", path, user_name);
      if (user["token"]) a.token = user["token"].as<std::string>();
      if (user["tokenFile"]) {
        // Relative to the kubeconfig's folder, as client-go and the certificate paths here.
        std::filesystem::path tf = user["tokenFile"].as<std::string>();
        if (tf.is_relative()) tf = std::filesystem::path(path).parent_path() / tf;
        auto t = readTokenFile(tf);
        if (!t) return tl::unexpected(t.error());
        a.token = *t;
        a.token_file = tf.string();
      }
      auto cert = dataOrFile(user, "client-certificate", path, &a.client_cert_file);
      auto key = dataOrFile(user, "client-key", path, &a.client_key_file);
      if (!cert) return tl::unexpected(cert.error());
      if (!key) return tl::unexpected(key.error());
      a.client_cert_pem = *cert;
      a.client_key_pem = *key;
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::kParse, "{}:{}: {}", path, e.mark.line + 1, e.msg);
  }
  while (!a.token.empty() && std::isspace(static_cast<unsigned char>(a.token.back()))) a.token.pop_back();
  return a;
}

Result<ClusterAccess> loadInCluster(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port)
    return fail(ErrorCode::kUnavailable,
                "not in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set");
  ClusterAccess a;
  const std::string h = host;
  a.server = fmt::format("https://{}:{}", h.find(':') != std::string::npos ? "[" + h + "]" : h, port);
  a.token_file = sa_dir + "/token";
  a.ca_file = sa_dir + "/ca.crt";
  auto token = readTokenFile(a.token_file);
  auto ca = readWholeFile(a.ca_file);
  if (!token) return tl::unexpected(token.error());
  if (!ca) return tl::unexpected(ca.error());
  a.token = *token;
  a.ca_pem = *ca;
  if (auto ns = readWholeFile(sa_dir + "/namespace")) a.default_namespace = *ns;
  return a;
}

Result<double> parseQuantity(const std::string& q) {
  static const std::pair<const char*, double> kSuffixes[] = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0}, {"n", 1e-9}, {"u", 1e-6},
      {"m", 1e-3}, {"k", 1e3},
      {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18}};
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(q, &used);
  } catch (const std::exception&) {
    return fail(ErrorCode::kParse, "'{}' is not a Kubernetes quantity", q);
  }
  const std::string suffix = q.substr(used);
  if (suffix.empty()) return v;
  for (const auto& [s, mult] : kSuffixes)
    if (suffix == s) return v * mult;
  return fail(ErrorCode::kParse, "'{}': unknown quantity suffix '{}'", q, suffix);
}

// CRDs such as the VPA keep what was written: `maxAllowed: {cpu: 1}`.
Result<double> quantityOf(const nlohmann::json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) return parseQuantity(v.get<std::string>());
  return fail(ErrorCode::kParse, "{} is not a Kubernetes quantity", v.dump());
}

std::string formatCpu(double cores) {
  return fmt::format("{}m", static_cast<long long>(std::ceil(cores * 1000.0 - 1e-6)));
}
std::string formatMemory(double bytes) {
  return fmt::format("{}", static_cast<long long>(std::ceil(bytes - 1e-6)));
}

namespace {

// Splits "a/b[/c]".
std::vector<std::string> splitWorkload(const std::string& w) {
  std::vector<std::string> parts;
  std::stringstream ss(w);
  for (std::string p; std::getline(ss, p, '/');) parts.push_back(p);
  return parts;
}

// What the resize backend reads of a pod (from a GET or a watch event).
const json kPodShape = json::parse(R"({
  "metadata": {"resourceVersion": ""},
  "spec": {"containers": [{"name": "", "resources": {"requests": {}, "limits": {}}}]},
  "status": {"conditions": [{"type": "", "status": "", "reason": "", "message": ""}],
             "containerStatuses": [{"name": "", "resources": {"requests": {}, "limits": {}}}]}})");

// Reads a {cpu, memory} quantity map into an allocation; an error names `field`.key.
Result<Allocation> resourcesOf(const json& list, std::string_view field) {
  Allocation a;
  if (!list.is_object()) return a;
  for (const auto& [key, r] : {std::pair{"cpu", Resource::kCpu}, {"memory", Resource::kMemory}}) {
    if (!list.contains(key)) continue;
    auto v = quantityOf(list[key]);
    if (!v) return fail(v.error().code, "{}.{}: {}", field, key, v.error().message);
    a[r] = *v;
  }
  return a;
}

json quantities(const Allocation& a) {
  json j = json::object();
  if (a[Resource::kCpu]) j["cpu"] = formatCpu(*a[Resource::kCpu]);
  if (a[Resource::kMemory]) j["memory"] = formatMemory(*a[Resource::kMemory]);
  return j;
}

Status onlyCpuAndMemory(const std::string& what, const Allocation& target) {
  for (Resource r : {Resource::kDiskIo, Resource::kNetwork})
    if (target[r])
      return fail(ErrorCode::kInvalidArgument, "{}: Kubernetes manages cpu and memory only, not {}",
                  what, foresight::name(r));
  for (Resource r : {Resource::kCpu, Resource::kMemory})
    if (target[r] && (std::isinf(*target[r]) || *target[r] <= 0))
      return fail(ErrorCode::kInvalidArgument, "{}: {} must be a positive finite value", what,
                  foresight::name(r));
  return ok();
}

// ---------------------------------------------------------------------------------------------
class ResizeBackend final : public Backend {
 public:
  ResizeBackend(ClusterAccess access, Settings s) : api_(std::move(access)), s_(s) {}
  std::string name() const override { return "kubernetes"; }
  std::map<std::string, std::string> pinned() const override { return s_.pinned; }

  Result<Allocation> current(const std::string& workload) override {
    auto pod = getPod(workload);
    if (!pod) return tl::unexpected(pod.error());
    return specAllocation(pod->container, pod->what + " spec");
  }

  // From the resource metrics API (metrics-server): the container's current cpu and memory.
  Result<Allocation> usage(const std::string& workload) override {
    const auto parts = splitWorkload(workload);
    if (parts.size() < 2 || parts.size() > 3)
      return fail(ErrorCode::kInvalidArgument,
                  "kubernetes workload '{}': expected namespace/pod[/container]", workload);
    const std::string what = fmt::format("pod {}/{}", parts[0], parts[1]);
    auto r = api_.request("GET", fmt::format("/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{}",
                                             parts[0], parts[1]));
    if (!r) return tl::unexpected(r.error());
    if (r->status != 200)
      return fail(ErrorCode::kUnavailable, "{}: no usage from the metrics API ({}): {}", what,
                  r->status, apiMessage(*r));
    static const json kMetricsShape = json::parse(R"({"containers": [{"name": "", "usage": {}}]})");
    if (auto st = checkShape(r->body, kMetricsShape); !st)
      return fail(st.error().code, "{}: metrics API: {}", what, st.error().message);
    const json containers = r->body.value("containers", json::array());
    for (const auto& c : containers)
      if (parts.size() == 3 ? c.value("name", "") == parts[2] : containers.size() == 1)
        return resourcesOf(c.value("usage", json::object()), what + ": metrics API usage");
    return fail(ErrorCode::kNotFound, "{}: no usage for container '{}' in the metrics API", what,
                parts.size() == 3 ? parts[2] : "");
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    auto pod = getPod(workload);
    if (!pod) return tl::unexpected(pod.error());
    const std::string what = pod->what;
    if (auto st = onlyCpuAndMemory(what, target); !st) return st;
    const json& res = pod->container.value("resources", json::object());
    const json old_requests = res.value("requests", json::object());
    const json old_limits = res.value("limits", json::object());
    auto want = resizedResources(pod->container, target);
    if (!want) return fail(want.error().code, "{}: {}", what, want.error().message);
    // The API server refuses a resize that changes the pod's QoS class: say so before asking.
    json after = pod->containers;
    for (auto& c : after)
      if (c.value("name", "") == pod->container_name)
        c["resources"] = {{"requests", want->first}, {"limits", want->second}};
    if (const std::string from = qosClass(pod->containers), to = qosClass(after); from != to)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: setting {} would make the pod {} (it is {}); a resize may not change a pod's "
                  "QoS class: give the container {}",
                  what, format(target), to, from,
                  from == "BestEffort" ? "requests in its spec first"
                                       : "requests below its limits, or limits, in its spec first");
    // Compare values, not spellings: "2" and "2000m" are the same cpu.
    auto normal = [](const json& list, const std::string& k) -> std::string {
      if (!list.contains(k) || list[k].is_null()) return "";
      auto v = quantityOf(list[k]);
      if (!v) return "";
      return k == "cpu" ? formatCpu(*v) : formatMemory(*v);
    };
    bool same = true;
    for (const auto& [k, v] : want->first.items())
      if (normal(old_requests, k) != normal(want->first, k)) same = false;
    for (const auto& [k, v] : want->second.items())
      if (normal(old_limits, k) != normal(want->second, k)) same = false;
    if (same) return ok();

    auto st = patchResources(*pod, want->first, want->second);
    if (!st) return st;
    auto done = waitForResize(*pod, target);
    if (done) return ok();
    // Put back what was there. Every key written was there before (resizedResources refuses a
    // resource with neither), but a request only where the API server defaults it to the limit.
    json back_req = json::object(), back_lim = json::object();
    for (const auto& [k, v] : want->first.items())
      back_req[k] = old_requests.contains(k) ? old_requests[k] : old_limits[k];
    for (const auto& [k, v] : want->second.items()) back_lim[k] = old_limits[k];
    auto undo = patchResources(*pod, back_req, back_lim);
    return fail(done.error().code, "{}{}", done.error().message,
                undo ? " (previous resources restored)"
                     : "; restoring the previous resources failed: " + undo.error().message);
  }

 private:
  struct Pod {
    std::string ns, name, container_name, what;
    json container;
    json containers;  // all of spec.containers, for the QoS class
  };

  // Kubernetes' QoS class of a pod from its containers' cpu and memory (requests default to
  // limits where only a limit is set).
  static std::string qosClass(const json& containers) {
    bool any = false, guaranteed = true;
    for (const auto& c : containers) {
      const json res = c.value("resources", json::object());
      const json req = res.value("requests", json::object()), lim = res.value("limits", json::object());
      for (const char* k : {"cpu", "memory"}) {
        const bool has_req = req.contains(k) && !req[k].is_null();
        const bool has_lim = lim.contains(k) && !lim[k].is_null();
        any = any || has_req || has_lim;
        if (!has_lim) {
          guaranteed = false;
        } else if (has_req) {
          auto a = quantityOf(req[k]), b = quantityOf(lim[k]);
          if (!a || !b || *a != *b) guaranteed = false;
        }
      }
    }
    return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
  }

  // The requests and limits that give the container `target`, keeping what makes its QoS class:
  // the allocation is the limit (the request where there is none, as current() reads it); a
  // request below its limit keeps its share of the limit (as the VPA scales limits with requests),
  // and a request-only resource stays request-only. A resource with neither is refused: a resize
  // may not remove a request or limit once set (Kubernetes docs, "Resize CPU and Memory Resources
  // assigned to Containers", Limitations), so nothing could roll it back.
  static Result<std::pair<json, json>> resizedResources(const json& container, const Allocation& target) {
    const json res = container.value("resources", json::object());
    const json req = res.value("requests", json::object()), lim = res.value("limits", json::object());
    json requests = json::object(), limits = json::object();
    for (Resource r : {Resource::kCpu, Resource::kMemory}) {
      if (!target[r]) continue;
      const std::string k(foresight::name(r));
      const double t = *target[r];
      auto text = [&](double v) { return r == Resource::kCpu ? formatCpu(v) : formatMemory(v); };
      const bool has_req = req.contains(k) && !req[k].is_null();
      const bool has_lim = lim.contains(k) && !lim[k].is_null();
      if (has_lim) {
        auto l = quantityOf(lim[k]);
        if (!l) return fail(l.error().code, "resources.limits.{}: {}", k, l.error().message);
        double share = 1;
        if (has_req) {
          auto q = quantityOf(req[k]);
          if (!q) return fail(q.error().code, "resources.requests.{}: {}", k, q.error().message);
          if (*l > 0) share = std::min(1.0, *q / *l);
        }
        limits[k] = text(t);
        requests[k] = text(t * share);
      } else if (has_req) {
        requests[k] = text(t);
      } else {
        return fail(ErrorCode::kInvalidArgument,
                    "it has no {0} request or limit, and a resize that adds one cannot be rolled "
                    "back (Kubernetes refuses to remove a request or limit once set): give the "
                    "container a {0} request in its spec first",
                    k);
      }
    }
    return std::pair{requests, limits};
  }

  Result<Pod> getPod(const std::string& workload) {
    const auto parts = splitWorkload(workload);
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
      return fail(ErrorCode::kInvalidArgument,
                  "kubernetes workload '{}': expected namespace/pod[/container]", workload);
    Pod p{parts[0], parts[1], parts.size() == 3 ? parts[2] : "", "", {}, {}};
    p.what = fmt::format("pod {}/{}", p.ns, p.name);
    auto r = api_.request("GET", fmt::format("/api/v1/namespaces/{}/pods/{}", p.ns, p.name));
    if (!r) return tl::unexpected(r.error());
    if (r->status == 404) return fail(ErrorCode::kNotFound, "{}: not found", p.what);
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: GET returned {}: {}", p.what, r->status, apiMessage(*r));
    if (auto st = checkShape(r->body, kPodShape); !st)
      return fail(st.error().code, "{}: {}", p.what, st.error().message);
    if (!r->body.contains("spec") || !r->body["spec"].contains("containers"))
      return fail(ErrorCode::kParse, "{}: unexpected answer from the API server: no spec.containers",
                  p.what);
    const json containers = r->body["spec"]["containers"];
    p.containers = containers;
    if (p.container_name.empty()) {
      if (containers.size() != 1)
        return fail(ErrorCode::kInvalidArgument,
                    "{} has {} containers: name one (namespace/pod/container)", p.what,
                    containers.size());
      p.container_name = containers[0].value("name", "");
    }
    for (const auto& c : containers)
      if (c.value("name", "") == p.container_name) p.container = c;
    if (p.container.is_null())
      return fail(ErrorCode::kNotFound, "{}: no container '{}'", p.what, p.container_name);
    p.what += "/" + p.container_name;
    return p;
  }

  // Limits where set, else requests: the limit is what the kernel enforces.
  static Result<Allocation> specAllocation(const json& container, const std::string& what) {
    const json res = container.value("resources", json::object());
    auto limits = resourcesOf(res.value("limits", json::object()), what + " resources.limits");
    auto requests =
        resourcesOf(res.value("requests", json::object()), what + " resources.requests");
    if (!limits) return tl::unexpected(limits.error());
    if (!requests) return tl::unexpected(requests.error());
    Allocation a = *limits;
    for (Resource r : {Resource::kCpu, Resource::kMemory})
      if (!a[r]) a[r] = (*requests)[r];
    return a;
  }

  Status patchResources(const Pod& p, const json& requests, const json& limits) {
    const json patch = {{"spec",
                         {{"containers",
                           json::array({{{"name", p.container_name},
                                         {"resources",
                                          {{"requests", requests}, {"limits", limits}}}}})}}}};
    auto r = api_.request("PATCH",
                          fmt::format("/api/v1/namespaces/{}/pods/{}/resize", p.ns, p.name),
                          patch.dump(), "application/strategic-merge-patch+json");
    if (!r) return tl::unexpected(r.error());
    if (r->status == 404)
      return fail(ErrorCode::kUnavailable,
                  "{}: the pods/resize subresource is missing (in-place resize needs Kubernetes "
                  ">= 1.33): {}", p.what, apiMessage(*r));
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: resize PATCH returned {}: {}", p.what, r->status,
                  apiMessage(*r));
    return ok();
  }

  // A pod's resize state: done when no PodResizePending/PodResizeInProgress condition is left
  // and status.containerStatuses[].resources show the target; Infeasible is final.
  enum class State { kDone, kInfeasible, kWaiting };
  static State resizeState(const json& pod, const std::string& container, const Allocation& target,
                           std::string& detail) {
    const json status = pod.value("status", json::object());
    bool busy = false;
    for (const auto& c : status.value("conditions", json::array())) {
      const std::string type = c.value("type", "");
      if (type != "PodResizePending" && type != "PodResizeInProgress") continue;
      if (c.value("status", "True") != "True") continue;
      const std::string reason = c.value("reason", "");
      detail = fmt::format("{}{}{}", type, reason.empty() ? "" : "/" + reason,
                           c.contains("message") ? ": " + c.value("message", "") : "");
      if (type == "PodResizePending" && reason == "Infeasible") return State::kInfeasible;
      busy = true;
    }
    if (busy) return State::kWaiting;
    for (const auto& cs : status.value("containerStatuses", json::array())) {
      if (cs.value("name", "") != container) continue;
      auto actual = specAllocation(cs, "status");  // limits, else requests: what current() reads
      if (!actual) {
        detail = actual.error().message;
        return State::kWaiting;
      }
      for (Resource r : {Resource::kCpu, Resource::kMemory})
        if (target[r] && (!(*actual)[r] ||
                          formatQuantity(r, *(*actual)[r]) != formatQuantity(r, *target[r]))) {
          detail = "container status still shows " + format(*actual);
          return State::kWaiting;
        }
      return State::kDone;
    }
    detail = "no container status yet";
    return State::kWaiting;
  }

  // Reads the pod once, then watches it (fieldSelector on its name, from the resourceVersion
  // read) until the kubelet finishes, refuses, or the watch times out.
  Status waitForResize(const Pod& p, const Allocation& target) {
    auto r = api_.request("GET", fmt::format("/api/v1/namespaces/{}/pods/{}", p.ns, p.name));
    if (!r) return tl::unexpected(r.error());
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: GET returned {}: {}", p.what, r->status, apiMessage(*r));
    if (auto st = checkShape(r->body, kPodShape); !st)
      return fail(st.error().code, "{}: {}", p.what, st.error().message);
    std::string detail = "no status yet";
    State state = resizeState(r->body, p.container_name, target, detail);
    if (state == State::kWaiting) {
      const std::string rv = r->body.value("metadata", json::object()).value("resourceVersion", "");
      const std::string path = fmt::format(
          "/api/v1/namespaces/{}/pods?watch=true&fieldSelector={}&timeoutSeconds={}{}", p.ns,
          httplib::detail::encode_query_param("metadata.name=" + p.name),
          s_.resize_timeout_seconds, rv.empty() ? "" : "&resourceVersion=" + rv);
      static const json kEventShape = {{"type", ""}, {"object", kPodShape}};
      Status bad = ok();
      auto watched = api_.watch(path, s_.resize_timeout_seconds, [&](const json& event) {
        if (bad = checkShape(event, kEventShape); !bad) return false;
        const std::string type = event.value("type", "");
        if (type == "DELETED") {
          detail = "pod deleted";
          state = State::kInfeasible;
          return false;
        }
        if (type != "ADDED" && type != "MODIFIED") return true;  // BOOKMARK, ERROR: go on
        state = resizeState(event.value("object", json::object()), p.container_name, target,
                            detail);
        return state == State::kWaiting;
      });
      if (!watched) return tl::unexpected(watched.error());
      if (!bad) return fail(bad.error().code, "{}: watch event: {}", p.what, bad.error().message);
    }
    if (state == State::kDone) return ok();
    if (state == State::kInfeasible)
      return fail(ErrorCode::kInvalidArgument, "{}: resize refused: {}", p.what, detail);
    return fail(ErrorCode::kUnavailable, "{}: resize not done within {} s ({})", p.what,
                s_.resize_timeout_seconds, detail);
  }

  static std::string formatQuantity(Resource r, double v) {
    return r == Resource::kCpu ? formatCpu(v) : formatMemory(v);
  }

  ApiClient api_;
  Settings s_;
};

// ---------------------------------------------------------------------------------------------
class VpaBackend final : public Backend {
 public:
  VpaBackend(ClusterAccess access, Settings s) : api_(std::move(access)), s_(s) {}
  std::string name() const override { return "kubernetes"; }
  std::map<std::string, std::string> pinned() const override { return s_.pinned; }

  Result<Allocation> current(const std::string& workload) override {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    if (v->entry.is_null()) return Allocation{};
    return resourcesOf(v->entry.value("target", json::object()), v->what + " status target");
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    return recommend(workload, target, nullptr, nullptr);
  }

  Status applyWithin(const std::string& workload, const Allocation& target, const Allocation& lower,
                     const Allocation& upper) override {
    return recommend(workload, target, &lower, &upper);
  }

  // Bounds absent: target x lower_ratio / upper_ratio.
  Status recommend(const std::string& workload, const Allocation& target, const Allocation* lower,
                   const Allocation* upper) {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    if (auto st = onlyCpuAndMemory(v->what, target); !st) return st;
    if (v->off)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: its containerPolicies set mode Off: the VPA takes no recommendation for it",
                  v->what);
    bool any = false;
    for (Resource r : {Resource::kCpu, Resource::kMemory})
      any = any || (target[r] && v->controlled[r == Resource::kCpu ? 0 : 1]);
    if (!any)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: its controlledResources name none of {}; nothing to recommend", v->what,
                  format(target));
    const json mine = v->entry.is_null() ? json::object() : v->entry;

    // Resources not in the target keep their recommendation.
    auto old = resourcesOf(mine.value("uncappedTarget", mine.value("target", json::object())),
                           v->what + " status uncappedTarget");
    if (!old) return tl::unexpected(old.error());
    Allocation uncapped = *old;
    for (Resource r : {Resource::kCpu, Resource::kMemory}) {
      if (target[r]) uncapped[r] = target[r];
      if (!v->controlled[r == Resource::kCpu ? 0 : 1]) uncapped[r].reset();  // not the VPA's to set
    }
    // bound: explicit values where given (never above/below the target), else target x ratio;
    // then the container policy's minAllowed/maxAllowed, as the stock recommender caps.
    auto capped = [&](double ratio, const Allocation* bound, bool is_lower) {
      Allocation a;
      for (Resource r : {Resource::kCpu, Resource::kMemory}) {
        if (!uncapped[r]) continue;
        double x = *uncapped[r] * ratio;
        if (bound && (*bound)[r] && std::isfinite(*(*bound)[r]))
          x = is_lower ? std::min(*(*bound)[r], *uncapped[r]) : std::max(*(*bound)[r], *uncapped[r]);
        a[r] = std::clamp(x, v->min[r].value_or(0.0), v->max[r].value_or(INFINITY));
      }
      return a;
    };
    json rec = {{"containerName", v->container},
                {"target", quantities(capped(1.0, nullptr, false))},
                {"lowerBound", quantities(capped(s_.lower_ratio, lower, true))},
                {"upperBound", quantities(capped(s_.upper_ratio, upper, false))},
                {"uncappedTarget", quantities(uncapped)}};
    if (rec == mine) return ok();
    return writeRecommendation(*v, rec);
  }

  // The container's recommendation entry as it is (null: none yet), so that a rollback of the
  // first recommendation removes it instead of needing an "unlimited" the VPA cannot take.
  Result<json> snapshot(const std::string& workload) override {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    return json{{"recommendation", v->entry}};
  }

  Status restore(const std::string& workload, const json& snap) override {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    if (!snap.is_object() || !snap.contains("recommendation") ||
        !(snap["recommendation"].is_null() || snap["recommendation"].is_object()))
      return fail(ErrorCode::kParse, "{}: snapshot has no recommendation entry", v->what);
    if (v->entry == snap["recommendation"]) return ok();
    return writeRecommendation(*v, snap["recommendation"]);
  }

 private:
  struct Vpa {
    std::string path, container, what;
    json body;
    json entry;           // status's recommendation for the container (null: none yet)
    Allocation min, max;  // spec.resourcePolicy caps for the container
    bool off = false;     // the container policy's mode: Off (no recommendation at all)
    std::array<bool, 2> controlled{true, true};  // cpu, memory: its controlledResources
  };

  // Replaces the container's entry in status.recommendation with `entry` (null: removes it), with
  // the stock recommender's patch: one "add" of the whole status (conditions kept).
  Status writeRecommendation(const Vpa& v, const json& entry) {
    json status = v.body.value("status", json::object());
    json new_recs = json::array();
    bool replaced = false;
    for (const auto& r : recommendations(v.body)) {
      if (r.value("containerName", "") != v.container) {
        new_recs.push_back(r);
      } else if (!entry.is_null()) {
        new_recs.push_back(entry);
        replaced = true;
      }
    }
    if (!replaced && !entry.is_null()) new_recs.push_back(entry);
    status["recommendation"] = {{"containerRecommendations", new_recs}};
    return writeVpaStatus(api_, s_.listed.get(), v.path, status, v.what);
  }

  static json recommendations(const json& vpa) {
    const json status = vpa.value("status", json::object());
    return status.value("recommendation", json::object())
        .value("containerRecommendations", json::array());
  }

  Result<Vpa> getVpa(const std::string& workload) {
    const auto parts = splitWorkload(workload);
    if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[2].empty())
      return fail(ErrorCode::kInvalidArgument,
                  "kubernetes vpa workload '{}': expected namespace/vpa/container", workload);
    Vpa v;
    v.path = vpaPath(parts[0], parts[1]);
    v.container = parts[2];
    v.what = fmt::format("VPA {}/{} container {}", parts[0], parts[1], parts[2]);
    if (const json* listed = s_.listed ? s_.listed->find(v.path) : nullptr) {
      v.body = *listed;
    } else {
      auto r = api_.request("GET", v.path);
      if (!r) return tl::unexpected(r.error());
      if (r->status == 404) return fail(ErrorCode::kNotFound, "{}: not found", v.what);
      if (r->status != 200)
        return fail(ErrorCode::kIo, "{}: GET returned {}: {}", v.what, r->status, apiMessage(*r));
      v.body = std::move(r->body);
    }
    static const json kVpaShape = json::parse(R"({
      "spec": {"recommenders": [{"name": ""}],
               "resourcePolicy": {"containerPolicies": [{"containerName": "", "mode": "",
                   "controlledResources": [], "minAllowed": {}, "maxAllowed": {}}]}},
      "status": {"recommendation": {"containerRecommendations": [{"containerName": "",
          "target": {}, "lowerBound": {}, "upperBound": {}, "uncappedTarget": {}}]}}})");
    if (auto st = checkShape(v.body, kVpaShape); !st)
      return fail(st.error().code, "{}: {}", v.what, st.error().message);
    for (const auto& rec : recommendations(v.body))
      if (rec.value("containerName", "") == v.container) v.entry = rec;
    const json spec = v.body.value("spec", json::object());
    bool ours = false;
    for (const auto& rec : spec.value("recommenders", json::array()))
      if (rec.value("name", "") == s_.recommender) ours = true;
    if (!ours)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: spec.recommenders does not name '{}'; another recommender owns it", v.what,
                  s_.recommender);
    const json policies =
        spec.value("resourcePolicy", json::object()).value("containerPolicies", json::array());
    json policy;
    for (const auto& p : policies) {
      const std::string n = p.value("containerName", "");
      if (n == v.container || (n == "*" && policy.is_null())) policy = p;
    }
    if (!policy.is_null()) {
      // As the stock recommender: no recommendation for a container whose mode is Off, and only
      // the resources its controlledResources name (default both).
      v.off = policy.value("mode", "Auto") == "Off";
      if (policy.contains("controlledResources")) {
        v.controlled = {false, false};
        for (const auto& c : policy["controlledResources"]) {
          if (c == "cpu") v.controlled[0] = true;
          if (c == "memory") v.controlled[1] = true;
        }
      }
      auto mn = resourcesOf(policy.value("minAllowed", json::object()), v.what + " minAllowed");
      auto mx = resourcesOf(policy.value("maxAllowed", json::object()), v.what + " maxAllowed");
      if (!mn) return tl::unexpected(mn.error());
      if (!mx) return tl::unexpected(mx.error());
      v.min = *mn;
      v.max = *mx;
    }
    return v;
  }

  ApiClient api_;
  Settings s_;
};

}  // namespace

Result<ClusterAccess> accessFrom(const BackendOptions& o) {
  std::string kubeconfig = o.get("kubeconfig");
  if (kubeconfig.empty()) {
    if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
      kubeconfig = env;
      if (auto colon = kubeconfig.find(':'); colon != std::string::npos) kubeconfig.resize(colon);
    } else if (const char* home = std::getenv("HOME");
               home && std::filesystem::exists(std::string(home) + "/.kube/config")) {
      kubeconfig = std::string(home) + "/.kube/config";
    }
  }
  if (kubeconfig.empty()) {
    auto access = loadInCluster(o.get("service_account_dir", "/var/run/secrets/kubernetes.io/serviceaccount"));
    if (!access && access.error().code == ErrorCode::kUnavailable)
      return fail(ErrorCode::kUnavailable, "no kubeconfig (option kubeconfig, $KUBECONFIG, ~/.kube/config) and {}",
                  access.error().message);
    return access;
  }
  auto access = loadKubeconfig(kubeconfig, o.get("context"));
  if (access) access->kubeconfig = kubeconfig;
  return access;
}

std::string vpaPath(const std::string& ns, const std::string& name) {
  return fmt::format("/apis/autoscaling.k8s.io/v1/namespaces/{}/verticalpodautoscalers/{}", ns, name);
}

std::unique_ptr<Backend> makeBackend(ClusterAccess access, Settings settings) {
  if (settings.mode == "vpa") return std::make_unique<VpaBackend>(std::move(access), settings);
  return std::make_unique<ResizeBackend>(std::move(access), settings);
}

}  // namespace foresight::allocate::k8s

namespace foresight::allocate {

// Options: mode, kubeconfig (default $KUBECONFIG, then ~/.kube/config, then in-cluster), context,
// recommender, resize_timeout (seconds), lower_ratio, upper_ratio, service_account_dir.
std::unique_ptr<Backend> makeKubernetesBackend(const BackendOptions& o) {
  return k8s::makeBackend(o, nullptr);
}

std::unique_ptr<Backend> k8s::makeBackend(const BackendOptions& o, const ClusterAccess* resolved,
                                          std::shared_ptr<VpaObjects> listed) {
  k8s::Settings s;
  s.mode = o.get("mode", "resize");
  s.listed = std::move(listed);
  s.recommender = o.get("recommender", s.recommender);
  try {
    s.resize_timeout_seconds =
        std::stoi(o.get("resize_timeout", std::to_string(s.resize_timeout_seconds)));
    s.lower_ratio = std::stod(o.get("lower_ratio", std::to_string(s.lower_ratio)));
    s.upper_ratio = std::stod(o.get("upper_ratio", std::to_string(s.upper_ratio)));
  } catch (const std::exception&) {
    return makeMisconfiguredBackend("kubernetes",
        Error{ErrorCode::kInvalidArgument, "kubernetes: a numeric backend option is not a number"});
  }
  if (s.mode != "resize" && s.mode != "vpa")
    return makeMisconfiguredBackend("kubernetes",
        Error{ErrorCode::kInvalidArgument,
              fmt::format("kubernetes: mode '{}' (expected resize or vpa)", s.mode)});
  auto access = resolved ? Result<k8s::ClusterAccess>(*resolved) : k8s::accessFrom(o);
  if (!access) return makeMisconfiguredBackend("kubernetes", access.error());
  const std::string kubeconfig = access->kubeconfig;
  // A record pins its server: a context that now points elsewhere must not receive its rollback.
  if (const std::string want = o.get("server"); !want.empty() && want != access->server)
    return makeMisconfiguredBackend(
        "kubernetes",
        Error{
            ErrorCode::kInvalidArgument,
            fmt::format("kubernetes: {} now points to {}, not to {} (option server)",
                        kubeconfig.empty() ? std::string("the in-cluster service account")
                                           : fmt::format("context '{}' of {}", access->context,
                                                         kubeconfig),
                        access->server, want)});
  s.pinned["server"] = access->server;
  if (!kubeconfig.empty()) {
    s.pinned["kubeconfig"] = std::filesystem::absolute(kubeconfig).string();
    s.pinned["context"] = access->context;
  }
  return k8s::makeBackend(std::move(*access), s);
}

}  // namespace foresight::allocate
