// `foresight guests`: the closed loop for libvirt guests (loop/guests.h): each running guest's live
// vCPUs and balloon sized from the forecast of what it uses.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <thread>

#include "commands.h"
#include "foresight/allocate/libvirt.h"
#include "foresight/core/log.h"
#include "foresight/loop/guests.h"
#include "foresight/server/agent.h"
#include "foresight/server/http.h"
#include "loop_options.h"
#include "profiler_common.h"

namespace foresight::app {
namespace {

struct Args {
  std::string connect = "qemu:///system", listen = "127.0.0.1:9466";
  double period = 10, duration = 0;
  bool apply = false;
  std::string planner = dataFile(kShippedPlanner), audit = defaultAuditDb();
  double quantile = 0;
  std::string forecaster = "auto", model = dataFile(kShippedModel);
  std::int64_t min_history = 600;
  bool view = ::isatty(STDOUT_FILENO) == 1;
  server::HttpOptions endpoint;  // its files; host and port from --listen
};

Status guests(const Args& a) {
  auto planner = PlannerFile::open(a.planner, "guests");
  if (!planner) return tl::unexpected(planner.error());
  auto policies = planner->current();
  overrideQuantile(policies, a.quantile);
  loop::AutoscalerConfig c;
  c.planner = policies.defaults;
  c.workload_planners = policies.workloads;  // keyed by domain name
  auto forecasters = loop::liveForecasters(a.forecaster, a.model, a.period);
  if (!forecasters) return tl::unexpected(forecasters.error());
  c.forecaster = std::move(*forecasters);
  c.min_history_seconds = a.min_history;
  c.max_clock_step_seconds = loop::clockStepFor(a.period);
  c.apply = a.apply;
  c.backend_name = "libvirt";
  c.backend_options.values["uri"] = a.connect;  // what a rollback (`foresight history --rollback`) reaches
  auto audit = auditTrail(a.apply, a.audit);
  if (!audit) return tl::unexpected(audit.error());
  auto backend = allocate::makeLibvirtBackend(c.backend_options);
  loop::Autoscaler autoscaler(std::move(c), std::move(backend), std::move(*audit));
  auto connection = std::make_shared<allocate::LibvirtConnection>(a.connect);
  loop::GuestSizer sizer([connection] { return connection->runningGuests(); }, autoscaler);
  sizer.leaveAlone([planner = &*planner](const std::string& guest) -> std::optional<std::string> {
    if (auto pattern = planner->current().leftAlone(guest))
      return fmt::format("it matches the planner policies' leave_alone '{}'", *pattern);
    return std::nullopt;
  });

  std::optional<LoopEndpoint> metrics;
  if (!a.listen.empty()) {
    auto listen = server::parseAgentConfig("listen: \"" + a.listen + "\"", "--listen");
    if (!listen) return tl::unexpected(listen.error());
    server::HttpOptions o = a.endpoint;
    o.host = listen->listen_host;
    o.port = listen->listen_port;
    auto http = server::HttpEndpoint::make(o);
    if (!http) return tl::unexpected(http.error());
    metrics.emplace(autoscaler, std::move(*http), "guests", "running", "Running guests read, last round",
                    "Guests that could not be read or planned for in a round (logged)", false);
    if (auto st = metrics->start(); !st) return st;
  }
  spdlog::info("guests: the running guests of {}, every {} s; {}", a.connect, a.period,
               a.apply ? "resizing them" : "dry-run (add --apply to resize)");

  installStopHandler();
  const auto start = std::chrono::steady_clock::now();
  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(a.period));
  auto next = start;
  const auto expired = [&] {
    return a.duration > 0 && std::chrono::steady_clock::now() - start > std::chrono::duration<double>(a.duration);
  };
  for (std::size_t n = 0; !stopFlag().load(); ++n) {
    if (auto p = planner->changed()) {
      auto changed = *p;
      overrideQuantile(changed, a.quantile);
      autoscaler.setPlanners(changed.defaults, changed.workloads);
    }
    auto r = sizer.round(static_cast<std::int64_t>(std::time(nullptr)));
    if (!r) {
      if (metrics) metrics->roundFailed();
      if (n == 0) return tl::unexpected(r.error());  // a wrong --connect is said at once
      spdlog::warn("guests: {}", r.error().message);
    } else {
      if (metrics) metrics->round(r->guests, r->errors);
      spdlog::debug("guests: round {}: {} guests, {} samples, {} plans, {} errors", n, r->guests, r->samples,
                    r->plans, r->errors);
      if (a.view)
        printView(autoscaler, fmt::format("({} running guests; the first plan waits for {} s of a guest's history, "
                                          "--min-history)",
                                          r->guests, a.min_history));
    }
    next += period;
    while (!stopFlag().load() && !expired() && std::chrono::steady_clock::now() < next)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (expired()) return ok();
  }
  return ok();
}

}  // namespace

void addGuestsCommand(CLI::App& app) {
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "guests",
      "libvirt guest sizer: forecast each running guest's cpu (its cpu time) and memory (what its balloon "
      "driver reports in use) and set its live vCPUs and balloon within the maximums of its definition "
      "(dry-run unless --apply)");
  cmd->add_option("--connect,-c", a->connect, "libvirt connection URI (as virsh -c)")->capture_default_str();
  cmd->add_option("--period", a->period, "seconds between rounds (at least the guests' balloon statistics period)")
      ->capture_default_str()
      ->check(finiteAbove(0));
  cmd->add_option("--duration", a->duration, "stop after this many seconds (0: until a signal)")
      ->check(finiteIn(0));
  cmd->add_flag("--apply", a->apply, "resize the guests (default: dry-run, log what would be set)");
  cmd->add_option("--planner", a->planner,
                  "planner policies (YAML; workload sections and leave_alone patterns by domain name; read again "
                  "when the file changes)")
      ->capture_default_str();
  cmd->add_option("--quantile", a->quantile, "risk level for every resource (overrides the planner file)")
      ->check(CLI::Range(0.5, 0.999));
  cmd->add_option("--forecaster", a->forecaster, "auto, lstm or seasonal (as `foresight run`)")
      ->check(CLI::IsMember({"auto", "lstm", "seasonal"}))
      ->capture_default_str();
  cmd->add_option("--model", a->model, "LSTM model file (foresight train)")->capture_default_str();
  cmd->add_option("--min-history", a->min_history, "seconds of a guest's history before its first plan")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--view,!--no-view", a->view,
                "print the live view (per guest: usage, forecast, allocation in force, target, rule) each round; "
                "default: when stdout is a terminal");
  cmd->add_option("--listen", a->listen,
                  "host:port of /metrics (the plans as `run` exports them, and the rounds) and /api/health; \"\" = none")
      ->capture_default_str();
  addEndpointSecurityOptions(*cmd, a->endpoint);
  cmd->add_option("--audit", a->audit, "SQLite audit trail of the changes (with --apply; env FORESIGHT_AUDIT_DB)")
      ->capture_default_str();
  cmd->callback([a] {
    if (auto st = guests(*a); !st) {
      spdlog::error("guests: {}", st.error().message);
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace foresight::app
