// What `foresight recommend` reads of a cluster: VPAs naming the recommender, their targets' pod
// selectors, the pods' usage from the metrics API and their OOM kills. The paths and fields are
// those the stock VPA recommender reads (pkg/recommender/input, pkg/target); only tested against a
// fake API server that serves them as documented.
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <sstream>
#include <tuple>
#include <chrono>
#include <set>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "foresight/allocate/kubernetes.h"
#include "foresight/core/log.h"
#include "kubernetes_api.h"

namespace foresight::allocate::k8s {
namespace {
using nlohmann::json;

// The API group path of an apiVersion: "apps/v1" -> /apis/apps/v1, "v1" -> /api/v1.
std::string groupPath(const std::string& api_version) {
  return api_version.find('/') == std::string::npos ? "/api/" + api_version : "/apis/" + api_version;
}

// A LabelSelector (matchLabels, matchExpressions) as the labelSelector query's syntax.
Result<std::string> selectorQuery(const json& sel, const std::string& what) {
  if (!sel.is_object()) return fail(ErrorCode::kParse, "{}: no selector", what);
  std::vector<std::string> terms;
  if (sel.contains("matchLabels") || sel.contains("matchExpressions")) {
    const json labels = sel.value("matchLabels", json::object());  // items() does not keep a temporary
    for (const auto& [k, v] : labels.items())
      if (v.is_string()) terms.push_back(k + "=" + v.get<std::string>());
    for (const auto& e : sel.value("matchExpressions", json::array())) {
      const std::string key = e.value("key", ""), op = e.value("operator", "");
      std::vector<std::string> values;
      for (const auto& v : e.value("values", json::array()))
        if (v.is_string()) values.push_back(v.get<std::string>());
      if (op == "In" || op == "NotIn")
        terms.push_back(fmt::format("{} {} ({})", key, op == "In" ? "in" : "notin", fmt::join(values, ",")));
      else if (op == "Exists")
        terms.push_back(key);
      else if (op == "DoesNotExist")
        terms.push_back("!" + key);
      else
        return fail(ErrorCode::kParse, "{}: selector operator '{}' is not In, NotIn, Exists or DoesNotExist", what, op);
    }
  } else {  // a ReplicationController's plain map
    for (const auto& [k, v] : sel.items())
      if (v.is_string()) terms.push_back(k + "=" + v.get<std::string>());
  }
  // An empty selector would select every pod of the namespace.
  if (terms.empty()) return fail(ErrorCode::kParse, "{}: empty selector", what);
  return fmt::format("{}", fmt::join(terms, ","));
}

// A listed VPA, checked item by item (the list's envelope: kListShape): one out of shape is left
// out with its reason, not the whole listing. Whose it is and its name are checked first.
const json kVpaOwnerShape = json::parse(R"({"metadata": {"name": "", "namespace": ""},
  "spec": {"recommenders": [{"name": ""}]}})");
const json kVpaShape = json::parse(R"({"metadata": {"name": "", "namespace": ""},
  "spec": {"targetRef": {"apiVersion": "", "kind": "", "name": ""}, "recommenders": [{"name": ""}],
           "resourcePolicy": {"containerPolicies": [{"containerName": "", "mode": ""}]}}})");
// What reportConditions reads of a VPA's status; a status out of this shape is written anew.
const json kVpaStatusShape = json::parse(R"({"status": {"conditions": [{"type": "", "status": "",
  "lastTransitionTime": ""}], "recommendation": {"containerRecommendations": []}}})");
// A LabelSelector, or a ReplicationController's map (no matchLabels key: left to its reader).
const json kTargetShape = json::parse(R"({"spec": {"selector": {"matchLabels": {},
  "matchExpressions": [{"key": "", "operator": "", "values": [""]}]}}})");
// A list's envelope; its items are checked one by one (kListedPodShape, kPodMetricsShape), so that one
// pod out of shape costs only the VPAs that select it.
const json kListShape = json::parse(R"({"items": []})");
const json kPodMetricsShape = json::parse(R"({"metadata": {"name": ""}, "timestamp": "",
  "containers": [{"name": "", "usage": {}}]})");
const json kListedPodShape = json::parse(R"({"metadata": {"name": "", "labels": {}}, "spec": {"nodeName": "", "containers": [{"name": "",
  "resources": {"limits": {}}}]}, "status": {"containerStatuses": [{"name": "",
  "lastState": {"terminated": {"reason": "", "finishedAt": ""}},
  "state": {"terminated": {"reason": "", "finishedAt": ""}}}]}})");
// What decides which VPAs select a pod: while these read, a pod out of shape elsewhere is known.
const json kListedPodNameShape = json::parse(R"({"metadata": {"name": "", "labels": {}}})");
const json kPodMetricsNameShape = json::parse(R"({"metadata": {"name": ""}})");

// The round's lists (VPAs, pods, nodes) accept any recent state, as client-go's informers do for
// their lists: the API server answers them from its watch cache instead of a quorum read of etcd,
// which for a namespace's pods every minute is the difference that matters at scale.
constexpr const char* kFromWatchCache = "?resourceVersion=0";

// A GET whose answer must be 200 and hold `shape`; errors name the path.
Result<json> getChecked(ApiClient& api, const std::string& path, const json& shape) {
  auto r = api.request("GET", path);
  if (!r) return tl::unexpected(r.error());
  const std::string& server = api.access().server;
  if (r->status == 404)
    return fail(ErrorCode::kNotFound, "GET {}{}: not found ({})", server, path, apiMessage(*r));
  if (r->status != 200)
    return fail(ErrorCode::kIo, "GET {}{}: status {}: {}", server, path, r->status, apiMessage(*r));
  if (auto st = checkShape(r->body, shape); !st)
    return fail(st.error().code, "GET {}{}: {}", server, path, st.error().message);
  return std::move(r->body);
}

}  // namespace

Result<std::int64_t> parseRfc3339(const std::string& text) {
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return fail(ErrorCode::kParse, "'{}' is not an RFC 3339 time", text);
  std::int64_t t = ::timegm(&tm);
  if (*rest == '.')
    while (std::isdigit(static_cast<unsigned char>(*++rest))) {
    }
  if (*rest == 'Z' || *rest == 'z') return rest[1] == '\0' ? Result<std::int64_t>(t) : fail(ErrorCode::kParse, "'{}' is not an RFC 3339 time", text);
  int hh = 0, mm = 0;
  char sign = 0;
  if (std::sscanf(rest, "%c%2d:%2d", &sign, &hh, &mm) == 3 && (sign == '+' || sign == '-') && std::strlen(rest) == 6)
    return t - (sign == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
  return fail(ErrorCode::kParse, "'{}' is not an RFC 3339 time", text);
}

VpaDiscovery::VpaDiscovery(ClusterAccess access, double selector_ttl_seconds, std::shared_ptr<VpaObjects> listed)
    : api_(std::make_unique<ApiClient>(std::move(access))), selector_ttl_seconds_(selector_ttl_seconds),
      listed_(std::move(listed)) {}
VpaDiscovery::VpaDiscovery(VpaDiscovery&&) noexcept = default;
VpaDiscovery& VpaDiscovery::operator=(VpaDiscovery&&) noexcept = default;
VpaDiscovery::~VpaDiscovery() = default;

Result<std::vector<RecommendedVpa>> VpaDiscovery::vpas(const std::string& recommender,
                                                       const std::string& ns) {
  const std::string path = (ns.empty() ? std::string("/apis/autoscaling.k8s.io/v1/verticalpodautoscalers")
                                       : fmt::format("/apis/autoscaling.k8s.io/v1/namespaces/{}/verticalpodautoscalers", ns)) +
                           kFromWatchCache;
  round_pods_.clear();
  auto list = getChecked(*api_, path, kListShape);
  if (!list) return tl::unexpected(list.error());
  std::vector<RecommendedVpa> out;
  std::map<std::string, std::string> unresolved;
  std::map<std::string, Cached> selectors;
  std::map<std::string, json> objects;  // for listed_
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  static const std::set<std::string> kImmutable = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"};
  const json items = list->value("items", json::array());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const json& v = items[i];
    const std::string at = fmt::format("items[{}]", i);
    if (auto st = checkShape(v, kVpaOwnerShape, at); !st) {
      // Neither whose it is nor its name reads: nothing to report on. Logged once per change.
      const std::string key = "GET " + path + " " + at;
      if (unresolved_[key] != st.error().message)
        spdlog::warn("GET {}{}: {}; left out", api_->access().server, path, st.error().message);
      unresolved[key] = st.error().message;
      continue;
    }
    const json spec = v.value("spec", json::object());
    bool mine = false;
    for (const auto& r : spec.value("recommenders", json::array()))
      mine = mine || r.value("name", "") == recommender;
    if (!mine) continue;
    RecommendedVpa vpa;
    const json meta = v.value("metadata", json::object());
    vpa.ns = meta.value("namespace", "");
    vpa.name = meta.value("name", "");
    if (listed_) objects[vpaPath(vpa.ns, vpa.name)] = v;
    // Out of shape: skipped with its reason (ConfigUnsupported), its fields not read.
    const auto shape = checkShape(v, kVpaShape, at);
    if (shape)
      for (const auto& p : spec.value("resourcePolicy", json::object()).value("containerPolicies", json::array()))
        vpa.modes[p.value("containerName", "")] = p.value("mode", "Auto");
    const json ref = shape ? spec.value("targetRef", json::object()) : json::object();
    vpa.target_kind = ref.value("kind", "?");
    vpa.target_name = ref.value("name", "?");
    const std::string cache_key = vpa.ns + " " + ref.dump();
    const auto cached = selectors_.find(cache_key);
    const bool fresh = cached != selectors_.end() && now - cached->second.read_at < selector_ttl_seconds_;
    // No API server lists an object without them; a proxy that drops them must not make paths of "".
    auto sel = vpa.ns.empty() || vpa.name.empty()
                   ? Result<std::string>(fail(ErrorCode::kParse, "listed without metadata.namespace or metadata.name"))
               : !shape ? Result<std::string>(tl::unexpected(shape.error()))
               : fresh ? Result<std::string>(cached->second.selector)
                       : selectorOf(vpa.ns, ref);
    if (fresh)
      selectors[cache_key] = cached->second;
    else if (sel && kImmutable.count(ref.value("kind", "")))
      selectors[cache_key] = {*sel, now};
    if (sel) {
      vpa.selector = *sel;
    } else {
      const std::string key = vpa.workload();
      // Logged when it first fails or fails differently: every round would flood the log.
      if (unresolved_[key] != sel.error().message)
        spdlog::warn("VPA {} ({}): {}; left out until it resolves", key, vpa.target(), sel.error().message);
      unresolved[key] = sel.error().message;
      vpa.error = sel.error().message;
    }
    out.push_back(std::move(vpa));
  }
  unresolved_ = std::move(unresolved);
  selectors_ = std::move(selectors);
  if (listed_) listed_->replaceAll(std::move(objects));
  return out;
}

// The target's pod selector: spec.selector of the kinds the VPA knows, else the scale
// subresource's status.selector (how the stock VPA handles any scalable custom resource).
Result<std::string> VpaDiscovery::selectorOf(const std::string& ns, const json& ref) {
  const std::string api_version = ref.value("apiVersion", ""), kind = ref.value("kind", ""),
                    name = ref.value("name", "");
  if (api_version.empty() || kind.empty() || name.empty())
    return fail(ErrorCode::kParse, "spec.targetRef needs apiVersion, kind and name");
  static const std::map<std::string, std::string> kKnown = {
      {"Deployment", "deployments"}, {"StatefulSet", "statefulsets"}, {"DaemonSet", "daemonsets"},
      {"ReplicaSet", "replicasets"}, {"Job", "jobs"}, {"ReplicationController", "replicationcontrollers"}};
  const std::string base = groupPath(api_version) + "/namespaces/" + ns + "/";
  if (auto k = kKnown.find(kind); k != kKnown.end()) {
    const std::string path = base + k->second + "/" + name;
    auto obj = getChecked(*api_, path, kTargetShape);
    if (!obj) return tl::unexpected(obj.error());
    return selectorQuery(obj->value("spec", json::object()).value("selector", json()), path + " spec.selector");
  }
  // A CronJob has no selector and no scale subresource: the stock VPA selects its jobs' pods by
  // the labels of its pod template.
  if (kind == "CronJob") {
    const std::string path = base + "cronjobs/" + name;
    auto obj = getChecked(*api_, path, json::parse(R"({"spec": {"jobTemplate": {"spec": {"template":
        {"metadata": {"labels": {}}}}}}})"));
    if (!obj) return tl::unexpected(obj.error());
    const json labels = obj->value("spec", json::object()).value("jobTemplate", json::object()).value("spec", json::object())
                            .value("template", json::object()).value("metadata", json::object()).value("labels", json::object());
    return selectorQuery(labels, path + " spec.jobTemplate.spec.template.metadata.labels");
  }
  // Anything else (an Argo Rollout): the API's discovery names the kind's resource; its scale
  // subresource gives the selector.
  auto group = getChecked(*api_, groupPath(api_version), json::parse(R"({"resources": [{"name": "", "kind": ""}]})"));
  if (!group) return tl::unexpected(group.error());
  std::string plural;
  for (const auto& r : group->value("resources", json::array()))
    if (r.is_object() && r.value("kind", "") == kind && r.value("name", "").find('/') == std::string::npos)
      plural = r.value("name", "");
  if (plural.empty())
    return fail(ErrorCode::kNotFound, "{} lists no resource of kind {}", groupPath(api_version), kind);
  const std::string path = base + plural + "/" + name + "/scale";
  auto scale = getChecked(*api_, path, json::parse(R"({"status": {"selector": ""}})"));
  if (!scale) return tl::unexpected(scale.error());
  const std::string sel = scale->value("status", json::object()).value("selector", "");  // [] would add a null
  if (sel.empty()) return fail(ErrorCode::kParse, "{}: no status.selector ({} has no scale subresource?)", path, kind);
  return sel;
}

// A namespace's pods this round: their labels, their containers' usage from the metrics API,
// and their containers' last OOM kill.
struct VpaDiscovery::ListedPods {
  struct Pod {
    std::map<std::string, std::string> labels;
    std::string node;
    std::string error;                // its metrics did not read ("" when they did)
    std::vector<ContainerUsage> used;  // one per container; empty: no metrics yet
    std::map<std::string, std::pair<std::int64_t, double>> oom;  // container -> killed at, memory limit
  };
  // A listing failed, or a pod whose labels do not read (it could be any VPA's): every VPA of
  // the namespace fails this round.
  std::string error;
  std::map<std::string, Pod> pods;  // by name
};

const VpaDiscovery::ListedPods& VpaDiscovery::listPods(const std::string& ns) {
  auto& slot = round_pods_[ns];
  if (slot) return *slot;
  slot = std::make_unique<ListedPods>();
  ListedPods& out = *slot;
  // Pods, then their metrics: a pod created between the two requests is not listed yet and waits
  // a round; one deleted between them is listed without metrics and counts for nothing.
  const std::string ppath = fmt::format("/api/v1/namespaces/{}/pods{}", ns, kFromWatchCache);
  auto pods = getChecked(*api_, ppath, kListShape);
  if (!pods) {
    out.error = pods.error().message;
    return out;
  }
  const std::string& server = api_->access().server;
  const json items = pods->value("items", json::array());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const json& pod = items[i];
    const std::string at = fmt::format("items[{}]", i);
    if (auto st = checkShape(pod, kListedPodNameShape, at); !st) {
      out.error = fmt::format("GET {}{}: {}", server, ppath, st.error().message);
      return out;
    }
    const json meta = pod.value("metadata", json::object());
    const std::string pod_name = meta.value("name", at);
    ListedPods::Pod& p = out.pods[pod_name];
    const json labels = meta.value("labels", json::object());  // items() does not keep a temporary
    for (const auto& [k, v] : labels.items())
      if (v.is_string()) p.labels[k] = v.get<std::string>();
    if (auto st = checkShape(pod, kListedPodShape, at); !st) {
      p.error = fmt::format("GET {}{}: pod {}: {}", server, ppath, pod_name, st.error().message);
      continue;
    }
    p.node = pod.value("spec", json::object()).value("nodeName", "");
    // OOM kills, which the metrics API does not show: the stock recommender bumps memory after one.
    std::map<std::string, double> limits;
    for (const auto& c : pod.value("spec", json::object()).value("containers", json::array()))
      if (auto m = c.value("resources", json::object()).value("limits", json::object()); m.contains("memory"))
        if (auto q = quantityOf(m["memory"])) limits[c.value("name", "")] = *q;
    // lastState: killed and restarted; state: killed and not restarted (a Job's pod, restartPolicy
    // Never), which the stock recommender misses.
    for (const auto& s : pod.value("status", json::object()).value("containerStatuses", json::array()))
      for (const char* which : {"lastState", "state"}) {
        const json term = s.value(which, json::object()).value("terminated", json::object());
        if (term.value("reason", "") != "OOMKilled") continue;
        auto t = parseRfc3339(term.value("finishedAt", ""));
        const std::string name = s.value("name", "");
        if (t && (!p.oom.count(name) || *t > p.oom[name].first)) p.oom[name] = {*t, limits.count(name) ? limits[name] : 0.0};
      }
  }
  const std::string mpath = fmt::format("/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods", ns);
  auto metrics = getChecked(*api_, mpath, kListShape);
  if (!metrics) {
    out.error = metrics.error().message;
    return out;
  }
  const json metric_items = metrics->value("items", json::array());
  for (std::size_t i = 0; i < metric_items.size(); ++i) {
    const json& pod = metric_items[i];
    const std::string at = fmt::format("items[{}]", i);
    // Without its name, which pod's usage is missing is unknown: none can be trusted to be whole.
    if (auto st = checkShape(pod, kPodMetricsNameShape, at); !st) {
      out.error = fmt::format("GET {}{}: {}", server, mpath, st.error().message);
      return out;
    }
    const std::string pod_name = pod.value("metadata", json::object()).value("name", "?");
    auto it = out.pods.find(pod_name);
    if (it == out.pods.end()) continue;
    ListedPods::Pod& p = it->second;
    if (!p.error.empty()) continue;  // its listing's error says more
    if (auto st = checkShape(pod, kPodMetricsShape, at); !st) {
      p.error = fmt::format("GET {}{}: pod {}: {}", server, mpath, pod_name, st.error().message);
      continue;
    }
    auto t = parseRfc3339(pod.value("timestamp", ""));
    if (!t) {
      p.error = fmt::format("GET {}{}: pod {}: timestamp: {}", server, mpath, pod_name, t.error().message);
      continue;
    }
    for (const auto& c : pod.value("containers", json::array())) {
      ContainerUsage cu;
      cu.container = c.value("name", "");
      cu.time = *t;
      const json u = c.value("usage", json::object());
      for (auto [key, field] : {std::pair{"cpu", &ContainerUsage::cpu}, {"memory", &ContainerUsage::memory}}) {
        if (!u.contains(key)) continue;
        auto q = quantityOf(u[key]);
        if (!q) {
          p.error = fmt::format("GET {}{}: pod {} container {}: usage.{}: {}", server, mpath,
                                pod_name, cu.container, key, q.error().message);
          break;
        }
        cu.*field = *q;
      }
      p.used.push_back(std::move(cu));
    }
  }
  return out;
}

Result<std::vector<ContainerUsage>> VpaDiscovery::usage(const RecommendedVpa& vpa) {
  auto selector = LabelSelector::parse(vpa.selector);
  if (!selector) return fail(selector.error().code, "{}'s pod selector: {}", vpa.target(), selector.error().message);
  const ListedPods& listed = listPods(vpa.ns);
  if (!listed.error.empty()) return fail(ErrorCode::kIo, "{}", listed.error);
  std::map<std::string, ContainerUsage> by_name;
  std::vector<const ListedPods::Pod*> selected;
  for (const auto& [name, pod] : listed.pods) {
    if (!selector->matches(pod.labels)) continue;
    if (!pod.error.empty()) return fail(ErrorCode::kParse, "{}", pod.error);
    selected.push_back(&pod);
    for (const auto& u : pod.used) {
      ContainerUsage& cu = by_name[u.container];
      cu.container = u.container;
      cu.cpu = std::max(cu.cpu, u.cpu);
      cu.memory = std::max(cu.memory, u.memory);
      cu.time = std::max(cu.time, u.time);
      cu.pod_names.push_back(name);
      cu.pod_cpu.push_back(u.cpu);
      cu.pod_nodes.push_back(pod.node);
    }
  }
  for (const auto* pod : selected)
    for (const auto& [container, kill] : pod->oom)
      if (auto it = by_name.find(container); it != by_name.end() && kill.first > it->second.oom_time)
        std::tie(it->second.oom_time, it->second.oom_limit) = kill;
  std::vector<ContainerUsage> out;
  for (auto& [name, cu] : by_name) out.push_back(std::move(cu));
  return out;
}

Result<bool> VpaDiscovery::reportConditions(const RecommendedVpa& vpa, bool pods_matched) {
  if (!listed_) return false;
  const std::string path = vpaPath(vpa.ns, vpa.name);
  const json* body = listed_->find(path);
  if (!body) return false;  // a failed write took it out: the next round's listing brings it back
  json status = checkShape(*body, kVpaStatusShape) ? body->value("status", json::object()) : json::object();
  const json old = status.value("conditions", json::array());
  static const std::set<std::string> kMine = {"ConfigUnsupported", "NoPodsMatched", "RecommendationProvided"};
  const auto now = fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr)));
  json conditions = json::array();
  for (const auto& c : old)
    if (c.is_object() && !kMine.count(c.value("type", ""))) conditions.push_back(c);
  auto set = [&](const std::string& type, bool on, const std::string& reason, const std::string& message) {
    json c = {{"type", type}, {"status", on ? "True" : "False"}, {"lastTransitionTime", now}};
    if (!reason.empty()) c["reason"] = reason;
    if (!message.empty()) c["message"] = message;
    for (const auto& o : old)
      if (o.is_object() && o.value("type", "") == type && o.value("status", "") == c["status"] && o.contains("lastTransitionTime"))
        c["lastTransitionTime"] = o["lastTransitionTime"];
    conditions.push_back(c);
  };
  // The stock recommender's reasons and messages (pkg/recommender/model/vpa.go).
  std::string reason, message;
  if (!vpa.error.empty()) {
    reason = "ConfigUnsupported";
    message = vpa.error;
    set("ConfigUnsupported", true, "", message);
  } else if (!pods_matched) {
    reason = "NoPodsMatched";
    message = "No pods match this VPA object";
    set("NoPodsMatched", true, reason, message);
  }
  const bool provided = !status.value("recommendation", json::object()).value("containerRecommendations", json::array()).empty();
  set("RecommendationProvided", provided, provided ? "" : reason, provided ? "" : message);
  auto byType = [](json list) {
    std::sort(list.begin(), list.end(), [](const json& a, const json& b) { return a.value("type", "") < b.value("type", ""); });
    return list;
  };
  if (old.is_array() && byType(old) == byType(conditions)) return false;
  status["conditions"] = conditions;
  auto written = writeVpaStatus(*api_, listed_.get(), path, status, fmt::format("VPA {} conditions", vpa.workload()));
  if (!written) return tl::unexpected(written.error());
  return true;
}

Result<double> VpaDiscovery::nodeCpus(const std::string& node) {
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  const bool known = node_cpus_.count(node);
  // A failed listing (no RBAC for nodes, say) is tried again after a minute, not for every pod.
  if (now - nodes_read_at_ > 600 || (!known && now - nodes_read_at_ > 60)) {
    auto nodes = getChecked(*api_, std::string("/api/v1/nodes") + kFromWatchCache, json::parse(R"({"items": [{"metadata": {"name": ""},
        "status": {"capacity": {}}}]})"));
    nodes_read_at_ = now;
    node_cpus_.clear();
    nodes_error_ = nodes ? "" : nodes.error().message;
    if (!nodes) return tl::unexpected(nodes.error());
    for (const auto& n : nodes->value("items", json::array())) {
      const json capacity = n.value("status", json::object()).value("capacity", json::object());
      if (!capacity.contains("cpu")) continue;
      if (auto q = quantityOf(capacity["cpu"]); q && *q > 0)
        node_cpus_[n.value("metadata", json::object()).value("name", "")] = *q;
    }
  }
  if (!nodes_error_.empty()) return fail(ErrorCode::kIo, "{}", nodes_error_);
  auto it = node_cpus_.find(node);
  if (it == node_cpus_.end()) return fail(ErrorCode::kNotFound, "node '{}' is not among the nodes listed, or has no status.capacity.cpu", node);
  return it->second;
}

namespace {
bool isKey(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/';
  });
}
bool isValue(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}
std::string trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}
std::optional<std::int64_t> integer(const std::string& s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace

Result<LabelSelector> LabelSelector::parse(const std::string& text) {
  LabelSelector sel;
  auto bad = [&](const std::string& why) { return fail(ErrorCode::kParse, "label selector '{}': {}", text, why); };
  // Terms are separated by commas outside the parentheses of a set.
  std::vector<std::string> terms;
  std::string term;
  int depth = 0;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return bad("')' without '('");
    if (c == ',' && depth == 0) {
      terms.push_back(term);
      term.clear();
    } else {
      term += c;
    }
  }
  if (depth != 0) return bad("'(' without ')'");
  terms.push_back(term);
  for (const auto& raw : terms) {
    const std::string t = trimmed(raw);
    Requirement r;
    if (t.empty()) return bad("an empty requirement");
    if (const auto open = t.find('('); open != std::string::npos) {  // key in (a,b), key notin (a,b)
      if (t.back() != ')') return bad(fmt::format("'{}': text after ')'", t));
      std::istringstream head(t.substr(0, open));
      std::string op, extra;
      head >> r.key >> op >> extra;
      if (!extra.empty() || (op != "in" && op != "notin")) return bad(fmt::format("'{}': expected KEY in|notin (VALUES)", t));
      r.op = op == "in" ? Op::kIn : Op::kNotIn;
      std::stringstream values(t.substr(open + 1, t.size() - open - 2));
      for (std::string v; std::getline(values, v, ',');) r.values.push_back(trimmed(v));
      if (r.values.empty()) return bad(fmt::format("'{}': an empty set", t));
    } else if (t[0] == '!') {
      r.key = trimmed(t.substr(1));
      r.op = Op::kDoesNotExist;
    } else if (const auto at = t.find_first_of("!=<>"); at != std::string::npos) {
      std::size_t len = 1;
      if (t[at] == '!') {
        if (t.compare(at, 2, "!=") != 0) return bad(fmt::format("'{}': '!' is not '!='", t));
        r.op = Op::kNotIn, len = 2;
      } else if (t[at] == '=') {
        r.op = Op::kIn, len = t.compare(at, 2, "==") == 0 ? 2 : 1;
      } else {
        r.op = t[at] == '>' ? Op::kGreater : Op::kLess;
      }
      r.key = trimmed(t.substr(0, at));
      r.values = {trimmed(t.substr(at + len))};
      if ((r.op == Op::kGreater || r.op == Op::kLess) && !integer(r.values[0]))
        return bad(fmt::format("'{}': '{}' is not an integer", t, r.values[0]));
    } else {
      r.key = t;
      r.op = Op::kExists;
    }
    if (!isKey(r.key)) return bad(fmt::format("'{}': '{}' is not a label key", t, r.key));
    for (const auto& v : r.values)
      if (!isValue(v)) return bad(fmt::format("'{}': '{}' is not a label value", t, v));
    sel.requirements_.push_back(std::move(r));
  }
  return sel;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  return std::all_of(requirements_.begin(), requirements_.end(), [&](const Requirement& r) {
    const auto it = labels.find(r.key);
    const bool has = it != labels.end();
    const bool listed = has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    switch (r.op) {
      case Op::kIn: return listed;
      case Op::kNotIn: return !listed;  // as the API: a pod without the key matches "!=" and "notin"
      case Op::kExists: return has;
      case Op::kDoesNotExist: return !has;
      case Op::kGreater:
      case Op::kLess: {
        const auto v = has ? integer(it->second) : std::nullopt;
        return v && (r.op == Op::kGreater ? *v > *integer(r.values[0]) : *v < *integer(r.values[0]));
      }
    }
    return false;
  });
}

}  // namespace foresight::allocate::k8s
