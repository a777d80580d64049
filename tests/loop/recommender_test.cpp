// `foresight recommend` against a fake API server on 127.0.0.1 (cpp-httplib) that serves what the
// stock VPA recommender reads, as documented: VerticalPodAutoscalers (autoscaling.k8s.io/v1),
// their targets' selectors (apps/v1 spec.selector; a custom resource's scale subresource found
// through API discovery), PodMetrics (metrics.k8s.io/v1beta1) and pods' containerStatuses, and
// takes the recommendation as a JSON patch on the VPA's status. No real API server was used.
#include "foresight/loop/recommender.h"

#include <fmt/chrono.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <tuple>
#include <thread>

#include "foresight/allocate/audit.h"
#include "foresight/collect/collector.h"
#include "support/fake_vpa_cluster.h"
#include "support/mutate.h"
#include "support/prometheus.h"
#include "support/shell.h"

namespace foresight::loop {
namespace {
using nlohmann::json;
using test_support::FakeCluster;
constexpr double kMiB = 1024.0 * 1024;

// The recommendation written for one container, as {resource: {target, lowerBound, upperBound}}
// in cores and bytes.
std::map<std::string, std::map<std::string, double>> recommendation(const json& vpa, const std::string& container) {
  std::map<std::string, std::map<std::string, double>> out;
  for (const auto& r : vpa["status"]["recommendation"]["containerRecommendations"])
    if (r["containerName"] == container)
      for (const char* bound : {"target", "lowerBound", "upperBound"})
        for (const char* res : {"cpu", "memory"})
          if (r[bound].contains(res))
            out[res][bound] = *allocate::k8s::parseQuantity(r[bound][res].get<std::string>());
  return out;
}

// A kubeconfig whose current context reaches `cluster` with a token.
void writeKubeconfig(const std::filesystem::path& file, const FakeCluster& cluster) {
  std::ofstream(file) << fmt::format(R"(apiVersion: v1
kind: Config
current-context: c
contexts: [{{name: c, context: {{cluster: k, user: u}}}}]
clusters: [{{name: k, cluster: {{server: "http://127.0.0.1:{}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
)", cluster.port());
}

struct Loop {
  std::unique_ptr<Autoscaler> autoscaler;
  std::unique_ptr<VpaRecommender> recommender;
};

// `selector_ttl_seconds`: how long a Deployment's selector is kept (VpaDiscovery).
Loop makeLoop(const FakeCluster& cluster, double selector_ttl_seconds = 600, HistoryReader history = {}) {
  AutoscalerConfig c;
  c.forecaster = seasonalForecasters({});
  c.min_history_seconds = 0;
  c.apply = true;
  // As `foresight recommend` makes them: the backend reads the VPAs the discovery listed.
  auto listed = std::make_shared<allocate::k8s::VpaObjects>();
  allocate::k8s::Settings s;
  s.mode = "vpa";
  s.listed = listed;
  Loop l;
  l.autoscaler = std::make_unique<Autoscaler>(std::move(c), allocate::k8s::makeBackend(cluster.access(), s),
                                              std::nullopt);
  l.recommender = std::make_unique<VpaRecommender>(
      allocate::k8s::VpaDiscovery(cluster.access(), selector_ttl_seconds, listed), "foresight", "", *l.autoscaler,
      std::move(history));
  return l;
}

TEST(VpaRecommender, WritesEachContainersRecommendationFromItsPodsUsage) {
  FakeCluster cluster;
  Loop l = makeLoop(cluster);
  for (int i = 0; i < 12; ++i) {
    auto r = l.recommender->round();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->vpas, 2u);
    EXPECT_EQ(r->containers, 3u);  // web's app and sidecar, canary's app
    EXPECT_EQ(r->samples, 3u);
    EXPECT_EQ(r->errors, 0u);
  }
  // The most either pod used, with the planner's headroom; never below it.
  auto app = recommendation(cluster.vpa("web"), "app");
  ASSERT_TRUE(app.count("cpu") && app.count("memory")) << cluster.vpa("web").dump();
  EXPECT_GE(app["cpu"]["target"], 0.45);
  EXPECT_LE(app["cpu"]["target"], 0.45 * 1.5);
  EXPECT_GE(app["memory"]["target"], 200 * kMiB);
  // At most the usage floor (+ 10 %, + 64 MiB) and its band (+ 10 %): a steady 200 MiB is below it.
  EXPECT_LE(app["memory"]["target"], (200 * 1.1 + 64) * 1.1 * kMiB + 4096);
  // Bounds from the forecast's quantiles (the planner's 0.5 and 0.99), not target x 0.9 / x 1.2:
  // a steady 0.45 cores puts both at the target.
  EXPECT_LE(app["cpu"]["lowerBound"], app["cpu"]["target"]);
  EXPECT_GE(app["cpu"]["upperBound"], app["cpu"]["target"]);
  EXPECT_GT(app["cpu"]["lowerBound"], 0.95 * app["cpu"]["target"]) << cluster.vpa("web").dump();
  EXPECT_LT(app["cpu"]["upperBound"], 1.1 * app["cpu"]["target"]) << cluster.vpa("web").dump();
  auto sidecar = recommendation(cluster.vpa("web"), "sidecar");
  ASSERT_TRUE(sidecar.count("cpu")) << cluster.vpa("web").dump();
  EXPECT_GE(sidecar["cpu"]["target"], 0.012);
  EXPECT_LT(sidecar["cpu"]["target"], 0.1);
  // The Rollout's pods, found through its scale subresource ("1200000n" = 0.0012 cores).
  auto canary = recommendation(cluster.vpa("canary"), "app");
  ASSERT_TRUE(canary.count("memory")) << cluster.vpa("canary").dump();
  EXPECT_GE(canary["memory"]["target"], 64 * kMiB);
  // Another recommender's VPA: not read further, not written.
  EXPECT_FALSE(cluster.vpa("other")["status"].is_object());
  // Its pods were listed with the namespace's, not read apart: one list of pods and one of
  // their metrics per round, whatever the number of VPAs.
  std::size_t pod_lists = 0;
  for (const auto& r : cluster.requests()) {
    EXPECT_EQ(r.path.find("other"), std::string::npos) << r.method << " " << r.path;
    if (r.path.ends_with("/pods")) {
      EXPECT_EQ(r.selector, "");
      ++pod_lists;
    }
  }
  EXPECT_EQ(pod_lists, 2u * 12);
}

// The selectors the API server accepts (k8s.io/apimachinery labels.Parse), matched as it does.
TEST(LabelSelector, MatchesAsTheApiServerDoes) {
  using allocate::k8s::LabelSelector;
  const std::map<std::string, std::string> pod = {{"app", "web"}, {"tier", "front"}, {"app.kubernetes.io/version", "12"}};
  auto matches = [&](const std::string& text) {
    auto s = LabelSelector::parse(text);
    EXPECT_TRUE(s) << text << ": " << s.error().message;
    return s && s->matches(pod);
  };
  EXPECT_TRUE(matches("app=web"));
  EXPECT_TRUE(matches("app==web,tier in (front, back)"));
  EXPECT_TRUE(matches(" app = web , tier in (front) "));
  EXPECT_FALSE(matches("app=web,tier in (back)"));
  EXPECT_FALSE(matches("app=web,tier notin (front,back)"));
  EXPECT_TRUE(matches("app!=db"));
  EXPECT_TRUE(matches("env!=prod"));     // no such label: != matches
  EXPECT_TRUE(matches("env notin (a)"));  // as notin does
  EXPECT_FALSE(matches("env in (a)"));
  EXPECT_TRUE(matches("tier,!canary"));
  EXPECT_FALSE(matches("canary"));
  EXPECT_FALSE(matches("!tier"));
  EXPECT_TRUE(matches("app.kubernetes.io/version>11"));
  EXPECT_FALSE(matches("app.kubernetes.io/version<12"));
  EXPECT_FALSE(matches("app>1"));  // not a number: no match
  EXPECT_FALSE(matches("app="));  // "" is a value, and web is not it
  for (const char* bad : {"", "app=web,", "tier in (front", "tier in front)", "tier on (a)", "app=we b",
                          "app>x", "a!b", "tier in ()"}) {
    auto s = LabelSelector::parse(bad);
    EXPECT_FALSE(s) << "'" << bad << "' parsed";
    if (!s) {
      EXPECT_NE(s.error().message.find(bad), std::string::npos) << s.error().message;
    }
  }
}

// A CronJob's VPA: the stock VPA selects its jobs' pods by the job template's labels.
TEST(VpaRecommender, ACronJobsPodsAreThoseOfItsJobTemplatesLabels) {
  FakeCluster cluster;
  cluster.cronjob = true;
  Loop l = makeLoop(cluster);
  for (int i = 0; i < 12; ++i) {
    auto r = l.recommender->round();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->vpas, 3u);
    EXPECT_EQ(r->errors, 0u);
  }
  auto app = recommendation(cluster.vpa("report"), "app");
  ASSERT_TRUE(app.count("cpu")) << cluster.vpa("report").dump();
  EXPECT_GE(app["cpu"]["target"], 0.7);
  EXPECT_LE(app["cpu"]["target"], 0.7 * 1.5);
  EXPECT_LT(app["memory"]["target"], 356 * kMiB);

  // A job's pod is not restarted after an OOM kill (restartPolicy Never): the kill is in its
  // state, not its lastState, and still bumps the memory of the next job's pod, which has metrics.
  FakeCluster killed;
  killed.cronjob = true;
  killed.job_oom_at = killed.clock - 600;
  Loop k = makeLoop(killed);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(k.recommender->round());
  // The stock bump of its 256 Mi limit: x 1.2, at least + 100 Mi.
  EXPECT_GE(recommendation(killed.vpa("report"), "app")["memory"]["target"], 356 * kMiB) << killed.vpa("report").dump();
}

// As the stock recommender: a container whose policy (its own, else "*") says mode Off is not
// forecast or written, and that is no error.
// The VPAs come from the round's listing, not from a GET per container; a container's write
// builds on its sibling's write of the same round, not on the listing it outdated.
TEST(VpaRecommender, ReadsTheVpasFromTheListingAndWritesOnTheLastWrite) {
  FakeCluster cluster;
  Loop l = makeLoop(cluster);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(l.recommender->round());
  for (const auto& r : cluster.requests())
    EXPECT_FALSE(r.method == "GET" && r.path.find("/verticalpodautoscalers/") != std::string::npos) << r.path;
  const auto before = cluster.requests().size();
  ASSERT_TRUE(l.recommender->round());
  // The listing, the namespace's pods and their metrics, the Rollout's selector (API discovery and
  // its scale subresource, which can change); a write only where a target moved.
  std::size_t reads = 0;
  const auto requests = cluster.requests();
  for (std::size_t i = before; i < requests.size(); ++i) {
    const auto& r = requests[i];
    if (r.method != "GET") continue;
    ++reads;
    EXPECT_TRUE(r.path.ends_with("/verticalpodautoscalers") || r.path.ends_with("/pods") ||
                r.path.starts_with("/apis/argoproj.io/"))
        << r.path;
    // The lists come from the API server's watch cache (the metrics API has none).
    if (!r.path.starts_with("/apis/metrics.k8s.io/") && !r.path.starts_with("/apis/argoproj.io/")) {
      EXPECT_EQ(r.resource_version, "0") << r.path;
    }
  }
  EXPECT_LE(reads, 1u + 2 + 2);

  auto listed = std::make_shared<allocate::k8s::VpaObjects>();
  ASSERT_TRUE(allocate::k8s::VpaDiscovery(cluster.access(), 600, listed).vpas("foresight", ""));
  allocate::k8s::Settings s;
  s.mode = "vpa";
  s.listed = listed;
  auto backend = allocate::k8s::makeBackend(cluster.access(), s);
  const auto writes_from = cluster.requests().size();
  allocate::Allocation app, sidecar;
  app[Resource::kCpu] = 0.75;
  sidecar[Resource::kCpu] = 0.03;
  ASSERT_TRUE(backend->apply("shop/web/app", app));
  ASSERT_TRUE(backend->apply("shop/web/sidecar", sidecar));
  EXPECT_DOUBLE_EQ(recommendation(cluster.vpa("web"), "app")["cpu"]["target"], 0.75) << cluster.vpa("web").dump();
  EXPECT_DOUBLE_EQ(recommendation(cluster.vpa("web"), "sidecar")["cpu"]["target"], 0.03);
  auto current = backend->current("shop/web/app");
  ASSERT_TRUE(current) << current.error().message;
  EXPECT_DOUBLE_EQ(*(*current)[Resource::kCpu], 0.75);
  const auto writes = cluster.requests();
  for (std::size_t i = writes_from; i < writes.size(); ++i) EXPECT_EQ(writes[i].method, "PATCH") << writes[i].path;
}

// A Deployment's selector cannot change: read once, not every round; a Rollout's scale subresource
// is read every round.
TEST(VpaRecommender, ReadsAnImmutableSelectorOnce) {
  FakeCluster cluster;
  Loop l = makeLoop(cluster);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(l.recommender->round());
  std::size_t deployment = 0, scale = 0;
  for (const auto& r : cluster.requests()) {
    deployment += r.path.ends_with("/deployments/web");
    scale += r.path.ends_with("/rollouts/canary/scale");
  }
  EXPECT_EQ(deployment, 1u);
  EXPECT_EQ(scale, 5u);
}

TEST(VpaRecommender, LeavesContainersWhosePolicyIsOffAlone) {
  FakeCluster cluster;
  cluster.patchVpa("web", R"([{"op": "add", "path": "/spec/resourcePolicy", "value": {"containerPolicies": [
      {"containerName": "*", "mode": "Off"}, {"containerName": "app", "mode": "Auto"}]}}])");
  Loop l = makeLoop(cluster);
  for (int i = 0; i < 12; ++i) {
    auto r = l.recommender->round();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->containers, 2u);  // web's app, canary's app
    EXPECT_EQ(r->errors, 0u);
  }
  EXPECT_TRUE(recommendation(cluster.vpa("web"), "app").count("cpu")) << cluster.vpa("web").dump();
  EXPECT_TRUE(recommendation(cluster.vpa("web"), "sidecar").empty()) << cluster.vpa("web").dump();
}

TEST(VpaRecommender, AnOomKillRaisesMemoryAsTheStockRecommenderDoes) {
  FakeCluster cluster;
  Loop l = makeLoop(cluster);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(l.recommender->round());
  const double before = recommendation(cluster.vpa("web"), "app")["memory"]["target"];
  ASSERT_LT(before, collect::memoryDemandAfterOomKill(256 * kMiB));
  cluster.oom_at = cluster.clock + 30;  // killed at its 256Mi limit, between two reads
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(l.recommender->round());
  EXPECT_GE(recommendation(cluster.vpa("web"), "app")["memory"]["target"],
            collect::memoryDemandAfterOomKill(256 * kMiB));
}

// web-1's app was killed five hours before this recommender first saw it (another replica held
// the lease then): the kill, still in the pod's status, keeps the rest of its day-long hold. One
// older than the hold counts no more.
TEST(VpaRecommender, AnEarlierKillInThePodsStatusKeepsTheRestOfItsHold) {
  auto target = [](std::int64_t ago) {
    FakeCluster cluster;
    cluster.oom_at = cluster.clock - ago;
    Loop l = makeLoop(cluster);
    for (int i = 0; i < 12; ++i) EXPECT_TRUE(l.recommender->round());
    return recommendation(cluster.vpa("web"), "app")["memory"]["target"];
  };
  EXPECT_GE(target(5 * 3600), collect::memoryDemandAfterOomKill(256 * kMiB));
  EXPECT_LT(target(25 * 3600), collect::memoryDemandAfterOomKill(256 * kMiB));
}

// An API server, metrics-server or proxy that answers out of the documented shape (a field of
// another type, or missing, anywhere in a VPA list, pod list, metrics list, selector or the answer to
// a status write) costs that round an error, never an exception out of the round: the recommender
// stays up for the VPAs whose answers are sound.
TEST(VpaRecommender, AnswersOutOfShapeAreErrorsNotCrashes) {
  FakeCluster cluster(2);
  cluster.cronjob = true;
  cluster.damageAnswers(7, 3, [](const std::string&) { return true; });  // most sound: rounds reach every step
  Loop l = makeLoop(cluster);
  std::size_t errors = 0, plans = 0;
  for (int i = 0; i < 400; ++i) {
    Result<VpaRecommender::Round> r = fail(ErrorCode::kInternal, "no round");
    ASSERT_NO_THROW(r = l.recommender->round()) << "round " << i;
    if (r) {
      errors += r->errors;
      plans += r->plans;
    } else {
      ++errors;
    }
  }
  EXPECT_GT(cluster.damagedAnswers(), 300);
  EXPECT_GT(errors, 100u);  // the damage was seen
  EXPECT_GT(plans, 0u);    // and the sound answers still made plans
}

// One pod out of shape costs only the VPAs that select it, with an error naming the pod; a pod
// whose labels do not read could be any VPA's, so that fails the namespace's round, as a broken
// list does.
TEST(VpaRecommender, APodOutOfShapeFailsOnlyTheVpasThatSelectIt) {
  auto roundOf = [](FakeCluster& cluster) {
    allocate::k8s::VpaDiscovery d(cluster.access(), 600, nullptr);
    std::map<std::string, std::string> result;  // VPA -> "" or its usage's error
    auto vpas = d.vpas("foresight", "shop");
    EXPECT_TRUE(vpas) << vpas.error().message;
    if (!vpas) return result;
    for (const auto& v : *vpas) {
      auto u = d.usage(v);
      result[v.name] = u ? (u->empty() ? "no usage" : "") : u.error().message;
    }
    return result;
  };
  auto named = [](const std::string& pod, auto change) {
    return [pod, change](json& item) {
      if (item["metadata"]["name"] == pod) change(item);
    };
  };
  FakeCluster cluster;
  auto sound = roundOf(cluster);
  EXPECT_EQ(sound, (std::map<std::string, std::string>{{"web", ""}, {"canary", ""}}));

  cluster.edit_pod = named("canary-1", [](json& p) { p["spec"]["containers"] = "app"; });
  auto pod = roundOf(cluster);
  EXPECT_EQ(pod["web"], "");
  EXPECT_NE(pod["canary"].find("pod canary-1: unexpected answer from the API server: items[4].spec.containers is a "
                               "string, expected an array"),
            std::string::npos)
      << pod["canary"];
  EXPECT_NE(pod["canary"].find("/api/v1/namespaces/shop/pods"), std::string::npos) << pod["canary"];

  cluster.edit_pod = {};
  cluster.edit_pod_metrics = named("web-2", [](json& p) { p["containers"][0]["usage"] = "450m"; });
  auto metrics = roundOf(cluster);
  EXPECT_EQ(metrics["canary"], "");
  EXPECT_NE(metrics["web"].find("pod web-2: unexpected answer from the API server: items[1].containers[0].usage "
                                "(container app) is a string, expected an object"),
            std::string::npos)
      << metrics["web"];
  EXPECT_NE(metrics["web"].find("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods"), std::string::npos) << metrics["web"];

  // No labels to select by, or no name to join the metrics on: every VPA of the namespace fails.
  cluster.edit_pod_metrics = {};
  cluster.edit_pod = named("canary-1", [](json& p) { p["metadata"]["labels"] = "app=canary"; });
  auto labels = roundOf(cluster);
  for (const auto& vpa : {"web", "canary"})
    EXPECT_NE(labels[vpa].find("items[4].metadata.labels is a string, expected an object"), std::string::npos)
        << vpa << ": " << labels[vpa];
  cluster.edit_pod = {};
  cluster.edit_pod_metrics = named("canary-1", [](json& p) { p["metadata"]["name"] = 7; });
  auto name = roundOf(cluster);
  for (const auto& vpa : {"web", "canary"})
    EXPECT_NE(name[vpa].find("items[4].metadata.name is a number, expected a string"), std::string::npos)
        << vpa << ": " << name[vpa];
}

// A VPA out of shape is left out with its reason (ConfigUnsupported), not the whole listing; one
// whose name or recommenders do not read is left out, logged; a status out of shape is written anew.
TEST(VpaRecommender, AVpaOutOfShapeIsLeftOutNotTheListing) {
  FakeCluster cluster;
  cluster.edit_vpa = [](json& v) {
    if (v["metadata"]["name"] == "canary") v["spec"]["targetRef"]["kind"] = 5;
  };
  Loop l = makeLoop(cluster);
  l.recommender->reportConditions(true);
  for (int i = 0; i < 12; ++i) {  // a plan takes 10 samples
    auto r = l.recommender->round();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->errors, 1u);
    EXPECT_EQ(r->containers, 2u);  // web's app and sidecar
  }
  EXPECT_TRUE(recommendation(cluster.vpa("web"), "app").count("cpu")) << cluster.vpa("web").dump();
  const json canary = cluster.vpa("canary");
  bool reported = false;
  for (const auto& c : canary.value("status", json::object()).value("conditions", json::array()))
    reported = reported || (c.value("type", "") == "ConfigUnsupported" &&
                            c.value("message", "").find("spec.targetRef.kind is a number, expected a string") != std::string::npos);
  EXPECT_TRUE(reported) << canary.dump();

  cluster.edit_vpa = [](json& v) {
    if (v["metadata"]["name"] == "web") v["metadata"]["name"] = 7;
    if (v["metadata"]["name"] == "canary") v["status"] = "broken";
  };
  Result<VpaRecommender::Round> again = fail(ErrorCode::kInternal, "no round");
  ASSERT_NO_THROW(again = l.recommender->round());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->containers, 1u);  // canary's app: web is left out
  EXPECT_EQ(again->errors, 0u);
}

TEST(VpaRecommender, NoNewMetricsNoNewSampleAndOnlyAGoneVpaIsForgotten) {
  FakeCluster cluster;
  Loop l = makeLoop(cluster);
  ASSERT_TRUE(l.recommender->round());
  cluster.metrics_frozen = true;
  auto same = l.recommender->round();
  ASSERT_TRUE(same);
  EXPECT_EQ(same->containers, 3u);
  EXPECT_EQ(same->samples, 0u);
  cluster.metrics_frozen = false;
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(l.recommender->round());
  auto workloads = [&] {
    std::set<std::string> w;
    for (const auto& row : l.autoscaler->view()) w.insert(row.workload);
    return w;
  };
  EXPECT_EQ(workloads(), (std::set<std::string>{"shop/canary/app", "shop/web/app", "shop/web/sidecar"}));
  // Scaled to zero (no pod, so no metrics): the VPA stays, and so does its containers' history.
  cluster.scaled_to_zero = true;
  auto none = l.recommender->round();
  ASSERT_TRUE(none);
  EXPECT_EQ(none->containers, 0u);
  EXPECT_EQ(workloads(), (std::set<std::string>{"shop/canary/app", "shop/web/app", "shop/web/sidecar"}));
  cluster.scaled_to_zero = false;
  // The sidecar taken out of the pods: forgotten once the others have had a day of metrics without it.
  cluster.sidecars = false;
  ASSERT_TRUE(l.recommender->round());
  EXPECT_TRUE(workloads().count("shop/web/sidecar"));
  cluster.clock += 86400;
  ASSERT_TRUE(l.recommender->round());
  EXPECT_EQ(workloads(), (std::set<std::string>{"shop/canary/app", "shop/web/app"}));
  cluster.sidecars = true;
  cluster.vpa_names = {"web", "other"};
  ASSERT_TRUE(l.recommender->round());
  EXPECT_EQ(workloads(), (std::set<std::string>{"shop/web/app"}));  // the sidecar has no history yet
}

// A target that does not resolve (the API server failing, an object not as documented, one that is
// not there) costs that VPA its round, not its history, and the other VPAs go on.
TEST(VpaRecommender, AnUnresolvedTargetSkipsItsRoundButKeepsItsHistory) {
  FakeCluster cluster;
  Loop l = makeLoop(cluster, 0);  // the Deployment read every round
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(l.recommender->round());
  auto containers = [&] {
    std::set<std::string> w;
    for (const auto& row : l.autoscaler->view()) w.insert(row.workload);
    return w;
  };
  const auto before = containers();
  ASSERT_TRUE(before.count("shop/web/app"));
  for (const auto& answer : {std::pair<int, std::string>{500, R"({"kind":"Status","message":"etcdserver: request timed out"})"},
                             {200, R"({"kind":"Deployment","spec":"not an object"})"},
                             {200, R"({"kind":"Deployment","spec":{"selector":{"matchExpressions":[{"key":"a","operator":"Gt"}]}}})"},
                             {200, R"({"kind":"Deployment","spec":{"selector":{}}})"}}) {
    cluster.deployment_answer = answer;
    auto r = l.recommender->round();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->errors, 1u) << answer.second;  // web
    EXPECT_EQ(r->samples, 1u) << answer.second;  // canary's app
    EXPECT_EQ(containers(), before) << answer.second;
  }
  auto discovery = allocate::k8s::VpaDiscovery(cluster.access());
  auto listed = discovery.vpas("foresight", "shop");
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ(listed->at(0).name, "web");
  EXPECT_NE(listed->at(0).error.find("spec.selector: empty selector"), std::string::npos) << listed->at(0).error;
  EXPECT_EQ(listed->at(1).error, "");
  cluster.deployment_answer.reset();
  auto r = l.recommender->round();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->errors, 0u);
  EXPECT_EQ(r->samples, 3u);
}

// The history is asked for once per container, on first sight, for the pods that run it now and
// the day before its first live sample; a history that cannot be read costs nothing but itself.
TEST(VpaRecommender, AsksForEachNewContainersPastOnceAndGoesOnWithoutIt) {
  FakeCluster cluster;
  std::vector<HistoryRequest> calls;
  std::mutex mu;  // the reader is called from several threads
  Loop l = makeLoop(cluster, 600, [&](const HistoryRequest& h) -> Result<std::vector<trace::RawSeries>> {
    std::lock_guard lock(mu);
    calls.push_back(h);
    return fail(ErrorCode::kUnavailable, "http://prometheus:9090: no answer");
  });
  auto first = l.recommender->round();
  ASSERT_TRUE(first) << first.error().message;
  std::sort(calls.begin(), calls.end(), [](const auto& a, const auto& b) { return a.target_kind < b.target_kind; });
  EXPECT_EQ(first->errors, 2u);  // web's and canary's history
  EXPECT_EQ(first->samples, 3u);
  EXPECT_EQ(first->history, 0u);
  ASSERT_EQ(calls.size(), 2u);
  const std::int64_t live = cluster.clock;  // the metrics' time this round
  for (const auto& c : calls) {
    EXPECT_EQ(c.ns, "shop");
    EXPECT_EQ(c.end, live - 1);
    EXPECT_EQ(c.start, live - 86400);
  }
  EXPECT_EQ(calls[0].target_kind, "Deployment");
  EXPECT_EQ(calls[0].target_name, "web");
  EXPECT_EQ(calls[1].target_kind, "Rollout");
  EXPECT_EQ(calls[0].pods, (std::vector<std::string>{"web-1", "web-2"}));
  EXPECT_EQ(calls[0].containers, (std::vector<std::string>{"app", "sidecar"}));
  EXPECT_EQ(calls[1].pods, (std::vector<std::string>{"canary-1"}));
  EXPECT_EQ(calls[1].containers, (std::vector<std::string>{"app"}));
  for (int i = 0; i < 3; ++i) {
    auto r = l.recommender->round();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->errors, 0u);
  }
  EXPECT_EQ(calls.size(), 2u);
}

// After a restart every VPA asks for its past at once: the reads run side by side (at most 8),
// and each answer reaches the VPA that asked.
TEST(VpaRecommender, ReadsTheNewVpasHistoriesSideBySide) {
  FakeCluster cluster(20);
  std::mutex mu;
  int running = 0, most = 0, asked = 0;
  Loop l = makeLoop(cluster, 600, [&](const HistoryRequest& h) -> Result<std::vector<trace::RawSeries>> {
    {
      std::lock_guard lock(mu);
      most = std::max(most, ++running);
      ++asked;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a Prometheus round trip
    std::lock_guard lock(mu);
    --running;
    // An hour of the app using 1 GiB for svc-7, 100 MiB for the others.
    trace::RawSeries s;
    s.id = "app";
    for (std::int64_t t = h.end - 3600; t <= h.end; t += 60) {
      s.time.push_back(t);
      s.value[index(Resource::kCpu)].push_back(0.3);
      s.value[index(Resource::kMemory)].push_back(h.target_name == "svc-7" ? 1024 * kMiB : 100 * kMiB);
    }
    return std::vector<trace::RawSeries>{s};
  });
  auto r = l.recommender->round();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(asked, 22);  // web, canary, svc-0 ... svc-19
  EXPECT_GT(most, 1);
  EXPECT_LE(most, 8);
  EXPECT_EQ(r->errors, 0u);
  EXPECT_EQ(r->plans, 22u) << "each app planned in the first round";
  EXPECT_GE(recommendation(cluster.vpa("svc-7"), "app")["memory"]["target"], 1024 * kMiB);
  EXPECT_LT(recommendation(cluster.vpa("svc-6"), "app")["memory"]["target"], 512 * kMiB);
  EXPECT_LT(recommendation(cluster.vpa("svc-8"), "app")["memory"]["target"], 512 * kMiB);
}

// After a restart the recommender knows only what the metrics API shows now. With Prometheus it
// starts from each container's past, read from Debian's prometheus on 127.0.0.1 holding cAdvisor
// history backfilled with promtool: it recommends in its first round, from the past of the VPA's
// own pods only.
TEST(VpaRecommender, StartsFromEachContainersPastInPrometheus) {
  namespace fs = std::filesystem;
  if (!fs::exists(test_support::kPrometheusBinary) || !fs::exists(test_support::kPromtoolBinary))
    GTEST_SKIP() << "prometheus or promtool not installed (scripts/deps.sh test)";
  FakeCluster cluster;
  cluster.cronjob = true;
  const std::int64_t now = test_support::unixNow() / 60 * 60;
  cluster.clock = now - 60;  // the first listing moves it on by a minute
  // Scrapes every 30 s until two minutes before the first round. The Deployment's pods now (of
  // ReplicaSet web-77aa) ran for the last three hours: web-2's app used 300 Mi then (200 Mi now).
  // Before them, web-0 (of web-5d8f, the Deployment's ReplicaSet before a rollout) ran for three
  // hours; other-1 (another Deployment's pod in the namespace) used 2 Gi and 3 cores. Which pod
  // a ReplicaSet owned and which ReplicaSet a Deployment owned: kube-state-metrics' series. The
  // CronJob's job three hours ago ran a pod for ten minutes that used 900 Mi (kube_job_owner names
  // the CronJob).
  struct Pod {
    const char *pod, *container, *owner_kind, *owner, *controller;
    double cores, bytes;
    std::int64_t from, to;
  };
  const std::int64_t rollout = now - 3 * 3600, to = now - 120;
  const Pod pods[] = {{"web-1", "app", "ReplicaSet", "web-77aa", "web", 0.30, 200 * kMiB, rollout, to},
                      {"web-2", "app", "ReplicaSet", "web-77aa", "web", 0.45, 300 * kMiB, rollout, to},
                      {"web-1", "sidecar", "ReplicaSet", "web-77aa", "web", 0.01, 20 * kMiB, rollout, to},
                      {"web-2", "sidecar", "ReplicaSet", "web-77aa", "web", 0.012, 18 * kMiB, rollout, to},
                      {"web-0", "app", "ReplicaSet", "web-5d8f", "web", 0.40, 250 * kMiB, rollout - 3 * 3600, rollout - 60},
                      {"other-1", "app", "ReplicaSet", "other-1a2b", "other", 3.0, 2048 * kMiB, rollout, to},
                      {"report-29433800-q9z8w", "app", "Job", "report-29433800", "report", 0.2, 900 * kMiB, rollout, rollout + 600}};
  std::string om = "# TYPE container_cpu_usage_seconds counter\n";
  for (const auto& p : pods)
    for (std::int64_t t = p.from; t <= p.to; t += 30)
      om += fmt::format("container_cpu_usage_seconds_total{{namespace=\"shop\",pod=\"{}\",container=\"{}\"}} {} {}\n",
                        p.pod, p.container, p.cores * static_cast<double>(t - p.from), t);
  om += "# TYPE container_memory_working_set_bytes gauge\n";
  for (const auto& p : pods)
    for (std::int64_t t = p.from; t <= p.to; t += 30)
      om += fmt::format("container_memory_working_set_bytes{{namespace=\"shop\",pod=\"{}\",container=\"{}\"}} {} {}\n",
                        p.pod, p.container, p.bytes, t);
  // Throttling (with a quota; the others have no throttled series): web-1's app 0.5 s per second,
  // so it wanted 0.8 cores; web-2's sidecar 10 s per second, which is no more than its nodes' CPUs.
  om += "# TYPE container_cpu_cfs_throttled_seconds counter\n";
  for (const auto& [pod, container, per_second] : {std::tuple{"web-1", "app", 0.5}, {"web-2", "sidecar", 10.0}})
    for (std::int64_t t = rollout; t <= to; t += 30)
      om += fmt::format("container_cpu_cfs_throttled_seconds_total{{namespace=\"shop\",pod=\"{}\",container=\"{}\"}} {} {}\n",
                        pod, container, per_second * static_cast<double>(t - rollout), t);
  om += "# TYPE kube_pod_owner gauge\n";
  for (const auto& p : pods)
    if (std::string(p.container) == "app")
      for (std::int64_t t = p.from; t <= p.to; t += 30)
        om += fmt::format("kube_pod_owner{{namespace=\"shop\",pod=\"{}\",owner_kind=\"{}\",owner_name=\"{}\"}} 1 {}\n",
                          p.pod, p.owner_kind, p.owner, t);
  om += "# TYPE kube_replicaset_owner gauge\n";
  for (const auto& [rs, deployment] : {std::pair{"web-5d8f", "web"}, {"web-77aa", "web"}, {"other-1a2b", "other"}})
    for (std::int64_t t = rollout - 3 * 3600; t <= to; t += 30)
      om += fmt::format("kube_replicaset_owner{{namespace=\"shop\",replicaset=\"{}\",owner_kind=\"Deployment\",owner_name=\"{}\"}} 1 {}\n",
                        rs, deployment, t);
  om += "# TYPE kube_job_owner gauge\n";
  for (std::int64_t t = rollout; t <= rollout + 600; t += 30)
    om += fmt::format("kube_job_owner{{namespace=\"shop\",job_name=\"report-29433800\",owner_kind=\"CronJob\",owner_name=\"report\"}} 1 {}\n", t);
  const fs::path dir = fs::temp_directory_path() / ("foresight-recommend-history-" + std::to_string(::getpid()));
  auto server = test_support::serveHistory(dir, om);
  ASSERT_TRUE(server);
  trace::PrometheusQuery q;
  q.url = server->url();

  Loop with = makeLoop(cluster, 600, prometheusHistory(q, 60));
  with.recommender->throttlingFrom(prometheusThrottling(q, 60));
  auto r = with.recommender->round();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->errors, 0u);
  // A sample a minute: web's app for the six hours of web-0 and then web-1 and web-2, its sidecar
  // for the last three, report's app for its job's ten minutes (canary has no history).
  EXPECT_GE(r->history, 355u + 175 + 8) << server->logTail();
  EXPECT_LE(r->history, 365u + 185 + 12);
  EXPECT_EQ(r->plans, 3u);
  auto report = recommendation(cluster.vpa("report"), "app");
  ASSERT_TRUE(report.count("memory")) << cluster.vpa("report").dump();
  EXPECT_GE(report["memory"]["target"], 900 * kMiB);  // what the earlier job's pod used
  auto app = recommendation(cluster.vpa("web"), "app");
  ASSERT_TRUE(app.count("cpu") && app.count("memory")) << cluster.vpa("web").dump();
  EXPECT_GE(app["memory"]["target"], 300 * kMiB);  // what web-2 used, not what it uses now
  EXPECT_LT(app["memory"]["target"], 1024 * kMiB);  // not other-1's
  // Demand: web-1's 0.30 plus its 0.5 throttled; web-0, without a quota, kept its usage (the
  // history's count above).
  EXPECT_GE(app["cpu"]["target"], 0.8);
  EXPECT_LT(app["cpu"]["target"], 1.2);
  // 0.012 + 10 throttled, at most the 4 CPUs of the largest node the pods run on.
  auto sidecar = recommendation(cluster.vpa("web"), "sidecar");
  EXPECT_GE(sidecar["cpu"]["target"], 4.0) << cluster.vpa("web").dump();
  EXPECT_LE(sidecar["cpu"]["target"], 6.0);
  // The history itself, as the recommender asked for it: demand where throttled, usage where not.
  HistoryRequest h;
  h.ns = "shop";
  h.target_kind = "Deployment";
  h.target_name = "web";
  h.pods = {"web-1", "web-2"};
  h.containers = {"app", "sidecar"};
  h.start = rollout - 3 * 3600;
  h.end = to;
  h.max_cpus = 4;
  auto past = prometheusHistory(q, 60)(h);
  ASSERT_TRUE(past) << past.error().message;
  std::map<std::string, std::map<std::int64_t, double>> cpu;  // container -> time -> cores
  for (const auto& series : *past)
    for (std::size_t i = 0; i < series.time.size(); ++i) cpu[series.id][series.time[i]] = series.value[index(Resource::kCpu)][i];
  const std::int64_t before = rollout - 1800, after = rollout + 1800;  // web-0's time, then web-1's and web-2's
  ASSERT_TRUE(cpu["app"].count(before) && cpu["app"].count(after) && cpu["sidecar"].count(after))
      << past->size() << " series";
  EXPECT_NEAR(cpu["app"][before], 0.40, 1e-6);  // no quota, so no throttled series: usage
  EXPECT_NEAR(cpu["app"][after], 0.80, 1e-6);   // web-1: 0.30 + 0.5, above web-2's 0.45
  EXPECT_NEAR(cpu["sidecar"][after], 4.0, 1e-6);

  // The same first round without the history: nothing to recommend from yet.
  FakeCluster fresh;
  Loop without = makeLoop(fresh);
  auto w = without.recommender->round();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->plans, 0u);
  EXPECT_FALSE(fresh.vpa("web")["status"].is_object());
  server.reset();
  fs::remove_all(dir);
}

// The metrics API shows usage only: a container held at its cpu limit looks satisfied. With
// throttling (from Prometheus), its demand is its usage plus its throttled seconds per second,
// pod by pod, at most its node's CPUs; a throttling that cannot be read leaves usage, warned once.
TEST(VpaRecommender, ThrottlingRaisesCpuDemandUpToTheNodesCpus) {
  auto run = [](std::function<Result<std::map<std::string, double>>()> read, bool nodes_forbidden = false) {
    auto cluster = std::make_unique<FakeCluster>();
    cluster->nodes_forbidden = nodes_forbidden;
    Loop l = makeLoop(*cluster);
    l.recommender->throttlingFrom([read](const std::string& ns, std::int64_t) {
      EXPECT_EQ(ns, "shop");
      return read();
    });
    for (int i = 0; i < 12; ++i) {
      auto r = l.recommender->round();
      EXPECT_TRUE(r) << r.error().message;
      EXPECT_EQ(r ? r->errors : 1u, 0u);
    }
    const double cpu = recommendation(cluster->vpa("web"), "app")["cpu"]["target"];
    return std::pair{cpu, std::move(cluster)};
  };
  // web-2's app (0.45 cores on node-b, 2 CPUs) throttled 0.5 s per second: it wanted 0.95.
  auto [wanted, cluster] = run([] { return std::map<std::string, double>{{"web-2/app", 0.5}}; });
  EXPECT_GE(wanted, 0.95);
  EXPECT_LE(wanted, 0.95 * 1.5);
  std::size_t node_lists = 0;
  for (const auto& r : cluster->requests())
    if (r.path == "/api/v1/nodes") {
      ++node_lists;
      EXPECT_EQ(r.resource_version, "0");  // from the watch cache
    }
  EXPECT_EQ(node_lists, 1u);  // kept for 10 minutes
  // Throttled time sums over the CPUs whose queues waited: 30 s per second is not 30 cores.
  auto [capped, c2] = run([] { return std::map<std::string, double>{{"web-2/app", 30}}; });
  EXPECT_GE(capped, 2.0);
  EXPECT_LE(capped, 2.0 * 1.5);
  // Another pod's or container's throttling is not web's app's.
  auto [others, c3] = run([] { return std::map<std::string, double>{{"web-2/sidecar", 0.5}, {"canary-1/app", 1}}; });
  EXPECT_LE(others, 0.45 * 1.5);
  // Unreadable: usage, as without throttling.
  auto [usage, c4] = run([] { return Result<std::map<std::string, double>>(fail(ErrorCode::kUnavailable, "no answer")); });
  EXPECT_GE(usage, 0.45);
  EXPECT_LE(usage, 0.45 * 1.5);
  // Nodes it may not list (the ClusterRole's nodes rule not applied): usage, and the listing
  // tried again after a minute, not for every pod and round.
  auto [forbidden, c5] = run([] { return std::map<std::string, double>{{"web-2/app", 0.5}}; }, true);
  EXPECT_LE(forbidden, 0.45 * 1.5);
  node_lists = 0;
  for (const auto& r : c5->requests()) node_lists += r.path == "/api/v1/nodes";
  EXPECT_EQ(node_lists, 1u);
}

// The throttling query against Debian's prometheus: a container's throttled seconds per second
// from cAdvisor's counter, only the namespace's, not the pause container's.
TEST(VpaRecommender, ReadsThrottlingFromPrometheus) {
  namespace fs = std::filesystem;
  if (!fs::exists(test_support::kPrometheusBinary) || !fs::exists(test_support::kPromtoolBinary))
    GTEST_SKIP() << "prometheus or promtool not installed (scripts/deps.sh test)";
  const std::int64_t at = test_support::unixNow() / 60 * 60 - 3600;
  std::string om = "# TYPE container_cpu_cfs_throttled_seconds counter\n";
  struct Series {
    const char *ns, *pod, *container;
    double per_second;
  };
  for (const auto& x : {Series{"shop", "web-2", "app", 0.5}, Series{"shop", "web-1", "app", 0}, Series{"shop", "web-2", "POD", 0.2},
                        Series{"bank", "web-2", "app", 3.0}})
    for (std::int64_t t = at - 600; t <= at; t += 15)
      om += fmt::format("container_cpu_cfs_throttled_seconds_total{{namespace=\"{}\",pod=\"{}\",container=\"{}\"}} {} {}\n",
                        x.ns, x.pod, x.container, x.per_second * static_cast<double>(t - (at - 600)), t);
  const fs::path dir = fs::temp_directory_path() / ("foresight-recommend-throttling-" + std::to_string(::getpid()));
  auto server = test_support::serveHistory(dir, om);
  ASSERT_TRUE(server);
  trace::PrometheusQuery q;
  q.url = server->url();
  auto read = prometheusThrottling(q, 60)("shop", at);  // read every minute: a 2-minute rate
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_EQ(read->size(), 1u) << server->logTail();
  EXPECT_NEAR(read->at("web-2/app"), 0.5, 1e-9);
  server.reset();
  fs::remove_all(dir);
}

// As the stock recommender: `kubectl describe vpa` shows why a VPA has no recommendation, and
// that it has one; conditions are written when they change, not every round, and others' are kept.
TEST(VpaRecommender, KeepsTheVpasConditionsAsTheStockRecommenderDoes) {
  FakeCluster cluster;
  cluster.deployment_answer = {{500, R"({"kind":"Status","message":"etcdserver: request timed out"})"}};
  cluster.patchVpa("canary", R"([{"op": "add", "path": "/status", "value": {"conditions": [
      {"type": "FetchingHistory", "status": "False", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}}])");
  Loop l = makeLoop(cluster);
  l.recommender->reportConditions(true);
  auto condition = [&](const std::string& vpa, const std::string& type) {
    const json status = cluster.vpa(vpa).value("status", json::object());
    for (const auto& c : status.value("conditions", json::array()))
      if (c.value("type", "") == type) return c;
    return json();
  };
  ASSERT_TRUE(l.recommender->round());
  EXPECT_EQ(condition("web", "ConfigUnsupported")["status"], "True") << cluster.vpa("web").dump();
  EXPECT_NE(condition("web", "ConfigUnsupported").value("message", "").find("etcdserver: request timed out"),
            std::string::npos);
  EXPECT_EQ(condition("web", "RecommendationProvided")["status"], "False");
  EXPECT_EQ(condition("web", "RecommendationProvided")["reason"], "ConfigUnsupported");
  EXPECT_TRUE(condition("canary", "NoPodsMatched").is_null());
  EXPECT_EQ(condition("canary", "FetchingHistory")["lastTransitionTime"], "2026-12-01T00:00:00Z");
  EXPECT_TRUE(condition("other", "RecommendationProvided").is_null());  // another recommender's

  cluster.deployment_answer.reset();
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(l.recommender->round());
  EXPECT_TRUE(condition("web", "ConfigUnsupported").is_null()) << cluster.vpa("web").dump();
  EXPECT_EQ(condition("web", "RecommendationProvided")["status"], "True");
  EXPECT_EQ(condition("canary", "RecommendationProvided")["status"], "True");
  EXPECT_EQ(condition("canary", "FetchingHistory")["status"], "False");
  // Nothing new (the metrics API's window did not move): no write at all.
  cluster.metrics_frozen = true;
  const auto before = cluster.requests().size();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(l.recommender->round());
  const auto requests = cluster.requests();
  for (std::size_t i = before; i < requests.size(); ++i) EXPECT_NE(requests[i].method, "PATCH") << requests[i].path;
  // Scaled to zero: no pod matches; the recommendation made stays provided, since its time (made
  // older here, as it would be after a day).
  json conditions = cluster.vpa("web")["status"]["conditions"];
  for (auto& c : conditions) c["lastTransitionTime"] = "2026-12-02T00:00:00Z";
  cluster.patchVpa("web", json::array({{{"op", "replace"}, {"path", "/status/conditions"}, {"value", conditions}}}).dump());
  const json since = "2026-12-02T00:00:00Z";
  cluster.metrics_frozen = false;
  cluster.scaled_to_zero = true;
  ASSERT_TRUE(l.recommender->round());
  EXPECT_EQ(condition("web", "NoPodsMatched")["status"], "True");
  EXPECT_EQ(condition("web", "NoPodsMatched")["message"], "No pods match this VPA object");
  EXPECT_EQ(condition("web", "RecommendationProvided")["status"], "True");
  EXPECT_EQ(condition("web", "RecommendationProvided")["lastTransitionTime"], since);
}

TEST(VpaRecommender, ListingFailsWithTheServersMessage) {
  FakeCluster cluster;
  allocate::k8s::ClusterAccess a = cluster.access();
  a.server += "/no-such-proxy";
  auto vpas = allocate::k8s::VpaDiscovery(a).vpas("foresight", "");
  ASSERT_FALSE(vpas);
  EXPECT_NE(vpas.error().message.find("/no-such-proxy/apis/autoscaling.k8s.io/v1/verticalpodautoscalers"),
            std::string::npos)
      << vpas.error().message;
  EXPECT_NE(vpas.error().message.find("not found"), std::string::npos) << vpas.error().message;
}

TEST(K8sTime, ParsesRfc3339) {
  using allocate::k8s::parseRfc3339;
  EXPECT_EQ(*parseRfc3339("2026-12-05T21:40:00Z"), 1796506800);
  EXPECT_EQ(*parseRfc3339("2026-12-05T21:40:00.123456Z"), 1796506800);
  EXPECT_EQ(*parseRfc3339("2026-12-05T22:40:00+01:00"), 1796506800);
  EXPECT_EQ(*parseRfc3339("2026-12-05T20:40:00-01:00"), 1796506800);
  EXPECT_FALSE(parseRfc3339("2026-12-05 21:40"));
  EXPECT_FALSE(parseRfc3339("2026-12-05T21:40:00"));
  EXPECT_FALSE(parseRfc3339("2026-12-05T21:40:00Zjunk"));
}

// A lease of a second, renewed every 0.1 s, given up after 0.7 s: the tests' elections in seconds.
allocate::k8s::LeaseSettings quickLease(const std::string& identity) {
  allocate::k8s::LeaseSettings s;
  s.lease_seconds = 1;
  s.renew_deadline_seconds = 0.7;
  s.retry_seconds = 0.1;
  s.identity = identity;
  return s;
}

// Of two candidates one holds the lease while it renews, however long; the other takes it once
// the holder has gone silent for the lease's duration (on its own clock), or at once when the
// holder released it on stopping; a holder that lost it no longer leads.
TEST(LeaderElection, OneHoldsTheLeaseUntilItGoesSilentOrReleasesIt) {
  FakeCluster cluster;
  allocate::k8s::LeaderElector a(cluster.access(), quickLease("a"));
  allocate::k8s::LeaderElector b(cluster.access(), quickLease("b"));
  auto holder = [&] { return cluster.lease("kube-system/foresight-recommender")["spec"]["holderIdentity"]; };
  auto took = [](allocate::k8s::LeaderElector& e) {
    auto r = e.tryAcquireOrRenew();
    EXPECT_TRUE(r) << r.error().message;
    return r && *r;
  };
  ASSERT_TRUE(took(a));  // creates it
  EXPECT_FALSE(took(b));
  EXPECT_EQ(b.holder(), "a");
  EXPECT_TRUE(a.leading());
  EXPECT_FALSE(b.leading());
  for (int i = 0; i < 15; ++i) {  // 1.5 s of renewals: longer than the lease
    ASSERT_TRUE(took(a));
    ASSERT_FALSE(took(b));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(holder(), "a");
  // a goes silent (no release): b takes the lease once it has seen it unchanged for a second.
  const auto silent = std::chrono::steady_clock::now();
  bool b_took = false;
  while (!b_took && std::chrono::steady_clock::now() - silent < std::chrono::seconds(5)) {
    b_took = took(b);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(b_took);
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - silent).count(), 0.8);
  EXPECT_EQ(holder(), "b");
  EXPECT_EQ(cluster.lease("kube-system/foresight-recommender")["spec"]["leaseTransitions"], 1);
  // a back: it sees b's lease and no longer leads, though it once did.
  EXPECT_FALSE(took(a));
  EXPECT_FALSE(a.leading());
  EXPECT_TRUE(a.hasLed());
  EXPECT_EQ(a.holder(), "b");
  // b stops cleanly: it releases the lease, and a takes it at once.
  b.stop();
  EXPECT_EQ(holder(), "");
  EXPECT_TRUE(took(a));
  EXPECT_EQ(holder(), "a");
}

// Lease answers out of the documented shape (a value of another type, or removed, anywhere) are
// errors of that try, never exceptions. (Whether two electors both lead is not checked here: an
// answer that drops the holder but keeps the resourceVersion is a lie no API server tells, and it
// lets the other elector take the lease.)
TEST(LeaderElection, LeaseAnswersOutOfShapeAreErrorsNotCrashes) {
  FakeCluster cluster;
  cluster.damageAnswers(5, 2, [](const std::string& path) { return path.find("/leases") != std::string::npos; });
  allocate::k8s::LeaderElector a(cluster.access(), quickLease("a"));
  allocate::k8s::LeaderElector b(cluster.access(), quickLease("b"));
  int errors = 0;
  for (int i = 0; i < 200; ++i) {
    for (auto* e : {&a, &b}) {
      Result<bool> r = false;
      ASSERT_NO_THROW(r = e->tryAcquireOrRenew()) << i;
      errors += !r;
    }
  }
  EXPECT_GT(cluster.damagedAnswers(), 50);
  EXPECT_GT(errors, 20);
}

// Two replicas of the command with --leader-elect: one runs the rounds while the other stands
// by, and the standby takes over when the first stops.
TEST(RecommendCommand, ReplicasTakeTurnsOnTheLease) {
  FakeCluster cluster;
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("foresight-recommend-lease-{}", ::getpid());
  std::filesystem::create_directories(dir);
  writeKubeconfig(dir / "config", cluster);
  // Each replica runs until the test stops it (SIGTERM, as Kubernetes stops a pod), so that the
  // turns do not hang on how long a start takes on a loaded machine or in a sanitizer build.
  auto run = [&](const std::string& name) {
    return test_support::runShell(fmt::format(
        "echo $$ > '{}'; exec '{}' --log-level debug recommend --kubeconfig '{}' --period 0.2 --duration 120 "
        "--min-history 0 --apply --audit '{}' --no-view --listen '' --leader-elect --lease-duration 2 > '{}' 2>&1",
        (dir / (name + ".pid")).string(), FORESIGHT_BIN, (dir / "config").string(), (dir / (name + ".db")).string(),
        (dir / (name + ".log")).string()));
  };
  auto text = [&](const char* name) {
    std::ifstream in(dir / (std::string(name) + ".log"));
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  auto waitFor = [&](const char* name, const std::string& line) {
    for (int i = 0; i < 1200 && text(name).find(line) == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return text(name).find(line) != std::string::npos;
  };
  auto stop = [&](const char* name) {
    std::ifstream in(dir / (std::string(name) + ".pid"));
    pid_t pid = 0;
    in >> pid;
    if (pid > 0) ::kill(pid, SIGTERM);
  };
  test_support::Ran first, second;
  std::thread a([&] { first = run("a"); });
  auto recommended = [&] {
    const json web = cluster.vpa("web");
    return web.contains("status") && web["status"].contains("recommendation");
  };
  bool a_ran = false;  // until it has written a recommendation
  for (int i = 0; i < 1200 && !(a_ran = recommended()); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::thread b([&] { second = run("b"); });
  const bool b_waited = waitFor("b", "recommend: standing by while ");
  stop("a");  // it releases the lease on its way out
  const bool b_ran = waitFor("b", "recommend: round 0:");
  stop("b");
  a.join();
  b.join();
  EXPECT_TRUE(a_ran && b_waited && b_ran) << a_ran << b_waited << b_ran;
  const std::string la = text("a"), lb = text("b");
  EXPECT_EQ(first.exit_code, 0) << la;
  EXPECT_EQ(second.exit_code, 0) << lb;
  // a: created the lease, ran rounds, released it on stopping; b: stood by, took it, then ran its
  // rounds (debug log: "recommend: round N: ...").
  const auto a_took = la.find("took lease kube-system/foresight-recommender (created it)");
  const auto a_round = la.find("recommend: round 0:");
  const auto a_released = la.find("released lease kube-system/foresight-recommender");
  ASSERT_NE(a_took, std::string::npos) << la;
  ASSERT_NE(a_round, std::string::npos) << la;
  ASSERT_NE(a_released, std::string::npos) << la;
  EXPECT_LT(a_round, a_released);
  EXPECT_EQ(la.find("recommend: round", a_released), std::string::npos) << la;
  const auto b_waits = lb.find("recommend: standing by while ");
  const auto b_took = lb.find("took lease kube-system/foresight-recommender (held by no one)");
  const auto b_round = lb.find("recommend: round 0:");
  ASSERT_NE(b_waits, std::string::npos) << lb;
  ASSERT_NE(b_took, std::string::npos) << lb;
  ASSERT_NE(b_round, std::string::npos) << lb;
  EXPECT_LT(b_waits, b_took);
  EXPECT_LT(b_took, b_round);
  EXPECT_EQ(lb.find("recommend: round"), b_round) << lb;
  EXPECT_TRUE(recommendation(cluster.vpa("web"), "app").count("cpu")) << la;
  EXPECT_EQ(cluster.lease("kube-system/foresight-recommender")["spec"]["holderIdentity"], "");
  std::filesystem::remove_all(dir);
}

// A replica whose lease another took (it was partitioned, say, while the other waited it out)
// stops at once with a message, rather than write beside the new leader.
TEST(RecommendCommand, AReplicaThatLosesTheLeaseOrMayNotTakeItStops) {
  FakeCluster cluster;
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("foresight-recommend-lost-{}", ::getpid());
  std::filesystem::create_directories(dir);
  writeKubeconfig(dir / "config", cluster);
  test_support::Ran ran;
  std::thread command([&] {
    ran = test_support::runShell(fmt::format(
        "'{}' recommend --kubeconfig '{}' --period 0.2 --duration 20 --no-view --listen '' --leader-elect "
        "--lease-duration 2 2>&1",
        FORESIGHT_BIN, (dir / "config").string()));
  });
  for (int i = 0; i < 100 && cluster.lease("kube-system/foresight-recommender").is_null(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  cluster.takeLease("kube-system/foresight-recommender", "elsewhere");
  const auto taken = std::chrono::steady_clock::now();
  command.join();
  EXPECT_LT(std::chrono::steady_clock::now() - taken, std::chrono::seconds(5));
  EXPECT_EQ(ran.exit_code, 1) << ran.out;
  EXPECT_NE(ran.out.find("recommend: lost the lease to elsewhere; stopping"), std::string::npos) << ran.out;

  // A lease it may not touch (the Role not applied): refused at start with the server's answer,
  // not warned about every retry.
  cluster.leases_forbidden = true;
  const auto forbidden = test_support::runShell(fmt::format(
      "'{}' recommend --kubeconfig '{}' --duration 5 --no-view --listen '' --leader-elect 2>&1", FORESIGHT_BIN,
      (dir / "config").string()));
  EXPECT_EQ(forbidden.exit_code, 1) << forbidden.out;
  EXPECT_NE(forbidden.out.find("--leader-elect: lease kube-system/foresight-recommender: GET returned 403: "
                               "leases.coordination.k8s.io \"foresight-recommender\" is forbidden"),
            std::string::npos)
      << forbidden.out;
  std::filesystem::remove_all(dir);
}

// Every request a recommend round sends (listing, selectors, metrics, pods, the VPA read and its
// status patch) is one the shipped ClusterRole allows: a missing rule is a 403 in a real cluster.
TEST(RecommendRbac, CoversEveryRequestTheRecommenderMakes) {
  FakeCluster cluster;
  cluster.cronjob = true;
  Loop l = makeLoop(cluster);
  // --prometheus: a throttled container's demand is bounded by its node's CPUs (the nodes read).
  l.recommender->throttlingFrom([](const std::string&, std::int64_t) {
    return Result<std::map<std::string, double>>(std::map<std::string, double>{{"web-2/app", 0.5}});
  });
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(l.recommender->round());
  {  // --leader-elect: create, renew and release the lease in the ServiceAccount's namespace
    allocate::k8s::LeaderElector elector(cluster.access(), {});
    ASSERT_TRUE(elector.tryAcquireOrRenew());
    ASSERT_TRUE(elector.tryAcquireOrRenew());
  }
  // The ClusterRole's rules everywhere, the Role's in its namespace.
  const auto docs = YAML::LoadAllFromFile(std::string(FORESIGHT_SOURCE_DIR) + "/deploy/kubernetes/recommender-rbac.yaml");
  ASSERT_EQ(docs[1]["kind"].as<std::string>(), "ClusterRole");
  ASSERT_EQ(docs[3]["kind"].as<std::string>(), "Role");
  ASSERT_EQ(docs[3]["metadata"]["namespace"].as<std::string>(), "kube-system");
  ASSERT_EQ(docs[4]["roleRef"]["name"].as<std::string>(), docs[3]["metadata"]["name"].as<std::string>());
  auto allowed = [&](const std::string& ns, const std::string& group, const std::string& resource, const std::string& verb) {
    std::vector<YAML::Node> rules;
    for (const auto& rule : docs[1]["rules"]) rules.push_back(rule);
    if (ns == "kube-system")
      for (const auto& rule : docs[3]["rules"]) rules.push_back(rule);
    for (const auto& rule : rules) {
      auto has = [&](const char* key, const std::string& want) {
        for (const auto& v : rule[key]) {
          const auto s = v.as<std::string>();
          if (s == want || s == "*" || (s.starts_with("*/") && want.ends_with(s.substr(1)))) return true;
        }
        return false;
      };
      if (has("apiGroups", group) && has("resources", resource) && has("verbs", verb)) return true;
    }
    return false;
  };
  std::size_t checked = 0;
  for (const auto& r : cluster.requests()) {
    // /api/v1/... (core) or /apis/GROUP/VERSION/...; namespaces/NS/RESOURCE[/NAME[/SUB]].
    std::vector<std::string> p;
    std::stringstream ss(r.path);
    for (std::string part; std::getline(ss, part, '/');)
      if (!part.empty()) p.push_back(part);
    const bool core = p[0] == "api";
    const std::string group = core ? "" : p[1];
    std::size_t i = core ? 2 : 3;
    if (i >= p.size()) continue;  // API discovery: allowed to every user (system:discovery)
    std::string ns;
    if (p[i] == "namespaces" && i + 2 < p.size()) {
      ns = p[i + 1];
      i += 2;
    }
    std::string resource = p[i];
    const bool named = i + 1 < p.size();
    if (i + 2 < p.size()) resource += "/" + p[i + 2];
    const std::string verb = r.method == "PATCH" ? "patch"
                             : r.method == "POST" ? "create"
                             : r.method == "PUT"  ? "update"
                             : named              ? "get"
                                                  : "list";
    EXPECT_TRUE(allowed(ns, group, resource, verb)) << r.method << " " << r.path << ": " << verb << " "
                                                << (group.empty() ? "core" : group) << " " << resource;
    ++checked;
  }
  EXPECT_GT(checked, 30u);
}

// The command as a user runs it, against the same fake through a kubeconfig.
TEST(RecommendCommand, WritesRecommendationsAndAuditsThem) {
  FakeCluster cluster;
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("foresight-recommend-{}", ::getpid());
  std::filesystem::create_directories(dir);
  writeKubeconfig(dir / "config", cluster);
  const auto log = dir / "log";
  std::ofstream(dir / "token") << "s3cret\n";
  test_support::Ran ran;
  std::thread command([&] {
    ran = test_support::runShell(fmt::format(
        "'{}' recommend --kubeconfig '{}' --period 0.2 --duration 4 --min-history 0 "
        "--apply --audit '{}' --no-view --listen 127.0.0.1:0 --bearer-token-file '{}' "
        "--prometheus http://127.0.0.1:{} > '{}' 2>&1",
        FORESIGHT_BIN, (dir / "config").string(), (dir / "audit.db").string(), (dir / "token").string(),
        test_support::freePort(), log.string()));
  });
  // Its /metrics while it runs: the plans, labelled as the autoscaler names the containers.
  std::string metrics;
  const std::string want = R"(foresight_plan_target_cpu_cores{workload="shop/web/app"})";
  for (int i = 0; i < 80 && metrics.find(want) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int port = test_support::loggedPort(log);
    if (port == 0) continue;
    httplib::Client http("127.0.0.1", port);
    if (auto res = http.Get("/metrics", {{"Authorization", "Bearer s3cret"}}); res && res->status == 200) {
      metrics = res->body;
      auto without = http.Get("/metrics");  // the token is asked for
      ASSERT_TRUE(without);
      EXPECT_EQ(without->status, 401);
      auto health = http.Get("/api/health");  // but not of a probe
      ASSERT_TRUE(health);
      EXPECT_EQ(health->status, 200);
    }
  }
  command.join();
  std::ifstream in(log);
  const std::string out((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(ran.exit_code, 0) << out;
  EXPECT_NE(metrics.find(want), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("foresight_recommend_rounds_total "), std::string::npos) << metrics;
  std::ofstream(dir / "metrics.txt") << metrics;
  const auto lint = test_support::runShell(
      fmt::format("{} check metrics < '{}'", test_support::kPromtoolBinary, (dir / "metrics.txt").string()));
  EXPECT_EQ(lint.exit_code, 0) << lint.all();
  EXPECT_EQ(lint.all(), "");
  EXPECT_TRUE(recommendation(cluster.vpa("web"), "app").count("cpu")) << out;
  // No Prometheus where --prometheus says: the containers start without their past, as without it.
  EXPECT_NE(out.find("recommend: VPA shop/web: its containers start without their history: http://127.0.0.1:"),
            std::string::npos)
      << out;
  auto audit = allocate::AuditLog::open((dir / "audit.db").string());
  ASSERT_TRUE(audit) << audit.error().message;
  auto records = audit->list("", 100);
  ASSERT_TRUE(records) << records.error().message;
  EXPECT_FALSE(records->empty());
  for (const auto& rec : *records) EXPECT_EQ(rec.backend, "kubernetes");

  // A context that does not exist: refused at once, naming it.
  const auto bad = test_support::runShell(fmt::format("'{}' recommend --kubeconfig '{}' --context nope 2>&1",
                                                      FORESIGHT_BIN, (dir / "config").string()));
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.out.find("no context 'nope'"), std::string::npos) << bad.out;
  const auto no_scheme = test_support::runShell(fmt::format(
      "'{}' recommend --kubeconfig '{}' --prometheus prometheus:9090 2>&1", FORESIGHT_BIN, (dir / "config").string()));
  EXPECT_NE(no_scheme.exit_code, 0) << no_scheme.out;
  EXPECT_NE(no_scheme.out.find("--prometheus: expected an http:// or https:// URL"), std::string::npos)
      << no_scheme.out;
  // No kubeconfig anywhere and not in a pod: said so, with where it looked.
  const auto nowhere = test_support::runShell(fmt::format(
      "env -u KUBERNETES_SERVICE_HOST -u KUBECONFIG HOME='{}' '{}' recommend 2>&1", dir.string(), FORESIGHT_BIN));
  EXPECT_EQ(nowhere.exit_code, 1) << nowhere.out;
  EXPECT_NE(nowhere.out.find("no kubeconfig (option kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster"),
            std::string::npos)
      << nowhere.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace foresight::loop
