#pragma once
// A fake Kubernetes API server on 127.0.0.1 (cpp-httplib) serving what `foresight recommend`
// reads, as documented: VerticalPodAutoscalers (autoscaling.k8s.io/v1), their targets' selectors
// (apps/v1 spec.selector; a custom resource's scale subresource found through API discovery),
// PodMetrics (metrics.k8s.io/v1beta1), pods' containerStatuses and nodes' capacity; it takes the recommendation as
// a JSON patch on the VPA's status (RFC 6902). For the recommender's tests and benchmark.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <httplib.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "foresight/allocate/kubernetes.h"
#include "support/api_server.h"
#include "support/mutate.h"

namespace foresight::test_support {
using nlohmann::json;

inline json vpaOf(const std::string& name, const std::string& recommender, const json& target_ref) {
  return {{"apiVersion", "autoscaling.k8s.io/v1"},
          {"kind", "VerticalPodAutoscaler"},
          {"metadata", {{"name", name}, {"namespace", "shop"}}},
          {"spec", {{"targetRef", target_ref}, {"recommenders", json::array({{{"name", recommender}}})}}}};
}

// A namespace "shop": VPA web (Deployment web, two pods, containers app and sidecar), VPA canary
// (an Argo Rollout, one pod), VPA other (another recommender's), `more` VPAs svc-0, svc-1, ...
// shaped as web, and with `cronjob` VPA report (a CronJob's). Each round's metrics are a minute later than the last round's, as the metrics
// API's window moves on.
class FakeCluster {
 public:
  std::int64_t clock = 1'780'000'000;
  std::optional<std::int64_t> oom_at;  // web-1's (each Deployment's first pod's) app: lastState OOMKilled, finishedAt
  bool metrics_frozen = false;         // the metrics API returns the same window again
  bool scaled_to_zero = false;         // no pods, so no metrics
  bool sidecars = true;                // the Deployments' pods run a sidecar container
  std::optional<std::pair<int, std::string>> deployment_answer;  // status and body, in place of the Deployments
  std::vector<std::string> vpa_names = {"web", "canary", "other"};
  bool leases_forbidden = false;  // RBAC without the lease Role: every lease request is a 403
  bool cronjob = false;           // VPA report on CronJob report, whose job runs a pod
  bool nodes_forbidden = false;   // RBAC without the nodes rule: listing nodes is a 403
  std::optional<std::int64_t> job_oom_at;  // with cronjob: an earlier job's pod was OOM-killed then (state, not lastState)
  // Called on each item of the namespace's pod list and PodMetrics list before it is sent.
  std::function<void(json& pod)> edit_pod, edit_pod_metrics;
  std::function<void(json& vpa)> edit_vpa;  // likewise, each listed VPA (the stored one is kept)

  explicit FakeCluster(int more = 0) {
    for (int i = 0; i < more; ++i) {
      const std::string name = fmt::format("svc-{}", i);
      vpas_[name] = vpaOf(name, "foresight", {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", name}});
      vpa_names.push_back(name);
    }
    vpas_["web"] = vpaOf("web", "foresight", {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", "web"}});
    vpas_["canary"] = vpaOf("canary", "foresight",
                            {{"apiVersion", "argoproj.io/v1alpha1"}, {"kind", "Rollout"}, {"name", "canary"}});
    vpas_["other"] = vpaOf("other", "default", {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", "other"}});
    vpas_["report"] = vpaOf("report", "foresight", {{"apiVersion", "batch/v1"}, {"kind", "CronJob"}, {"name", "report"}});
    const std::string vpas = "/apis/autoscaling.k8s.io/v1";
    // Every namespace's, or shop's (--namespace).
    server_.Get(vpas + "(/namespaces/shop)?/verticalpodautoscalers", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      if (!metrics_frozen) clock += 60;  // the recommender lists once a round
      json items = json::array();
      for (const auto& n : vpa_names) items.push_back(vpas_[n]);
      if (cronjob) items.push_back(vpas_["report"]);
      if (edit_vpa)
        for (auto& v : items) edit_vpa(v);
      res.set_content(json{{"kind", "VerticalPodAutoscalerList"}, {"items", items}}.dump(), "application/json");
    });
    server_.Get(vpas + R"(/namespaces/shop/verticalpodautoscalers/([\w-]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  log(req);
                  res.set_content(vpas_[req.matches[1]].dump(), "application/json");
                });
    server_.Patch(vpas + R"(/namespaces/shop/verticalpodautoscalers/([\w-]+)/status)",
                  [this](const httplib::Request& req, httplib::Response& res) {
                    std::lock_guard lock(mu_);
                    log(req);
                    if (req.get_header_value("Content-Type") != "application/json-patch+json") {
                      res.status = 415;
                      return;
                    }
                    json& v = vpas_[req.matches[1]];
                    v = v.patch(json::parse(req.body));  // RFC 6902, as the API server applies it
                    res.set_content(v.dump(), "application/json");
                  });
    server_.Get(R"(/apis/apps/v1/namespaces/shop/deployments/(web|svc-\d+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  log(req);
                  if (deployment_answer) {  // e.g. an API server error, or a malformed object
                    res.status = deployment_answer->first;
                    res.set_content(deployment_answer->second, "application/json");
                    return;
                  }
                  res.set_content(json::parse(R"({"kind":"Deployment","spec":{"selector":{"matchLabels":{"app":""},
                      "matchExpressions":[{"key":"tier","operator":"In","values":["front"]}]}}})")
                                      .patch(json::parse(fmt::format(R"([{{"op":"replace","path":"/spec/selector/matchLabels/app","value":"{}"}}])",
                                                                     req.matches[1].str())))
                                      .dump(),
                                  "application/json");
                });
    server_.Get("/apis/argoproj.io/v1alpha1", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      res.set_content(R"({"kind":"APIResourceList","groupVersion":"argoproj.io/v1alpha1","resources":[
          {"name":"rollouts","kind":"Rollout","namespaced":true},
          {"name":"rollouts/scale","kind":"Scale","namespaced":true}]})", "application/json");
    });
    server_.Get("/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/canary/scale",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  log(req);
                  res.set_content(R"({"kind":"Scale","status":{"replicas":1,"selector":"app=canary"}})", "application/json");
                });
    // The namespace's pods and their metrics, whole: the recommender selects each VPA's pods.
    server_.Get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      const std::string ts = fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(clock)));
      json items = json::array();
      for (const auto& p : pods()) {
        if (p.failed) continue;
        json containers = json::array();
        for (const auto& c : p.containers)
          containers.push_back({{"name", c.name}, {"usage", {{"cpu", c.cpu}, {"memory", c.memory}}}});
        items.push_back({{"metadata", {{"name", p.name}, {"namespace", "shop"}, {"labels", p.labels}}},
                         {"timestamp", ts}, {"window", "30s"}, {"containers", containers}});
        if (edit_pod_metrics) edit_pod_metrics(items.back());
      }
      res.set_content(json{{"kind", "PodMetricsList"}, {"items", items}}.dump(), "application/json");
    });
    server_.Get("/api/v1/namespaces/shop/pods", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      json items = json::array();
      for (const auto& p : pods()) {
        json pod = {{"metadata", {{"name", p.name}, {"namespace", "shop"}, {"labels", p.labels}}},
                    {"spec", {{"nodeName", p.name == "web-2" ? "node-b" : "node-a"}, {"containers", json::array()}}},
                    {"status", {{"phase", p.failed ? "Failed" : "Running"}, {"containerStatuses", json::array()}}}};
        for (const auto& c : p.containers) {
          json spec = {{"name", c.name}};
          if (c.name == "app") spec["resources"] = {{"limits", {{"memory", "256Mi"}}}};
          pod["spec"]["containers"].push_back(spec);
          json status = {{"name", c.name}, {"ready", true}};
          auto killed = [](std::int64_t at) {
            return json{{"terminated", {{"reason", "OOMKilled"}, {"exitCode", 137},
                                        {"finishedAt", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(at)))}}}};
          };
          if (oom_at && p.first && c.name == "app") status["lastState"] = killed(*oom_at);
          if (p.failed) status["state"] = killed(*job_oom_at);
          pod["status"]["containerStatuses"].push_back(status);
        }
        if (edit_pod) edit_pod(pod);
        items.push_back(pod);
      }
      res.set_content(json{{"kind", "PodList"}, {"items", items}}.dump(), "application/json");
    });
    server_.Get("/api/v1/nodes", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      if (nodes_forbidden) {
        res.status = 403;
        res.set_content(R"({"kind":"Status","reason":"Forbidden","message":"nodes is forbidden: User \"system:serviceaccount:kube-system:foresight-recommender\" cannot list resource \"nodes\""})",
                        "application/json");
        return;
      }
      res.set_content(R"({"kind":"NodeList","items":[
          {"metadata":{"name":"node-a"},"status":{"capacity":{"cpu":"4","memory":"16Gi"}}},
          {"metadata":{"name":"node-b"},"status":{"capacity":{"cpu":"2","memory":"8Gi"}}}]})", "application/json");
    });
    server_.Get("/apis/batch/v1/namespaces/shop/cronjobs/report", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      res.set_content(R"({"kind":"CronJob","spec":{"schedule":"*/5 * * * *","jobTemplate":{"spec":{"template":
          {"metadata":{"labels":{"app":"report"}},"spec":{"containers":[{"name":"app"}]}}}}}})", "application/json");
    });
    // Leases (coordination.k8s.io/v1), with the API server's optimistic concurrency: an update
    // must carry the resourceVersion stored, a create of an existing name is a conflict.
    const std::string leases = R"(/apis/coordination.k8s.io/v1/namespaces/([\w-]+)/leases)";
    server_.Get(leases + R"(/([\w-]+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      if (leases_forbidden) {
        res.status = 403;
        res.set_content(R"({"kind":"Status","reason":"Forbidden","message":"leases.coordination.k8s.io \"foresight-recommender\" is forbidden: User \"system:serviceaccount:kube-system:foresight-recommender\" cannot get resource \"leases\""})",
                        "application/json");
        return;
      }
      auto it = leases_.find(req.matches[1].str() + "/" + req.matches[2].str());
      if (it == leases_.end()) {
        res.status = 404;
        res.set_content(R"({"kind":"Status","reason":"NotFound","message":"leases not found"})", "application/json");
        return;
      }
      res.set_content(it->second.dump(), "application/json");
    });
    server_.Post(leases, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      json lease = json::parse(req.body);
      const std::string key = req.matches[1].str() + "/" + lease["metadata"]["name"].get<std::string>();
      if (leases_.count(key)) {
        res.status = 409;
        res.set_content(R"({"kind":"Status","reason":"AlreadyExists","message":"leases already exists"})", "application/json");
        return;
      }
      lease["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
      leases_[key] = lease;
      res.status = 201;
      res.set_content(lease.dump(), "application/json");
    });
    server_.Put(leases + R"(/([\w-]+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      json lease = json::parse(req.body);
      auto it = leases_.find(req.matches[1].str() + "/" + req.matches[2].str());
      if (it == leases_.end() || lease["metadata"].value("resourceVersion", "") != it->second["metadata"]["resourceVersion"]) {
        res.status = it == leases_.end() ? 404 : 409;
        res.set_content(R"({"kind":"Status","reason":"Conflict","message":"the object has been modified"})", "application/json");
        return;
      }
      lease["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
      it->second = lease;
      res.set_content(lease.dump(), "application/json");
    });
    server_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (res.status == 404) {
        std::lock_guard lock(mu_);
        log(req);
        res.set_content(R"({"kind":"Status","message":"not found"})", "application/json");
      }
    });
    likeTheApiServer(server_);
    server_.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(damage_mu_);
      if (!damage_ || res.status != 200 || !damage_->which(req.path) || damage_->rng() % damage_->one_in != 0) return;
      auto doc = json::parse(res.body, nullptr, false);
      if (doc.is_discarded()) return;
      mutateJson(doc, damage_->rng);
      res.body = doc.dump();
      res.headers.erase("Content-Length");  // set already, for the body before
      res.set_header("Content-Length", std::to_string(res.body.size()));
      ++damage_->damaged;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeCluster() {
    server_.stop();
    thread_.join();
  }
  allocate::k8s::ClusterAccess access() const {
    allocate::k8s::ClusterAccess a;
    a.server = fmt::format("http://127.0.0.1:{}", port_);
    a.token = "t";
    return a;
  }
  int port() const { return port_; }
  void patchVpa(const std::string& name, const std::string& json_patch) {
    std::lock_guard lock(mu_);
    vpas_[name] = vpas_[name].patch(json::parse(json_patch));
  }
  // Another process takes the lease namespace/name (as a write of the API server would).
  void takeLease(const std::string& key, const std::string& holder) {
    std::lock_guard lock(mu_);
    json& l = leases_[key];
    l["spec"]["holderIdentity"] = holder;
    l["spec"]["renewTime"] = "2026-12-06T00:00:00.000000Z";
    l["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
  }
  // The lease namespace/name as stored (null: none).
  json lease(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = leases_.find(key);
    return it == leases_.end() ? json() : it->second;
  }
  json vpa(const std::string& name) {
    std::lock_guard lock(mu_);
    return vpas_[name];
  }
  // From now on, one in `one_in` of the 200 answers whose path `which` takes leaves out of the
  // documented shape: a value of another type, or removed, anywhere (mutateJson; fixed seed).
  void damageAnswers(std::uint32_t seed, unsigned one_in, std::function<bool(const std::string& path)> which) {
    std::lock_guard lock(damage_mu_);
    damage_.emplace(Damage{std::mt19937(seed), one_in, std::move(which)});
  }
  int damagedAnswers() {
    std::lock_guard lock(damage_mu_);
    return damage_ ? damage_->damaged : 0;
  }
  struct Request {
    std::string method, path, selector, resource_version;
  };
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  struct Container {
    std::string name, cpu, memory;
  };
  struct Pod {
    std::string name;
    json labels;
    std::vector<Container> containers;
    bool first = false;  // its Deployment's first pod (oom_at)
    bool failed = false;  // OOM-killed at job_oom_at, not restarted (restartPolicy Never)
  };
  // Each VPA's Deployment's two pods (other's too); canary-1, the Rollout's; a batch pod that shares
  // web's app label but not its tier, with ten times the usage, which must not count for web; and
  // the CronJob's job's pod (with `cronjob`).
  std::vector<Pod> pods() const {
    std::vector<Pod> out;
    if (scaled_to_zero) return out;
    for (const auto& n : vpa_names) {
      if (n == "canary" || n == "report") continue;
      Pod one{n + "-1", {{"app", n}, {"tier", "front"}, {"pod-template-hash", "5d8f7c"}}, {{"app", "300m", "200Mi"}}, true};
      Pod two{n + "-2", one.labels, {{"app", "450m", "180Mi"}}};
      if (sidecars) {
        one.containers.push_back({"sidecar", "10m", "20Mi"});
        two.containers.push_back({"sidecar", "12m", "18Mi"});
      }
      out.push_back(one);
      out.push_back(two);
    }
    out.push_back({"canary-1", {{"app", "canary"}}, {{"app", "1200000n", "64Mi"}}});
    out.push_back({"web-batch-1", {{"app", "web"}, {"tier", "back"}}, {{"app", "4500m", "2000Mi"}}});
    if (cronjob) {
      out.push_back({"report-29433900-x7k2p", {{"app", "report"}, {"job-name", "report-29433900"}},
                     {{"app", "700m", "150Mi"}}});
      if (job_oom_at)  // the previous job's pod, Failed: no metrics
        out.push_back({"report-29433800-q9z8w", {{"app", "report"}, {"job-name", "report-29433800"}}, {{"app", "", ""}},
                       false, true});
    }
    return out;
  }
  void log(const httplib::Request& req) {
    requests_.push_back({req.method, req.path, req.get_param_value("labelSelector"), req.get_param_value("resourceVersion")});
  }
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, json> vpas_;
  std::map<std::string, json> leases_;  // by namespace/name
  std::int64_t resource_version_ = 0;
  std::vector<Request> requests_;
  struct Damage {
    std::mt19937 rng;
    unsigned one_in = 1;
    std::function<bool(const std::string&)> which;
    int damaged = 0;
  };
  std::mutex damage_mu_;
  std::optional<Damage> damage_;
};

}  // namespace foresight::test_support
