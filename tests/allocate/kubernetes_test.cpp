// Kubernetes backend against a fake API server on 127.0.0.1 (cpp-httplib). The fake checks what
// the real API requires (paths, verbs, content types, bearer token, bodies) per the Kubernetes
// docs "Resize CPU and Memory Resources assigned to Containers" (PATCH pods/{name}/resize with a
// strategic merge patch; PodResizePending / PodResizeInProgress conditions) and the VPA
// recommender's status patch (JSON patch on verticalpodautoscalers/{name}/status). No real API
// server was used.
#include "foresight/allocate/kubernetes.h"
#include "foresight/allocate/audit.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <mutex>
#include <thread>

#include "support/api_server.h"
#include "support/mutate.h"
#include "support/shell.h"
#include "support/tls.h"
#include "test_util.h"

namespace foresight::allocate::k8s {
namespace {
using nlohmann::json;
using test_support::SelfSigned;
constexpr double kMiB = 1024.0 * 1024;

TEST(K8sQuantity, ParsesAndFormats) {
  EXPECT_DOUBLE_EQ(*parseQuantity("1500m"), 1.5);
  EXPECT_DOUBLE_EQ(*parseQuantity("2"), 2.0);
  EXPECT_DOUBLE_EQ(*parseQuantity("512Mi"), 512 * kMiB);
  EXPECT_DOUBLE_EQ(*parseQuantity("1G"), 1e9);
  EXPECT_DOUBLE_EQ(*parseQuantity("1e3"), 1000.0);
  EXPECT_DOUBLE_EQ(*parseQuantity("250000000n"), 0.25);  // metrics-server reports nanocores
  EXPECT_DOUBLE_EQ(*parseQuantity("500u"), 0.0005);
  EXPECT_FALSE(parseQuantity("12Q"));
  EXPECT_EQ(formatCpu(1.5), "1500m");
  EXPECT_EQ(formatCpu(0.0004), "1m");  // rounds up: never below the forecast
  EXPECT_EQ(formatMemory(512 * kMiB), "536870912");
}

struct Request {
  std::string method, path, content_type, auth, body;
  httplib::Params params;
};

// A strategic merge of spec.containers[].resources, enough for the resize patches sent here. As the
// API server, it refuses to remove a request or limit (a null) that is set; returns the refusal.
std::string mergeResources(json& pod, const json& patch) {
  json merged = pod;
  for (const auto& pc : patch["spec"]["containers"]) {
    for (auto& c : merged["spec"]["containers"]) {
      if (c["name"] != pc["name"]) continue;
      for (const char* kind : {"requests", "limits"}) {
        if (!pc["resources"].contains(kind)) continue;
        for (const auto& [k, v] : pc["resources"][kind].items()) {
          if (!v.is_null()) c["resources"][kind][k] = v;
          else if (c["resources"][kind].contains(k))
            return fmt::format("Pod \"web-0\" is invalid: spec.containers[].resources.{}: "
                               "Forbidden: resource {} cannot be removed", kind, kind);
        }
      }
    }
  }
  pod = merged;
  return "";
}

class FakeApiServer {
 public:
  // What the simulated kubelet reports on the watch after a resize.
  enum class Kubelet { kCompletes, kInProgressOnce, kInfeasible, kDeferredUntilTimeout };
  Kubelet kubelet = Kubelet::kCompletes;
  json pod, vpa;
  std::vector<json> first_events;  // streamed at the start of the next watch

  FakeApiServer() {
    pod = json::parse(R"({
      "metadata": {"name": "web-0", "namespace": "shop", "resourceVersion": "100"},
      "spec": {"containers": [
        {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}},
        {"name": "sidecar", "resources": {"requests": {"cpu": "100m"}}}]},
      "status": {"conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
        {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}}]}})");
    vpa = json::parse(R"({
      "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
      "metadata": {"name": "web", "namespace": "shop"},
      "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
               "recommenders": [{"name": "foresight"}],
               "resourcePolicy": {"containerPolicies": [
                 {"containerName": "app", "maxAllowed": {"cpu": "1"}}]}},
      "status": {"conditions": [{"type": "RecommendationProvided", "status": "True"}],
                 "recommendation": {"containerRecommendations": [
                   {"containerName": "sidecar", "target": {"cpu": "100m"}}]}}})");
    const std::string pod_path = "/api/v1/namespaces/shop/pods/web-0";
    const std::string vpa_path =
        "/apis/autoscaling.k8s.io/v1/namespaces/shop/verticalpodautoscalers/web";
    server_.Get(pod_path, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      res.set_content(pod.dump(), "application/json");
    });
    // The watch: GET /api/v1/namespaces/shop/pods?watch=true&fieldSelector=metadata.name=web-0.
    server_.Get("/api/v1/namespaces/shop/pods", [this](const httplib::Request& req,
                                                       httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      if (req.get_param_value("watch") != "true" ||
          req.get_param_value("fieldSelector") != "metadata.name=web-0") {
        res.status = 400;
        res.set_content(R"({"kind":"Status","message":"bad watch"})", "application/json");
        return;
      }
      std::vector<json> events = std::exchange(first_events, {});
      auto with = [this](json condition) {
        json view = pod;
        view["status"]["conditions"].push_back(std::move(condition));
        return json{{"type", "MODIFIED"}, {"object", view}};
      };
      if (pending_) {
        switch (kubelet) {
          case Kubelet::kInfeasible:
            events.push_back(with({{"type", "PodResizePending"}, {"status", "True"},
                                   {"reason", "Infeasible"},
                                   {"message", "Node didn't have enough capacity: memory"}}));
            break;
          case Kubelet::kDeferredUntilTimeout:
            events.push_back(with({{"type", "PodResizePending"}, {"status", "True"},
                                   {"reason", "Deferred"}}));
            break;  // the stream then ends, as at timeoutSeconds
          case Kubelet::kInProgressOnce:
            events.push_back(with({{"type", "PodResizeInProgress"}, {"status", "True"}}));
            [[fallthrough]];
          case Kubelet::kCompletes:
            pod["status"]["containerStatuses"][0]["resources"] =
                pod["spec"]["containers"][0]["resources"];
            events.push_back({{"type", "MODIFIED"}, {"object", pod}});
            pending_ = false;
        }
      }
      res.set_chunked_content_provider(
          "application/json", [events](std::size_t, httplib::DataSink& sink) {
            for (const auto& e : events) {
              const std::string line = e.dump() + "\n";
              if (!sink.write(line.data(), line.size())) return false;
            }
            sink.done();
            return true;
          });
    });
    server_.Patch(pod_path + "/resize", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      if (req.get_header_value("Content-Type") != "application/strategic-merge-patch+json") {
        res.status = 415;
        res.set_content(R"({"message":"unsupported media type"})", "application/json");
        return;
      }
      if (auto refused = mergeResources(pod, json::parse(req.body)); !refused.empty()) {
        res.status = 422;
        res.set_content(json{{"kind", "Status"}, {"message", refused}}.dump(), "application/json");
        return;
      }
      pending_ = true;
      res.set_content(pod.dump(), "application/json");
    });
    server_.Get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-0",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  log(req);
                  res.set_content(R"({"kind":"PodMetrics","containers":[
                      {"name":"app","usage":{"cpu":"250m","memory":"200Mi"}},
                      {"name":"sidecar","usage":{"cpu":"1m","memory":"3Mi"}}]})",
                                  "application/json");
                });
    server_.Get(vpa_path, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      res.set_content(vpa.dump(), "application/json");
    });
    server_.Patch(vpa_path + "/status", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      log(req);
      if (req.get_header_value("Content-Type") != "application/json-patch+json") {
        res.status = 415;
        return;
      }
      const json ops = json::parse(req.body);
      vpa = vpa.patch(ops);  // RFC 6902, as the API server applies it
      res.set_content(vpa.dump(), "application/json");
    });
    server_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (res.status == 404) {
        std::lock_guard lock(mu_);
        log(req);
        res.set_content(R"({"kind":"Status","message":"the server could not find the requested resource"})",
                        "application/json");
      }
    });
    test_support::likeTheApiServer(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeApiServer() {
    server_.stop();
    thread_.join();
  }

  ClusterAccess access() const {
    ClusterAccess a;
    a.server = fmt::format("http://127.0.0.1:{}", port_);
    a.token = "test-token";
    return a;
  }
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<Request> patches() {
    std::vector<Request> out;
    for (auto& r : requests())
      if (r.method == "PATCH") out.push_back(r);
    return out;
  }
  int port() const { return port_; }

 private:
  void log(const httplib::Request& req) {
    requests_.push_back({req.method, req.path, req.get_header_value("Content-Type"),
                         req.get_header_value("Authorization"), req.body, req.params});
  }
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<Request> requests_;
  bool pending_ = false;
};

// The fake ends every watch stream itself; the timeout only goes into the query.
Settings fastPolls(const std::string& mode = "resize") {
  Settings s;
  s.mode = mode;
  s.resize_timeout_seconds = 7;
  return s;
}

TEST(K8sResize, PatchesTheResizeSubresourceAndWaitsForTheKubelet) {
  FakeApiServer api;
  api.kubelet = FakeApiServer::Kubelet::kInProgressOnce;
  auto b = makeBackend(api.access(), fastPolls());
  auto cur = b->current("shop/web-0/app");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kCpu], 0.5);
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kMemory], 256 * kMiB);

  Allocation t;
  t[Resource::kCpu] = 1.5;
  t[Resource::kMemory] = 512 * kMiB;
  auto st = b->apply("shop/web-0/app", t);
  ASSERT_TRUE(st) << st.error().message;
  const auto patches = api.patches();
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].path, "/api/v1/namespaces/shop/pods/web-0/resize");
  EXPECT_EQ(patches[0].content_type, "application/strategic-merge-patch+json");
  EXPECT_EQ(patches[0].auth, "Bearer test-token");
  EXPECT_EQ(json::parse(patches[0].body), json::parse(R"({"spec":{"containers":[{"name":"app",
      "resources":{"requests":{"cpu":"1500m","memory":"536870912"},
                   "limits":{"cpu":"1500m","memory":"536870912"}}}]}})"));
  // current(): GET. apply(): GET the pod, PATCH, GET it again, watch from its resourceVersion.
  const auto reqs = api.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[2].method, "PATCH");
  EXPECT_EQ(reqs[4].path, "/api/v1/namespaces/shop/pods");
  const std::multimap<std::string, std::string> expected_params = {
      {"watch", "true"}, {"fieldSelector", "metadata.name=web-0"}, {"timeoutSeconds", "7"},
      {"resourceVersion", "100"}};
  EXPECT_EQ(reqs[4].params, expected_params);
  EXPECT_EQ(reqs[4].auth, "Bearer test-token");

  cur = b->current("shop/web-0/app");
  ASSERT_TRUE(cur);
  EXPECT_EQ(*cur, t);
  ASSERT_TRUE(b->apply("shop/web-0/app", t));  // idempotent: no second PATCH
  EXPECT_EQ(api.patches().size(), 1u);
  // Same values spelled differently are no change either.
  api.pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "1.5";
  api.pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = "512Mi";
  ASSERT_TRUE(b->apply("shop/web-0/app", t));
  EXPECT_EQ(api.patches().size(), 1u);
}

// The API server refuses a resize that changes a pod's QoS class: a Burstable container keeps its
// requests' share of its limits, a request-only resource stays request-only, and a BestEffort pod
// is refused before any PATCH.
TEST(K8sResize, KeepsThePodsQosClass) {
  FakeApiServer api;
  api.pod["spec"]["containers"][0]["resources"] =
      json::parse(R"({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}})");
  api.pod["status"]["containerStatuses"][0]["resources"] = api.pod["spec"]["containers"][0]["resources"];
  auto b = makeBackend(api.access(), fastPolls());
  Allocation t;
  t[Resource::kCpu] = 0.5;
  t[Resource::kMemory] = 128 * kMiB;
  auto st = b->apply("shop/web-0/app", t);
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(api.patches().size(), 1u);
  EXPECT_EQ(json::parse(api.patches()[0].body)["spec"]["containers"][0]["resources"],
            json::parse(R"({"requests":{"cpu":"50m","memory":"33554432"},
                            "limits":{"cpu":"500m","memory":"134217728"}})"));
  auto cur = b->current("shop/web-0/app");
  ASSERT_TRUE(cur);
  EXPECT_EQ(*cur, t);  // the allocation is the limit

  // Request-only memory stays request-only (and is the allocation).
  api.pod["spec"]["containers"][0]["resources"] = json::parse(R"({"requests": {"memory": "64Mi"}})");
  api.pod["status"]["containerStatuses"][0]["resources"] = api.pod["spec"]["containers"][0]["resources"];
  Allocation m;
  m[Resource::kMemory] = 128 * kMiB;
  st = b->apply("shop/web-0/app", m);
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(api.patches().size(), 2u);
  EXPECT_EQ(json::parse(api.patches()[1].body)["spec"]["containers"][0]["resources"],
            json::parse(R"({"requests":{"memory":"134217728"},"limits":{}})"));

  // BestEffort: any request would make it Burstable (refused as a resource with neither, below).
  for (auto& c : api.pod["spec"]["containers"]) c["resources"] = json::object();
  st = b->apply("shop/web-0/app", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("has no cpu request or limit"), std::string::npos)
      << st.error().message;
  EXPECT_EQ(api.patches().size(), 2u);
}

// A resize may not remove a request or limit once set (the Kubernetes task page's Limitations), so
// one that adds them to a resource with neither could not be rolled back: it is refused before any
// PATCH. Before, it was sent, and its rollback (a patch of nulls, or `history --rollback` asking
// for "unlimited") could only fail.
TEST(K8sResize, AResourceWithNeitherRequestNorLimitIsRefusedUpFront) {
  FakeApiServer api;  // the sidecar has a cpu request and no memory request or limit
  auto b = makeBackend(api.access(), fastPolls());
  Allocation m;
  m[Resource::kMemory] = 128 * kMiB;
  auto st = b->apply("shop/web-0/sidecar", m);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message.find("pod shop/web-0/sidecar: it has no memory request or limit"),
            std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("cannot be rolled back"), std::string::npos)
      << st.error().message;
  EXPECT_TRUE(api.patches().empty());
  EXPECT_FALSE(api.pod["spec"]["containers"][1]["resources"].contains("limits"));

  // Its cpu, request-only, is resized and rolls back to the previous request.
  Allocation c;
  c[Resource::kCpu] = 0.2;
  api.kubelet = FakeApiServer::Kubelet::kDeferredUntilTimeout;
  st = b->apply("shop/web-0/sidecar", c);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("previous resources restored"), std::string::npos)
      << st.error().message;
  ASSERT_EQ(api.patches().size(), 2u);
  EXPECT_EQ(api.pod["spec"]["containers"][1]["resources"],
            json::parse(R"({"requests": {"cpu": "100m"}})"));
}

TEST(K8sResize, InfeasibleResizePutsThePreviousResourcesBack) {
  FakeApiServer api;
  api.kubelet = FakeApiServer::Kubelet::kInfeasible;
  auto b = makeBackend(api.access(), fastPolls());
  Allocation t;
  t[Resource::kMemory] = 64 * 1024 * kMiB;
  auto st = b->apply("shop/web-0/app", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("pod shop/web-0/app"), std::string::npos)
      << st.error().message;
  EXPECT_NE(st.error().message.find("Infeasible"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("restored"), std::string::npos) << st.error().message;
  const auto patches = api.patches();
  ASSERT_EQ(patches.size(), 2u);
  EXPECT_EQ(json::parse(patches[1].body)["spec"]["containers"][0]["resources"],
            json::parse(R"({"requests":{"memory":"256Mi"},"limits":{"memory":"256Mi"}})"));
  EXPECT_EQ(api.pod["spec"]["containers"][0]["resources"]["limits"]["memory"], "256Mi");
}

TEST(K8sResize, DeferredUntilTheWatchEndsPutsThePreviousResourcesBack) {
  FakeApiServer api;
  api.kubelet = FakeApiServer::Kubelet::kDeferredUntilTimeout;
  auto b = makeBackend(api.access(), fastPolls());
  Allocation t;
  t[Resource::kCpu] = 4;
  auto st = b->apply("shop/web-0/app", t);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find("PodResizePending/Deferred"), std::string::npos)
      << st.error().message;
  const auto patches = api.patches();
  ASSERT_EQ(patches.size(), 2u);
  EXPECT_EQ(json::parse(patches[1].body)["spec"]["containers"][0]["resources"],
            json::parse(R"({"requests":{"cpu":"500m"},"limits":{"cpu":"500m"}})"));
  EXPECT_EQ(api.pod["spec"]["containers"][0]["resources"]["limits"]["cpu"], "500m");
}

TEST(K8sResize, UsageFromTheMetricsApi) {
  FakeApiServer api;
  auto b = makeBackend(api.access(), fastPolls());
  auto use = b->usage("shop/web-0/app");
  ASSERT_TRUE(use) << use.error().message;
  EXPECT_DOUBLE_EQ(*(*use)[Resource::kCpu], 0.25);
  EXPECT_DOUBLE_EQ(*(*use)[Resource::kMemory], 200 * kMiB);
  auto none = b->usage("shop/other-pod/app");  // 404: no metrics
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("pod shop/other-pod"), std::string::npos);
}

TEST(K8sResize, WorkloadErrorsNameThePod) {
  FakeApiServer api;
  auto b = makeBackend(api.access(), fastPolls());
  auto cur = b->current("shop/web-0");  // two containers: must name one
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().message.find("pod shop/web-0 has 2 containers"), std::string::npos);
  cur = b->current("shop/missing/app");
  ASSERT_FALSE(cur);
  EXPECT_EQ(cur.error().code, ErrorCode::kNotFound);
  EXPECT_NE(cur.error().message.find("shop/missing"), std::string::npos);
  EXPECT_FALSE(b->current("just-a-name"));
  Allocation io;
  io[Resource::kDiskIo] = 1e6;
  EXPECT_FALSE(b->apply("shop/web-0/app", io));
  EXPECT_TRUE(api.patches().empty());
}

// An answer with a field of an unexpected type or without spec.containers is an error naming the
// pod, the field and the container. Before, json::value() threw a type_error naming none of them,
// which `foresight allocate` reported as an internal error (exit 70).
TEST(K8sResize, AnUnexpectedAnswerNamesTheFieldAndTheContainer) {
  FakeApiServer api;
  auto b = makeBackend(api.access(), fastPolls());
  auto expectError = [&](const std::string& field) {
    Result<Allocation> cur = Allocation{};
    EXPECT_NO_THROW(cur = b->current("shop/web-0/app"));
    ASSERT_FALSE(cur);
    EXPECT_EQ(cur.error().code, ErrorCode::kParse);
    EXPECT_NE(cur.error().message.find("pod shop/web-0: unexpected answer from the API server: " +
                                       field), std::string::npos) << cur.error().message;
  };
  const json good = api.pod;
  api.pod["spec"]["containers"][1]["resources"]["limits"] = "1";
  expectError("spec.containers[1].resources.limits (container sidecar) is a string, expected an object");
  api.pod = good;
  api.pod["spec"]["containers"][0]["name"] = 7;
  expectError("spec.containers[0].name is a number, expected a string");
  api.pod = good;
  api.pod["status"]["conditions"] = json::object();
  expectError("status.conditions is an object, expected an array");
  api.pod = good;
  api.pod.erase("spec");
  expectError("no spec.containers");

  // In a watch event, while waiting for the kubelet: the resize is put back.
  api.pod = good;
  api.first_events = {json::parse(R"({"type": "MODIFIED", "object": {"status": {"conditions": [
      {"type": "PodResizeInProgress", "status": true}]}}})")};
  Allocation t;
  t[Resource::kCpu] = 1;
  Status st = ok();
  EXPECT_NO_THROW(st = b->apply("shop/web-0/app", t));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("pod shop/web-0/app: watch event: unexpected answer from the "
                                    "API server: object.status.conditions[0].status is a boolean, "
                                    "expected a string"),
            std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("previous resources restored"), std::string::npos);
  EXPECT_EQ(api.pod["spec"]["containers"][0]["resources"], good["spec"]["containers"][0]["resources"]);
}

// `foresight allocate` end to end against an API server whose pod has a field of the wrong type:
// exit status 1 (not 70, an internal error), the pod, field and container named, no PATCH sent,
// and no change recorded in the audit trail. Then the same command against the good pod applies.
TEST(K8sResize, AllocateReportsAnUnexpectedAnswerAndChangesNothing) {
  FakeApiServer api;
  testing::TempDir tmp;
  const auto kubeconfig = tmp.path() / "config";
  testing::writeFile(kubeconfig, fmt::format(R"(apiVersion: v1
kind: Config
current-context: c
contexts:
- {{name: c, context: {{cluster: k, user: u}}}}
clusters:
- {{name: k, cluster: {{server: "http://127.0.0.1:{}"}}}}
users:
- {{name: u, user: {{token: t}}}}
)", api.port()));
  const std::string db = (tmp.path() / "audit.db").string();
  auto allocate = [&] {
    return foresight::test_support::runShell(fmt::format(
        "{} allocate --backend kubernetes -o kubeconfig={} -o resize_timeout=7 --workload shop/web-0/app "
        "--cpu 0.75 --db {}",
        FORESIGHT_BIN, kubeconfig.string(), db));
  };
  auto history = [&] {
    return foresight::test_support::runShell(fmt::format("{} history --db {}", FORESIGHT_BIN, db));
  };
  const json good = api.pod;
  api.pod["spec"]["containers"][0]["resources"]["limits"] = "1";
  const auto bad = allocate();
  EXPECT_EQ(bad.exit_code, 1) << bad.all();
  EXPECT_NE(bad.all().find("pod shop/web-0: unexpected answer from the API server: "
                           "spec.containers[0].resources.limits (container app) is a string, expected an object"),
            std::string::npos) << bad.all();
  EXPECT_TRUE(api.patches().empty());
  const auto none = history();
  EXPECT_EQ(none.all().find("cpu=0.75"), std::string::npos) << none.all();

  api.pod = good;
  const auto fine = allocate();
  EXPECT_EQ(fine.exit_code, 0) << fine.all();
  EXPECT_EQ(api.patches().size(), 1u);
  EXPECT_NE(history().all().find("cpu=0.75"), std::string::npos);
}

TEST(K8sVpa, AnUnexpectedAnswerNamesTheFieldAndTheContainer) {
  FakeApiServer api;
  auto b = makeBackend(api.access(), fastPolls("vpa"));
  api.vpa["spec"]["recommenders"] = "foresight";
  Result<Allocation> cur = Allocation{};
  EXPECT_NO_THROW(cur = b->current("shop/web/app"));
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().message.find("VPA shop/web container app: unexpected answer from the API "
                                     "server: spec.recommenders is a string, expected an array"),
            std::string::npos) << cur.error().message;
  api.vpa["spec"]["recommenders"] = json::parse(R"([{"name": "foresight"}])");
  api.vpa["status"]["recommendation"]["containerRecommendations"][0]["target"] = json::array();
  EXPECT_NO_THROW(cur = b->current("shop/web/app"));
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().message.find("status.recommendation.containerRecommendations[0].target "
                                     "(container sidecar) is an array, expected an object"),
            std::string::npos) << cur.error().message;
}

// The pod and the VPA out of the documented shape anywhere (a value of another type, or removed):
// reading and writing them are errors, never an exception out of the backend.
TEST(K8sBackends, ObjectsOutOfShapeAreErrorsNotCrashes) {
  FakeApiServer api;
  const json good_pod = api.pod, good_vpa = api.vpa;
  auto resize = makeBackend(api.access(), fastPolls());
  auto vpa = makeBackend(api.access(), fastPolls("vpa"));
  std::mt19937 rng(3);
  int refused = 0;
  Allocation t;
  t[Resource::kCpu] = 0.7;
  t[Resource::kMemory] = 300.0 * 1024 * 1024;
  for (int i = 0; i < 300; ++i) {
    api.pod = good_pod;
    api.vpa = good_vpa;
    test_support::mutateJson(api.pod, rng);
    test_support::mutateJson(api.vpa, rng);
    Result<Allocation> cur = Allocation{};
    ASSERT_NO_THROW(cur = resize->current("shop/web-0/app")) << api.pod.dump();
    refused += !cur;
    ASSERT_NO_THROW(cur = vpa->current("shop/web/app")) << api.vpa.dump();
    refused += !cur;
    Status st = ok();
    ASSERT_NO_THROW(st = vpa->apply("shop/web/app", t)) << api.vpa.dump();
    if (i % 10 == 0) {
      ASSERT_NO_THROW(st = resize->apply("shop/web-0/app", t)) << api.pod.dump();
    }
  }
  EXPECT_GT(refused, 50);
}

TEST(K8sVpa, WritesTheRecommendationIntoStatus) {
  FakeApiServer api;
  auto b = makeBackend(api.access(), fastPolls("vpa"));
  Allocation t;
  t[Resource::kCpu] = 1.5;  // maxAllowed cpu is 1
  t[Resource::kMemory] = 512 * kMiB;
  auto st = b->apply("shop/web/app", t);
  ASSERT_TRUE(st) << st.error().message;
  const auto patches = api.patches();
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].path,
            "/apis/autoscaling.k8s.io/v1/namespaces/shop/verticalpodautoscalers/web/status");
  EXPECT_EQ(patches[0].content_type, "application/json-patch+json");
  const json body = json::parse(patches[0].body);
  ASSERT_TRUE(body.is_array());
  EXPECT_EQ(body[0]["op"], "add");
  EXPECT_EQ(body[0]["path"], "/status");
  // 512 MiB * 0.9 = 483183820.8 -> 483183821 bytes (rounded up); * 1.2 = 644245094.4 -> ...095.
  const json expected = json::parse(R"({
    "conditions": [{"type": "RecommendationProvided", "status": "True"}],
    "recommendation": {"containerRecommendations": [
      {"containerName": "sidecar", "target": {"cpu": "100m"}},
      {"containerName": "app",
       "target": {"cpu": "1000m", "memory": "536870912"},
       "lowerBound": {"cpu": "1000m", "memory": "483183821"},
       "upperBound": {"cpu": "1000m", "memory": "644245095"},
       "uncappedTarget": {"cpu": "1500m", "memory": "536870912"}}]}})");
  EXPECT_EQ(body[0]["value"], expected) << body[0]["value"].dump(2);

  auto cur = b->current("shop/web/app");
  ASSERT_TRUE(cur);
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kCpu], 1.0);
  ASSERT_TRUE(b->apply("shop/web/app", t));  // idempotent
  EXPECT_EQ(api.patches().size(), 1u);
}

// The VPA's quantities are int-or-string in its CRD, and the API server returns a CRD's fields as
// written: `maxAllowed: {cpu: 1}` comes back as a JSON number. Before, that ended the command in an
// internal error (exit 70, a json type_error naming neither the VPA nor the field).
TEST(K8sVpa, QuantitiesWrittenAsPlainNumbersAreRead) {
  FakeApiServer api;
  api.vpa["spec"]["resourcePolicy"]["containerPolicies"][0]["maxAllowed"] =
      json{{"cpu", 1}, {"memory", 1073741824}};
  auto b = makeBackend(api.access(), fastPolls("vpa"));
  Allocation t;
  t[Resource::kCpu] = 1.5;
  t[Resource::kMemory] = 2048 * kMiB;
  auto st = b->apply("shop/web/app", t);
  ASSERT_TRUE(st) << st.error().message;
  const json body = json::parse(api.patches().at(0).body);
  const json app = body[0]["value"]["recommendation"]["containerRecommendations"][1];
  EXPECT_EQ(app["target"], json::parse(R"({"cpu": "1000m", "memory": "1073741824"})")) << app.dump();

  api.vpa["spec"]["resourcePolicy"]["containerPolicies"][0]["maxAllowed"] = json{{"cpu", true}};
  st = b->apply("shop/web/app", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("VPA shop/web container app maxAllowed.cpu"), std::string::npos)
      << st.error().message;
}

// A VPA-mode backend made through the registry from a kubeconfig, as `foresight allocate` makes it,
// and an audit trail: for what a record lets a rollback do.
struct VpaTrail {
  testing::TempDir tmp;
  BackendRegistry registry{"backend"};
  BackendOptions options;
  std::optional<AuditLog> log;
  VpaTrail() {
    registerBackends(registry);
    options.values = {{"mode", "vpa"}, {"kubeconfig", kubeconfig().string()}};
    auto opened = AuditLog::open((tmp.path() / "audit.db").string());
    if (opened) log.emplace(std::move(*opened));
  }
  std::filesystem::path kubeconfig() const { return tmp.path() / "config"; }
  Result<std::int64_t> apply(const Allocation& t) {
    auto backend = registry.create("kubernetes", options);
    if (!backend) return tl::unexpected(backend.error());
    return applyAndRecord(**backend, "kubernetes", options, *log, "shop/web/app", t, "test");
  }
};

// The first recommendation for a container rolls back to none: the snapshot holds the entry as it
// was (absent). Before, the rollback asked the VPA for "unlimited" and was refused, and an
// unrecordable first recommendation stayed in force.
TEST(K8sVpa, RollingBackTheFirstRecommendationRemovesIt) {
  FakeApiServer api;
  VpaTrail trail;
  ASSERT_TRUE(trail.log);
  testing::writeFile(trail.kubeconfig(), fmt::format(R"(apiVersion: v1
kind: Config
current-context: c
contexts: [{{name: c, context: {{cluster: k, user: u}}}}]
clusters: [{{name: k, cluster: {{server: "http://127.0.0.1:{}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
)", api.port()));
  Allocation t;
  t[Resource::kCpu] = 0.5;
  t[Resource::kMemory] = 256 * kMiB;
  auto id = trail.apply(t);
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_EQ(api.vpa["status"]["recommendation"]["containerRecommendations"].size(), 2u);
  auto back = rollback(*trail.log, trail.registry, *id);
  ASSERT_TRUE(back) << back.error().message;
  const json recs = api.vpa["status"]["recommendation"]["containerRecommendations"];
  ASSERT_EQ(recs.size(), 1u) << recs.dump();
  EXPECT_EQ(recs[0]["containerName"], "sidecar");  // the other container's entry is kept
}

TEST(K8sVpa, BoundsFromTheForecast) {
  FakeApiServer api;
  auto b = makeBackend(api.access(), fastPolls("vpa"));
  Allocation target, lower, upper;
  target[Resource::kCpu] = 0.6;
  target[Resource::kMemory] = 512 * kMiB;
  lower[Resource::kCpu] = 0.3;
  lower[Resource::kMemory] = 600 * kMiB;  // above the target: the bound is the target
  upper[Resource::kCpu] = 2.0;              // above maxAllowed (1): capped
  upper[Resource::kMemory] = 768 * kMiB;
  ASSERT_TRUE(b->applyWithin("shop/web/app", target, lower, upper));
  const json rec = json::parse(api.patches().at(0).body)[0]["value"]["recommendation"]
                       ["containerRecommendations"][1];
  EXPECT_EQ(rec["lowerBound"], json::parse(R"({"cpu":"300m","memory":"536870912"})"));
  EXPECT_EQ(rec["upperBound"], json::parse(R"({"cpu":"1000m","memory":"805306368"})"));
  EXPECT_EQ(rec["target"], json::parse(R"({"cpu":"600m","memory":"536870912"})"));
}

// As the stock recommender: nothing for a container whose policy mode is Off, and only the
// resources its controlledResources name.
TEST(K8sVpa, HonoursTheContainerPolicysModeAndControlledResources) {
  FakeApiServer api;
  api.vpa["spec"]["resourcePolicy"]["containerPolicies"][0]["controlledResources"] = json::parse(R"(["cpu"])");
  auto b = makeBackend(api.access(), fastPolls("vpa"));
  Allocation t;
  t[Resource::kCpu] = 0.5;
  t[Resource::kMemory] = 512 * kMiB;
  ASSERT_TRUE(b->apply("shop/web/app", t));
  ASSERT_EQ(api.patches().size(), 1u);
  const json recs = json::parse(api.patches()[0].body)[0]["value"]["recommendation"]["containerRecommendations"];
  const json app = recs[1];
  ASSERT_EQ(app["containerName"], "app");
  EXPECT_EQ(app["target"], json::parse(R"({"cpu":"500m"})"));
  EXPECT_FALSE(app["upperBound"].contains("memory"));
  Allocation memory_only;
  memory_only[Resource::kMemory] = 512 * kMiB;
  auto none = b->apply("shop/web/app", memory_only);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("controlledResources name none"), std::string::npos) << none.error().message;

  api.vpa["spec"]["resourcePolicy"]["containerPolicies"][0]["mode"] = "Off";
  auto off = b->apply("shop/web/app", t);
  ASSERT_FALSE(off);
  EXPECT_NE(off.error().message.find("mode Off"), std::string::npos) << off.error().message;
  EXPECT_EQ(api.patches().size(), 1u);
}

TEST(K8sVpa, LeavesVpasOfOtherRecommendersAlone) {
  FakeApiServer api;
  api.vpa["spec"]["recommenders"] = json::parse(R"([{"name": "default"}])");
  auto b = makeBackend(api.access(), fastPolls("vpa"));
  Allocation t;
  t[Resource::kCpu] = 1;
  auto st = b->apply("shop/web/app", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("spec.recommenders does not name 'foresight'"),
            std::string::npos);
  EXPECT_TRUE(api.patches().empty());
}

// ---- Configuration and TLS -----------------------------------------------------------------

std::string b64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()),
                                static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

TEST(K8sConfig, KubeconfigContextsAndRefusals) {
  testing::TempDir tmp;
  const auto path = tmp.path() / "config";
  testing::writeFile(path, fmt::format(R"(apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {{cluster: c1, user: u1, namespace: shop}}
- name: lax
  context: {{cluster: c2, user: u1}}
- name: orphan
  context: {{cluster: gone, user: u1}}
clusters:
- name: c1
  cluster: {{server: "https://10.0.0.1:6443", certificate-authority-data: "{}"}}
- name: c2
  cluster: {{server: "https://10.0.0.2:6443", insecure-skip-tls-verify: true}}
users:
- name: u1
  user: {{token: "abc"}}
)", b64("-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n")));
  auto a = loadKubeconfig(path.string(), "");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->server, "https://10.0.0.1:6443");
  EXPECT_EQ(a->token, "abc");
  EXPECT_EQ(a->default_namespace, "shop");
  EXPECT_EQ(a->ca_pem, "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n");
  auto lax = loadKubeconfig(path.string(), "lax");
  ASSERT_FALSE(lax);
  EXPECT_NE(lax.error().message.find("insecure-skip-tls-verify"), std::string::npos);
  // Each missing entry is named (a default YAML node is a defined null: it once read as found).
  auto nope = loadKubeconfig(path.string(), "nope");
  ASSERT_FALSE(nope);
  EXPECT_NE(nope.error().message.find("no context 'nope'"), std::string::npos) << nope.error().message;
  auto orphan = loadKubeconfig(path.string(), "orphan");
  ASSERT_FALSE(orphan);
  EXPECT_NE(orphan.error().message.find("no cluster 'gone'"), std::string::npos) << orphan.error().message;
  EXPECT_FALSE(loadKubeconfig((tmp.path() / "missing").string(), ""));
}

// A record pins the kubeconfig, context and server its change went to: after `kubectl config
// use-context`, a rollback still reaches the cluster it changed, and one whose context now points
// at another server is refused. Before, the rollback resolved the current context again and
// patched the same namespace and name in whichever cluster that was.
TEST(K8sConfig, ARollbackReachesTheClusterItsRecordChanged) {
  FakeApiServer a, b;
  for (FakeApiServer* api : {&a, &b})
    api->vpa["status"]["recommendation"]["containerRecommendations"].push_back(
        json{{"containerName", "app"}, {"target", {{"cpu", "200m"}, {"memory", "128Mi"}}}});
  VpaTrail trail;
  ASSERT_TRUE(trail.log);
  auto kubeconfig = [&](const std::string& current, int port_of_a) {
    testing::writeFile(trail.kubeconfig(), fmt::format(R"(apiVersion: v1
kind: Config
current-context: {}
contexts:
- {{name: a, context: {{cluster: ca, user: u}}}}
- {{name: b, context: {{cluster: cb, user: u}}}}
clusters:
- {{name: ca, cluster: {{server: "http://127.0.0.1:{}"}}}}
- {{name: cb, cluster: {{server: "http://127.0.0.1:{}"}}}}
users:
- {{name: u, user: {{token: t}}}}
)", current, port_of_a, b.port()));
  };
  kubeconfig("a", a.port());
  Allocation t;
  t[Resource::kCpu] = 0.5;
  auto id = trail.apply(t);
  ASSERT_TRUE(id) << id.error().message;
  auto rec = trail.log->get(*id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->options.get("context"), "a");
  EXPECT_EQ(rec->options.get("server"), fmt::format("http://127.0.0.1:{}", a.port()));
  EXPECT_EQ(rec->options.get("kubeconfig"), std::filesystem::absolute(trail.kubeconfig()).string());

  kubeconfig("b", a.port());  // kubectl config use-context b
  auto back = rollback(*trail.log, trail.registry, *id, false);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(a.patches().size(), 2u);
  EXPECT_TRUE(b.patches().empty());

  kubeconfig("a", b.port());  // context a now names the other cluster
  auto refused = rollback(*trail.log, trail.registry, *back, true);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("now points to"), std::string::npos)
      << refused.error().message;
  EXPECT_TRUE(b.patches().empty());
}

// client-go's rules: a tokenFile is relative to the kubeconfig's folder, and a server URL's path
// (a proxy's, e.g. Rancher's /k8s/clusters/ID) prefixes every request.
TEST(K8sConfig, RelativeTokenFileAndAServerPathPrefix) {
  testing::TempDir tmp;
  testing::writeFile(tmp.path() / "kube" / "token", "from-file");
  const auto path = tmp.path() / "kube" / "config";
  httplib::Server server;
  std::string seen;
  server.Get(R"(/k8s/clusters/c-1/api/v1/namespaces/shop/pods/web-0)",
             [&](const httplib::Request& req, httplib::Response& res) {
               seen = req.path + " " + req.get_header_value("Authorization");
               res.set_content(R"({"metadata":{"name":"web-0","namespace":"shop"},"spec":{"containers":[
                   {"name":"app","resources":{"limits":{"cpu":"2"}}}]}})", "application/json");
             });
  test_support::likeTheApiServer(server);
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  testing::writeFile(path, fmt::format(R"(apiVersion: v1
kind: Config
current-context: p
contexts:
- name: p
  context: {{cluster: c, user: u}}
clusters:
- name: c
  cluster: {{server: "http://127.0.0.1:{}/k8s/clusters/c-1/"}}
users:
- name: u
  user: {{tokenFile: token}}
)", port));
  auto a = loadKubeconfig(path.string(), "");  // the working directory is not the kubeconfig's
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->token, "from-file");
  auto b = makeBackend(*a, fastPolls());
  auto cur = b->current("shop/web-0/app");
  server.stop();
  t.join();
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kCpu], 2.0);
  EXPECT_EQ(seen, "/k8s/clusters/c-1/api/v1/namespaces/shop/pods/web-0 Bearer from-file");
}

TEST(K8sTls, VerifiesTheServerCertificate) {
  SelfSigned server_cert, other;
  httplib::SSLServer server(server_cert.cert, server_cert.key);
  server.Get("/api/v1/namespaces/shop/pods/p", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"2"}}}]}})",
                    "application/json");
  });
  test_support::likeTheApiServer(server);
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });

  ClusterAccess a;
  a.server = fmt::format("https://127.0.0.1:{}", port);
  a.ca_pem = server_cert.pem();
  auto trusted = makeBackend(a, fastPolls())->current("shop/p");
  a.ca_pem = other.pem();
  auto untrusted = makeBackend(a, fastPolls())->current("shop/p");
  server.stop();
  t.join();
  ASSERT_TRUE(trusted) << trusted.error().message;
  EXPECT_DOUBLE_EQ(*(*trusted)[Resource::kCpu], 2.0);
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().code, ErrorCode::kUnavailable);
}

// Mutual TLS: the server only talks to clients whose certificate it trusts; the client key and
// certificate come from a kubeconfig's client-certificate-data / client-key-data.
TEST(K8sTls, PresentsTheKubeconfigClientCertificate) {
  SelfSigned server_cert, client_cert, stranger;
  X509_STORE* clients = X509_STORE_new();
  X509_STORE_add_cert(clients, client_cert.cert);
  httplib::SSLServer server(server_cert.cert, server_cert.key, clients);
  server.Get("/api/v1/namespaces/shop/pods/p", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"spec":{"containers":[{"name":"c","resources":{"limits":{"memory":"1Gi"}}}]}})",
                    "application/json");
  });
  test_support::likeTheApiServer(server);
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });

  testing::TempDir tmp;
  auto kubeconfig = [&](const SelfSigned& who) {
    const auto path = tmp.path() / "config";
    testing::writeFile(path, fmt::format(R"(apiVersion: v1
kind: Config
current-context: c
contexts: [{{name: c, context: {{cluster: k, user: u}}}}]
clusters: [{{name: k, cluster: {{server: "https://127.0.0.1:{}", certificate-authority-data: "{}"}}}}]
users: [{{name: u, user: {{client-certificate-data: "{}", client-key-data: "{}"}}}}]
)", port, b64(server_cert.pem()), b64(who.pem()), b64(who.keyPem())));
    return path.string();
  };
  BackendOptions o;
  o.values["kubeconfig"] = kubeconfig(client_cert);
  auto accepted = makeKubernetesBackend(o)->current("shop/p");
  o.values["kubeconfig"] = kubeconfig(stranger);
  auto refused = makeKubernetesBackend(o)->current("shop/p");
  server.stop();
  t.join();
  ASSERT_TRUE(accepted) << accepted.error().message;
  EXPECT_DOUBLE_EQ(*(*accepted)[Resource::kMemory], 1024 * kMiB);
  EXPECT_FALSE(refused);
}

// A fake API server over mutual TLS that trusts `clients` and notes which of them each request
// came with (its index, -1 for none), on `port` (0: any).
class TlsApiServer {
 public:
  TlsApiServer(const SelfSigned& cert, std::vector<const SelfSigned*> clients, int port = 0)
      : clients_(std::move(clients)) {
    X509_STORE* store = X509_STORE_new();
    for (const auto* c : clients_) X509_STORE_add_cert(store, c->cert);
    server_ = std::make_unique<httplib::SSLServer>(cert.cert, cert.key, store);
    server_->Get("/api/v1/namespaces/shop/pods/p", [this](const httplib::Request& req, httplib::Response& res) {
      X509* peer = SSL_get1_peer_certificate(req.ssl);
      int who = -1;
      for (std::size_t i = 0; peer && i < clients_.size(); ++i)
        if (X509_cmp(peer, clients_[i]->cert) == 0) who = static_cast<int>(i);
      X509_free(peer);
      {
        std::lock_guard lock(mu_);
        seen_.push_back(who);
      }
      res.set_content(R"({"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"1"}}}]}})",
                      "application/json");
    });
    test_support::likeTheApiServer(*server_);
    port_ = port == 0 ? server_->bind_to_any_port("127.0.0.1")
                      : (server_->bind_to_port("127.0.0.1", port) ? port : -1);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
  }
  ~TlsApiServer() {
    server_->stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<int> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::vector<const SelfSigned*> clients_;
  std::unique_ptr<httplib::SSLServer> server_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<int> seen_;
};

// A client certificate renewed (cert-manager, kubeadm) and a cluster CA rotated under a running
// backend: the next request uses what the files hold, as client-go's does; a rotation half done
// (the new certificate written before its key) keeps the pair in use.
TEST(K8sTls, UsesARotatedClientCertificateAndClusterCaWithoutARestart) {
  namespace fs = std::filesystem;
  SelfSigned server_one, server_two, c1("client one"), c2("client two"), c3("client three");
  testing::TempDir tmp;
  // As cert-manager and certbot do: a new file renamed over the old one.
  auto replace = [&](const char* name, const std::string& text) {
    testing::writeFile(tmp.path() / "new", text);
    fs::rename(tmp.path() / "new", tmp.path() / name);
  };
  replace("ca.crt", server_one.pem());
  replace("client.crt", c1.pem());
  replace("client.key", c1.keyPem());
  auto api = std::make_unique<TlsApiServer>(server_one, std::vector<const SelfSigned*>{&c1, &c2, &c3});
  const int port = api->port();
  testing::writeFile(tmp.path() / "config", fmt::format(R"(apiVersion: v1
kind: Config
current-context: c
contexts: [{{name: c, context: {{cluster: k, user: u}}}}]
clusters: [{{name: k, cluster: {{server: "https://127.0.0.1:{}", certificate-authority: ca.crt}}}}]
users: [{{name: u, user: {{client-certificate: client.crt, client-key: client.key}}}}]
)", port));
  BackendOptions o;
  o.values["kubeconfig"] = (tmp.path() / "config").string();
  auto b = makeKubernetesBackend(o);
  auto get = [&] {
    auto cur = b->current("shop/p");
    return cur ? std::string() : cur.error().message;
  };
  EXPECT_EQ(get(), "");
  replace("client.crt", c2.pem());
  replace("client.key", c2.keyPem());
  EXPECT_EQ(get(), "");
  replace("client.crt", c3.pem());  // its key not written yet
  EXPECT_EQ(get(), "");
  replace("client.key", c3.keyPem());
  EXPECT_EQ(get(), "");
  EXPECT_EQ(api->seen(), (std::vector{0, 1, 1, 2}));

  // The cluster's serving certificate changes to one the old CA did not sign: refused until
  // the CA file holds the new CA.
  api.reset();
  TlsApiServer rotated(server_two, {&c1, &c2, &c3}, port);
  ASSERT_EQ(rotated.port(), port);
  EXPECT_NE(get(), "");
  replace("ca.crt", server_two.pem());
  EXPECT_EQ(get(), "");
  EXPECT_EQ(rotated.seen(), (std::vector{2}));
}

}  // namespace
}  // namespace foresight::allocate::k8s

namespace foresight::allocate::k8s {
namespace {

// loadInCluster as in a pod (the service's address in the environment), reading `sa_dir`.
Result<ClusterAccess> loadInClusterAt(const std::filesystem::path& sa_dir) {
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto a = loadInCluster(sa_dir.string());
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  return a;
}

TEST(K8sConfig, InClusterServiceAccount) {
  testing::TempDir sa;
  testing::writeFile(sa.path() / "token", "sa-token\n");
  testing::writeFile(sa.path() / "ca.crt", "-----BEGIN CERTIFICATE-----\nY\n-----END CERTIFICATE-----\n");
  testing::writeFile(sa.path() / "namespace", "prod");
  auto a = loadInClusterAt(sa.path());
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->server, "https://10.96.0.1:443");
  EXPECT_EQ(a->token, "sa-token");
  EXPECT_EQ(a->default_namespace, "prod");
  EXPECT_NE(a->ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  auto outside = loadInCluster(sa.path().string());
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code, ErrorCode::kUnavailable);
}

// A projected service-account token is replaced by the kubelet before its hour is up (a Secret
// volume's `..data` symlink swap): a long `foresight run` sends the token the file holds now.
TEST(K8sConfig, SendsTheTokenItsFileHoldsNowAfterARotation) {
  namespace fs = std::filesystem;
  testing::TempDir sa;
  for (const char* v : {"v1", "v2"}) fs::create_directories(sa.path() / v);
  testing::writeFile(sa.path() / "v1" / "token", "token-one\n");
  testing::writeFile(sa.path() / "v2" / "token", "token-two\n");
  testing::writeFile(sa.path() / "ca.crt", "-----BEGIN CERTIFICATE-----\nY\n-----END CERTIFICATE-----\n");
  fs::create_directory_symlink("v1", sa.path() / "..data");
  fs::create_symlink("..data/token", sa.path() / "token");
  auto in_cluster = loadInClusterAt(sa.path());
  ASSERT_TRUE(in_cluster) << in_cluster.error().message;
  EXPECT_EQ(in_cluster->token, "token-one");
  EXPECT_EQ(in_cluster->token_file, (sa.path() / "token").string());

  FakeApiServer api;
  ClusterAccess a = api.access();  // the fake's plain-HTTP address, the service account's token
  a.token = in_cluster->token;
  a.token_file = in_cluster->token_file;
  auto b = makeBackend(a, fastPolls());
  ASSERT_TRUE(b->current("shop/web-0/app"));
  fs::create_directory_symlink("v2", sa.path() / "..data.new");
  fs::rename(sa.path() / "..data.new", sa.path() / "..data");
  ASSERT_TRUE(b->current("shop/web-0/app"));
  // A file that no longer holds a token keeps the last one (and the kubelet writes the next).
  testing::writeFile(sa.path() / "v2" / "token", "");
  ASSERT_TRUE(b->current("shop/web-0/app"));
  const auto reqs = api.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].auth, "Bearer token-one");
  EXPECT_EQ(reqs[1].auth, "Bearer token-two");
  EXPECT_EQ(reqs[2].auth, "Bearer token-two");
}

}  // namespace
}  // namespace foresight::allocate::k8s
