#include "loop_options.h"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>

#include "commands.h"
#include "foresight/core/log.h"
#include "foresight/loop/plan_metrics.h"
#include "foresight/server/agent.h"
#include "profiler_common.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <httplib.h>

namespace foresight::app {

Result<PlannerFile> PlannerFile::open(const std::string& path, const std::string& command) {
  PlannerFile p;
  p.path_ = path;
  p.command_ = command;
  if (!std::filesystem::exists(path)) {
    if (path != dataFile(kShippedPlanner))
      return fail(ErrorCode::kNotFound, "--planner {}: no such file", path);
    // Said, so that per-workload bounds in a file that was not found are not silently missing.
    spdlog::warn("{}: no {} (the shipped planner policies): the built-in ones apply (--planner FILE to give one)",
                 command, path);
    p.applied_ = std::make_shared<const allocate::PlannerConfigs>();
    return p;
  }
  p.file_ = std::make_shared<Reloading<allocate::PlannerConfigs>>(
      std::vector<std::filesystem::path>{path}, [path] { return allocate::loadPlannerConfigs(path); },
      command + ": planner policies " + path);
  auto first = p.file_->current();
  if (!first) return tl::unexpected(first.error());
  p.applied_ = *first;
  spdlog::info("{}: planner policies from {} ({} workload section{})", command, path,
               p.applied_->workloads.size(), p.applied_->workloads.size() == 1 ? "" : "s");
  return p;
}

std::shared_ptr<const allocate::PlannerConfigs> PlannerFile::changed() {
  if (!file_) return nullptr;
  auto now = file_->current();
  if (!now || *now == applied_) return nullptr;
  applied_ = *now;
  spdlog::info("{}: planner policies from {} now apply ({} workload section{})", command_, path_,
               applied_->workloads.size(), applied_->workloads.size() == 1 ? "" : "s");
  return applied_;
}

void overrideQuantile(allocate::PlannerConfigs& policies, double quantile) {
  if (quantile <= 0) return;
  for (Resource r : kAllResources) policies.defaults[r].quantile = quantile;
  for (auto& [name, planner] : policies.workloads)
    for (Resource r : kAllResources) planner[r].quantile = quantile;
}

Result<std::optional<allocate::AuditLog>> auditTrail(bool apply, const std::string& path) {
  if (!apply) return std::optional<allocate::AuditLog>();
  auto log = allocate::AuditLog::open(path);
  if (!log) return tl::unexpected(log.error());
  return std::optional<allocate::AuditLog>(std::move(*log));
}

void addEndpointSecurityOptions(CLI::App& cmd, server::HttpOptions& o, const std::string& overrides) {
  const std::string over = overrides.empty() ? "" : "; overrides " + overrides;
  cmd.add_option("--bearer-token-file", o.bearer_token_file,
                 "every endpoint but /api/health needs \"Authorization: Bearer\" with this file's first line" + over)
      ->check(CLI::ExistingFile);
  cmd.add_option("--tls-cert-file", o.tls_cert_file,
                 "PEM certificate: serve HTTPS (with --tls-key-file; like the key, client CA and token files, read "
                 "again when it changes" + over + ")")
      ->check(CLI::ExistingFile);
  cmd.add_option("--tls-key-file", o.tls_key_file, "PEM private key of --tls-cert-file")->check(CLI::ExistingFile);
  cmd.add_option("--tls-client-ca-file", o.tls_client_ca_file,
                 "PEM CA certificates: every endpoint but /api/health needs a client certificate one of them "
                 "signed (mutual TLS; with --tls-cert-file)")
      ->check(CLI::ExistingFile);
  cmd.add_option("--tls-client-crl-file", o.tls_client_crl_file,
                 "PEM CRLs of the --tls-client-ca-file CAs: a client whose chain has a certificate they revoke "
                 "is refused; so is one whose chain has a CA with no CRL here (the root included)")
      ->check(CLI::ExistingFile);
}

namespace {

std::string show(Resource r, double v) {
  if (std::isnan(v)) return "-";
  return r == Resource::kMemory ? allocate::formatBytes(v) : fmt::format("{:.3f}", v);
}
std::string show(Resource r, const std::optional<double>& v) {
  return v ? show(r, *v) : "unlimited";
}

}  // namespace

void printView(const loop::Autoscaler& scaler, const std::string& empty) {
  auto rows = scaler.view();
  fmt::print("\n{:<36} {:<7} {:>11} {:>11} {:>11} {:>11}  {}\n", "workload", "res", "usage",
             "forecast", "limit", "target", "rule");
  for (const auto& r : rows) {
    fmt::print("{:<36} {:<7} {:>11} {:>11} {:>11} {:>11}  {}{}\n", r.workload.substr(0, 36),
               name(r.resource), show(r.resource, r.usage), show(r.resource, r.forecast),
               show(r.resource, r.current), show(r.resource, r.target), r.rule,
               r.advice.empty() ? "" : "; does not fit: " + r.advice);
  }
  if (rows.empty()) fmt::print("{}\n", empty);
  std::fflush(stdout);
}


LoopEndpoint::LoopEndpoint(const loop::Autoscaler& autoscaler, std::unique_ptr<server::HttpEndpoint> http,
                           std::string command, const std::string& workloads, const std::string& workloads_help,
                           const std::string& errors_help, bool leader_election)
    : registry_(std::make_shared<prometheus::Registry>()),
      plans_(std::make_shared<loop::PlanMetrics>(autoscaler)),
      http_(std::move(http)),
      command_(std::move(command)) {
  const std::string prefix = "foresight_" + command_ + "_";
  auto& rounds = prometheus::BuildCounter()
                     .Name(prefix + "rounds_total")
                     .Help("Rounds run (result=\"failed\": the round could not list its workloads)")
                     .Register(*registry_);
  rounds_ = &rounds.Add({});
  failed_rounds_ = &rounds.Add({{"result", "failed"}});
  errors_ = &prometheus::BuildCounter().Name(prefix + "errors_total").Help(errors_help).Register(*registry_).Add({});
  workloads_ = &prometheus::BuildGauge().Name(prefix + workloads).Help(workloads_help).Register(*registry_).Add({});
  if (leader_election)
    leading_ = &prometheus::BuildGauge()
                    .Name(prefix + "leading")
                    .Help("1 while this replica runs the rounds (holds the lease with --leader-elect), else 0")
                    .Register(*registry_)
                    .Add({});
  http_->get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto families = registry_->Collect();
    for (auto& f : plans_->Collect()) families.push_back(std::move(f));
    res.set_content(prometheus::TextSerializer().Serialize(families), "text/plain; version=0.0.4");
  });
  http_->get("/api/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
}

LoopEndpoint::~LoopEndpoint() { http_->stop(); }

Status LoopEndpoint::start() {
  if (auto st = http_->start(); !st) return fail(st.error().code, "--listen: {}", st.error().message);
  spdlog::info("{}: {}/metrics", command_, http_->describe());
  return ok();
}

void LoopEndpoint::leading(bool yes) {
  if (leading_) leading_->Set(yes ? 1 : 0);
}

void LoopEndpoint::round(std::size_t workloads, std::size_t errors) {
  rounds_->Increment();
  errors_->Increment(static_cast<double>(errors));
  workloads_->Set(static_cast<double>(workloads));
}

void LoopEndpoint::roundFailed() { failed_rounds_->Increment(); }

AdviceArgs::AdviceArgs() : catalog(dataFile(kShippedCatalog)) {}

void addAdviceOptions(CLI::App& cmd, AdviceArgs& a, const std::string& host) {
  cmd.add_option("--catalog", a.catalog,
                 fmt::format("price catalog: when a forecast exceeds {}, say where the extra capacity should come "
                             "from (skipped if the default file is absent)",
                             host))
      ->capture_default_str();
  cmd.add_option("--machine", a.machine, fmt::format("{}'s machine type in the catalog (e.g. m4.large)", host));
  cmd.add_option("--advice-hours", a.hours, "hours the extra capacity is priced for")
      ->capture_default_str()
      ->check(finiteAbove(0));
  cmd.add_option("--advice-after", a.after,
                 fmt::format("seconds a forecast must stay above {} (or a workload's own ceiling) before it is "
                             "advised (a shorter burst is the planner's matter, not a purchase)",
                             host))
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

Result<std::optional<loop::CapacityAdvice>> capacityAdvice(const AdviceArgs& a,
                                                           const std::function<Result<allocate::Allocation>()>& host,
                                                           std::shared_ptr<const allocate::MachineRanker> ranker,
                                                           loop::CeilingAdvice raise) {
  if (!std::filesystem::exists(a.catalog)) {
    if (a.catalog != dataFile(kShippedCatalog)) return fail(ErrorCode::kNotFound, "--catalog {}: no such file", a.catalog);
    return std::optional<loop::CapacityAdvice>();
  }
  auto cat = allocate::loadPriceCatalog(a.catalog);
  if (!cat) return tl::unexpected(cat.error());
  auto capacity = host();
  if (!capacity) return tl::unexpected(capacity.error());
  loop::CapacityAdvice adv;
  adv.cost = std::make_shared<const allocate::CostModel>(std::move(*cat), ranker.get());
  adv.ranker = std::move(ranker);
  adv.host = *capacity;
  adv.machine = a.machine;
  adv.hours = a.hours;
  adv.sustain_seconds = a.after;
  adv.raise_ceiling = std::move(raise);
  return std::optional<loop::CapacityAdvice>(std::move(adv));
}

RoundsArgs::RoundsArgs(std::string listen_on, double period_seconds)
    : listen(std::move(listen_on)),
      period(period_seconds),
      planner(dataFile(kShippedPlanner)),
      audit(defaultAuditDb()),
      models(shippedModels()),
      view(::isatty(STDOUT_FILENO) == 1) {}

void addRoundsOptions(CLI::App& cmd, RoundsArgs& a, const RoundsHelp& help) {
  cmd.add_option("--period", a.period, "seconds between rounds (" + help.period + ")")
      ->capture_default_str()
      ->check(finiteAbove(0));
  cmd.add_option("--duration", a.duration, "stop after this many seconds (0: until a signal)")->check(finiteIn(0));
  cmd.add_flag("--apply", a.apply, "write " + help.changes + " (default: dry-run, log them)");
  cmd.add_option("--planner", a.planner,
                 "planner policies (YAML; " + help.planner + "; read again when the file changes)")
      ->capture_default_str();
  cmd.add_option("--quantile", a.quantile, "risk level for every resource (overrides the planner file)")
      ->check(CLI::Range(0.5, 0.999));
  cmd.add_option("--forecaster", a.forecaster, "auto, lstm or seasonal (as `foresight run`)")
      ->check(CLI::IsMember({"auto", "lstm", "seasonal"}))
      ->capture_default_str();
  addModelOption(cmd, a.models);
  cmd.add_option("--min-history", a.min_history, "seconds of a " + help.workload + "'s history before its first plan")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_flag("--view,!--no-view", a.view,
               "print the live view (per " + help.workload + ": usage, forecast, " + help.limit +
                   ", target, rule) each round; default: when stdout is a terminal");
  cmd.add_option("--listen", a.listen,
                 "host:port of /metrics (the plans as `run` exports them, and the rounds) and /api/health; \"\" = none")
      ->capture_default_str();
  addEndpointSecurityOptions(cmd, a.endpoint);
  cmd.add_option("--audit", a.audit, "SQLite audit trail of " + help.changes + " (with --apply; env FORESIGHT_AUDIT_DB)")
      ->capture_default_str();
}

Result<loop::AutoscalerConfig> roundsConfig(const RoundsArgs& a, const allocate::PlannerConfigs& policies) {
  loop::AutoscalerConfig c;
  c.planner = policies.defaults;
  c.workload_planners = policies.workloads;
  const std::vector<std::filesystem::path> models(a.models.begin(), a.models.end());
  auto forecasters = loop::liveForecasters(a.forecaster, models, a.period);
  if (!forecasters) return tl::unexpected(forecasters.error());
  c.forecaster = std::move(*forecasters);
  c.min_history_seconds = a.min_history;
  c.max_clock_step_seconds = loop::clockStepFor(a.period);
  c.apply = a.apply;
  return c;
}

Result<std::unique_ptr<LoopEndpoint>> LoopEndpoint::serve(const RoundsArgs& a, const loop::Autoscaler& autoscaler,
                                                          const std::string& command, const std::string& workloads,
                                                          const std::string& workloads_help,
                                                          const std::string& errors_help, bool leader_election) {
  if (a.listen.empty()) return std::unique_ptr<LoopEndpoint>();
  auto listen = server::parseAgentConfig("listen: \"" + a.listen + "\"", "--listen");
  if (!listen) return tl::unexpected(listen.error());
  server::HttpOptions o = a.endpoint;
  o.host = listen->listen_host;
  o.port = listen->listen_port;
  auto http = server::HttpEndpoint::make(o);
  if (!http) return tl::unexpected(http.error());
  auto endpoint = std::make_unique<LoopEndpoint>(autoscaler, std::move(*http), command, workloads, workloads_help,
                                                 errors_help, leader_election);
  if (auto st = endpoint->start(); !st) return tl::unexpected(st.error());
  return endpoint;
}

RoundClock::RoundClock(const RoundsArgs& a)
    : start_(std::chrono::steady_clock::now()),
      next_(start_),
      period_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(a.period))),
      duration_(a.duration) {
  installStopHandler();
}

bool RoundClock::over() const {
  return stopFlag().load() ||
         (duration_ > 0 && std::chrono::steady_clock::now() - start_ > std::chrono::duration<double>(duration_));
}

bool RoundClock::waitForNextRound() {
  next_ += period_;
  return sleepUntil(next_);
}

bool RoundClock::pause(double seconds) {
  return sleepUntil(std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds)));
}

bool RoundClock::sleepUntil(std::chrono::steady_clock::time_point until) const {
  while (!over() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return !over();
}

void RoundClock::startOver() { next_ = std::chrono::steady_clock::now(); }

void reloadPlanner(PlannerFile& file, double quantile, loop::Autoscaler& autoscaler) {
  if (auto p = file.changed()) {
    auto changed = *p;
    overrideQuantile(changed, quantile);
    autoscaler.setPlanners(changed.defaults, changed.workloads);
  }
}

}  // namespace foresight::app
