// `foresight recommend`: Foresight as a Kubernetes VPA recommender (foresight/loop/recommender.h)
// until SIGINT/SIGTERM or --duration.

#include <cmath>

#include "commands.h"
#include "foresight/allocate/kubernetes.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/loop/recommender.h"
#include "loop_options.h"

namespace foresight::app {
namespace {

struct Args : RoundsArgs {
  Args() : RoundsArgs("127.0.0.1:9465", 60) {}
  std::string kubeconfig, context, ns, recommender = "foresight";
  // Where containers' past usage comes from when the recommender starts ("" = nowhere).
  std::string prometheus, prometheus_token_file;
  double history_length = 86400;
  // Leader election among replicas (LeaderElector), where the stock recommender keeps its lease
  // and deploy/kubernetes/recommender-rbac.yaml allows it.
  bool leader_elect = false;
  std::string lease_name = "foresight-recommender", lease_namespace = "kube-system";
  double lease_duration = 15;
};

Status recommend(const Args& a) {
  allocate::BackendOptions o;
  o.values["mode"] = "vpa";
  o.values["recommender"] = a.recommender;
  if (!a.kubeconfig.empty()) o.values["kubeconfig"] = a.kubeconfig;
  if (!a.context.empty()) o.values["context"] = a.context;
  auto access = allocate::k8s::accessFrom(o);
  if (!access) return tl::unexpected(access.error());

  auto planner = PlannerFile::open(a.planner, "recommend");
  if (!planner) return tl::unexpected(planner.error());
  auto policies = planner->current();
  overrideQuantile(policies, a.quantile);
  auto config = roundsConfig(a, policies);  // workload sections keyed "namespace/vpa/container"
  if (!config) return tl::unexpected(config.error());
  loop::AutoscalerConfig& c = *config;
  c.limits_found_start_cooldowns = a.leader_elect;
  c.backend_name = "kubernetes";
  c.backend_options = o;  // what a rollback (`foresight history --rollback`) reaches the cluster with
  // The kubeconfig read once; the VPAs as listed each round, read by the backend without a GET.
  auto listed = std::make_shared<allocate::k8s::VpaObjects>();
  auto backend = allocate::k8s::makeBackend(o, &*access, listed);
  auto audit = auditTrail(a.apply, a.audit);
  if (!audit) return tl::unexpected(audit.error());
  loop::Autoscaler autoscaler(std::move(c), std::move(backend), std::move(*audit));
  loop::HistoryReader history;
  loop::ThrottlingReader throttling;
  if (!a.prometheus.empty()) {
    trace::PrometheusQuery server;
    server.url = a.prometheus;
    if (!a.prometheus_token_file.empty()) {
      auto token = readTokenFile(a.prometheus_token_file);
      if (!token) return fail(token.error().code, "--prometheus-token-file {}", token.error().message);
      server.bearer_token = std::move(*token);
    }
    history = loop::prometheusHistory(server, std::llround(a.period));
    throttling = loop::prometheusThrottling(server, std::llround(a.period));
  }
  loop::VpaRecommender recommender(allocate::k8s::VpaDiscovery(*access, 600, listed), a.recommender, a.ns, autoscaler,
                                   std::move(history), std::llround(a.history_length));
  recommender.throttlingFrom(std::move(throttling));
  recommender.reportConditions(a.apply);
  // /metrics: the containers' plans (labelled workload="namespace/vpa/container") and the rounds.
  auto metrics = LoopEndpoint::serve(a, autoscaler, "recommend", "containers",
                                     "Containers of VPAs naming this recommender with pod metrics, last round",
                                     "VPAs or containers that failed in a round (logged)", true);
  if (!metrics) return tl::unexpected(metrics.error());
  spdlog::info("recommend: VPAs naming recommender '{}' in {} of {}, every {} s; {}", a.recommender,
               a.ns.empty() ? std::string("every namespace") : "namespace " + a.ns, access->server,
               a.period, a.apply ? "writing recommendations" : "dry-run (add --apply to write recommendations)");

  std::unique_ptr<allocate::k8s::LeaderElector> elector;
  if (a.leader_elect) {
    allocate::k8s::LeaseSettings lease;
    lease.ns = a.lease_namespace;
    lease.name = a.lease_name;
    // client-go's proportions: renew deadline 10 s and retries every 2 s of a 15 s lease.
    lease.lease_seconds = a.lease_duration;
    lease.renew_deadline_seconds = a.lease_duration * 2 / 3;
    lease.retry_seconds = a.lease_duration * 2 / 15;
    elector = std::make_unique<allocate::k8s::LeaderElector>(*access, lease);
    spdlog::info("recommend: leader election on lease {}/{} as {}", lease.ns, lease.name, elector->identity());
    // The first attempt is a setup check, as the first listing is: a lease it may not read or
    // write (RBAC, no such namespace) stops the command now, not in a warning every retry.
    if (auto first = elector->tryAcquireOrRenew(); !first)
      return fail(first.error().code, "--leader-elect: {}", first.error().message);
    elector->start();
    recommender.onlyWhile([&] { return elector->leading(); });
  }

  RoundClock clock(a);
  std::string standing_by;  // the holder logged as leading elsewhere
  for (std::size_t n = 0; !clock.over();) {  // n: rounds run
    if (elector && !elector->leading()) {
      if (*metrics) (*metrics)->leading(false);
      // Like client-go's users: a replica that led and no longer does stops, as its state may be
      // behind the new leader's writes; restarted, it stands by.
      if (elector->hasLed())
        return fail(ErrorCode::kUnavailable, "lost the lease to {}; stopping",
                    elector->holder().empty() ? std::string("no one (not renewed in time)") : elector->holder());
      if (elector->holder() != standing_by) {
        standing_by = elector->holder();
        spdlog::info("recommend: standing by while {} holds the lease", standing_by.empty() ? "no one yet" : standing_by);
      }
      if (!clock.pause(0.5)) return ok();
      clock.startOver();
      continue;
    }
    if (*metrics) (*metrics)->leading(true);
    reloadPlanner(*planner, a.quantile, autoscaler);
    auto r = recommender.round();
    if (*metrics) {
      if (r) (*metrics)->round(r->containers, r->errors);
      else (*metrics)->roundFailed();
    }
    if (!r) {
      // The first round failing is a setup error (a wrong context, RBAC, no VPA CRD): said at once.
      if (n == 0) return tl::unexpected(r.error());
      spdlog::warn("recommend: {}", r.error().message);
    } else {
      if (r->history > 0)
        spdlog::info("recommend: {} past samples read from {} for the containers seen first", r->history,
                     a.prometheus);
      spdlog::debug("recommend: round {}: {} VPAs, {} containers, {} new samples, {} plans, {} errors", n,
                    r->vpas, r->containers, r->samples, r->plans, r->errors);
      if (a.view)
        printView(autoscaler, fmt::format("({} VPAs naming '{}' with pod metrics; the first recommendation "
                                          "waits for {} s of a container's history, --min-history)",
                                          r->vpas, a.recommender, a.min_history));
    }
    ++n;
    if (!clock.waitForNextRound()) break;
  }
  return ok();
}

}  // namespace

void addRecommendCommand(CLI::App& app) {
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "recommend",
      "Kubernetes VPA recommender: for each VerticalPodAutoscaler whose spec.recommenders names "
      "this one, forecast its containers' cpu and memory from the metrics API and write the "
      "recommendation into its status (dry-run unless --apply); the stock VPA updater applies it");
  cmd->add_option("--kubeconfig", a->kubeconfig,
                  "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else the in-cluster service account)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--context", a->context, "kubeconfig context (default: its current-context)");
  cmd->add_option("--namespace", a->ns, "only this namespace's VPAs (default: every namespace)");
  cmd->add_option("--recommender", a->recommender, "the name VPAs give in spec.recommenders")
      ->capture_default_str();
  addRoundsOptions(*cmd, *a,
                   {"the metrics API's resolution", "container",
                    "workload sections keyed namespace/vpa/container; its leave_alone is run's: a VPA leaves a "
                    "container alone with mode Off",
                    "recommendation in force", "the recommendations"});
  cmd->add_option("--prometheus", a->prometheus,
                  "Prometheus server (http(s)://host:port[/prefix]) with the cluster's cAdvisor metrics: when the "
                  "recommender first sees a container (every one after a restart), it reads the container's last "
                  "--history-length of usage from there (with kube-state-metrics, also its earlier pods'), so it "
                  "recommends at once from what the container did; and each round its CFS throttling, so that "
                  "cpu wanted above a limit counts (up to the node's CPUs)")
      ->check([](const std::string& url) -> std::string {
        return url.starts_with("http://") || url.starts_with("https://") ? "" : "expected an http:// or https:// URL";
      });
  cmd->add_option("--prometheus-token-file", a->prometheus_token_file,
                  "file whose first line is a bearer token for --prometheus")
      ->check(CLI::ExistingFile);
  cmd->add_option("--history-length", a->history_length, "seconds of history read from --prometheus (at most 8 days, what the stock recommender keeps)")
      ->capture_default_str()
      ->check(finiteIn(0, 8 * 86400));
  cmd->add_flag("--leader-elect", a->leader_elect,
                "run the rounds only while holding a coordination.k8s.io Lease, so that of several replicas one "
                "writes at a time (a replica that loses the lease stops; a standby takes over when the holder "
                "stops, or --lease-duration after it last renewed)");
  cmd->add_option("--lease-name", a->lease_name, "the Lease's name")->capture_default_str();
  cmd->add_option("--lease-namespace", a->lease_namespace, "the Lease's namespace")->capture_default_str();
  cmd->add_option("--lease-duration", a->lease_duration,
                  "seconds a standby waits for a silent holder (renewals every 2/15 of it, given up after 2/3)")
      ->capture_default_str()
      ->check(finiteIn(1, 3600));
  cmd->callback([a] {
    if (auto st = recommend(*a); !st) {
      spdlog::error("recommend: {}", st.error().message);
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace foresight::app
