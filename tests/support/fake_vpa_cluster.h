#pragma once
// A fake Kubernetes API server on 127.0.0.1 (cpp-httplib) serving what `foresight recommend`
// reads, as documented: VerticalPodAutoscalers (autoscaling.k8s.io/v1), their targets' selectors
// (apps/v1 spec.selector; a custom resource's scale subresource found through API discovery),
// PodMetrics (metrics.k8s.io/v1beta1) and pods' containerStatuses; it takes the recommendation as
// a JSON patch on the VPA's status (RFC 6902). For the recommender's tests and benchmark.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <httplib.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "foresight/allocate/kubernetes.h"
#include "support/api_server.h"

namespace foresight::test_support {
using nlohmann::json;

inline json vpaOf(const std::string& name, const std::string& recommender, const json& target_ref) {
  return {{"apiVersion", "autoscaling.k8s.io/v1"},
          {"kind", "VerticalPodAutoscaler"},
          {"metadata", {{"name", name}, {"namespace", "shop"}}},
          {"spec", {{"targetRef", target_ref}, {"recommenders", json::array({{{"name", recommender}}})}}}};
}

// A namespace "shop": VPA web (Deployment web, two pods, containers app and sidecar), VPA canary
// (an Argo Rollout, one pod), VPA other (another recommender's) and `more` VPAs svc-0, svc-1, ...
// shaped as web. Each round's metrics are a minute later than the last round's, as the metrics
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
    const std::string vpas = "/apis/autoscaling.k8s.io/v1";
    // Every namespace's, or shop's (--namespace).
    server_.Get(vpas + "(/namespaces/shop)?/verticalpodautoscalers", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      if (!metrics_frozen) clock += 60;  // the recommender lists once a round
      json items = json::array();
      for (const auto& n : vpa_names) items.push_back(vpas_[n]);
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
    server_.Get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      const std::string sel = req.get_param_value("labelSelector");
      const std::string ts = fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(clock)));
      json items = json::array();
      auto pod = [&](const std::string& name, json containers) {
        items.push_back({{"metadata", {{"name", name}, {"namespace", "shop"}}}, {"timestamp", ts},
                         {"window", "30s"}, {"containers", containers}});
      };
      if (scaled_to_zero) {
      } else if (const auto app = deploymentOf(sel); !app.empty()) {
        json one = {{{"name", "app"}, {"usage", {{"cpu", "300m"}, {"memory", "200Mi"}}}},
                    {{"name", "sidecar"}, {"usage", {{"cpu", "10m"}, {"memory", "20Mi"}}}}};
        json two = {{{"name", "app"}, {"usage", {{"cpu", "450m"}, {"memory", "180Mi"}}}},
                    {{"name", "sidecar"}, {"usage", {{"cpu", "12m"}, {"memory", "18Mi"}}}}};
        if (!sidecars) {
          one.erase(1);
          two.erase(1);
        }
        pod(app + "-1", one);
        pod(app + "-2", two);
      } else if (sel == "app=canary") {
        pod("canary-1", {{{"name", "app"}, {"usage", {{"cpu", "1200000n"}, {"memory", "64Mi"}}}}});
      }
      res.set_content(json{{"kind", "PodMetricsList"}, {"items", items}}.dump(), "application/json");
    });
    server_.Get("/api/v1/namespaces/shop/pods", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      json items = json::array();
      if (const auto app = deploymentOf(req.get_param_value("labelSelector")); !app.empty()) {
        json web1 = {{"metadata", {{"name", app + "-1"}}},
                     {"spec", {{"containers", {{{"name", "app"}, {"resources", {{"limits", {{"memory", "256Mi"}}}}}}}}}},
                     {"status", {{"containerStatuses", {{{"name", "app"}}}}}}};
        if (oom_at)
          web1["status"]["containerStatuses"][0]["lastState"] = {
              {"terminated", {{"reason", "OOMKilled"}, {"exitCode", 137},
                              {"finishedAt", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(*oom_at)))}}}};
        items.push_back(web1);
      }
      res.set_content(json{{"kind", "PodList"}, {"items", items}}.dump(), "application/json");
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
  struct Request {
    std::string method, path, selector;
  };
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  // "web" for "app=web,tier in (front)" (the Deployments' selectors), else "".
  static std::string deploymentOf(const std::string& selector) {
    const std::string tail = ",tier in (front)";
    if (!selector.starts_with("app=") || !selector.ends_with(tail)) return "";
    return selector.substr(4, selector.size() - 4 - tail.size());
  }
  void log(const httplib::Request& req) {
    requests_.push_back({req.method, req.path, req.get_param_value("labelSelector")});
  }
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, json> vpas_;
  std::map<std::string, json> leases_;  // by namespace/name
  std::int64_t resource_version_ = 0;
  std::vector<Request> requests_;
};

}  // namespace foresight::test_support
