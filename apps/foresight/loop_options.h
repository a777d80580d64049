#pragma once
// What the closed loops, `run` (this host's cgroups), `recommend` (Kubernetes VPAs) and `guests`
// (libvirt guests), set up alike: planner policies from a file, the live forecasters, the live
// view, and (the last two) the endpoint of their rounds.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "foresight/allocate/audit.h"
#include "foresight/loop/autoscaler.h"

#include "foresight/allocate/planner.h"
#include "foresight/core/reload.h"
#include "foresight/server/http.h"

namespace CLI {
class App;
}
namespace prometheus {
class Registry;
class Counter;
class Gauge;
}
namespace foresight::loop {
class PlanMetrics;
}

namespace foresight::app {

// The planner policies, from a file read again when it changes: bounds edited during an incident
// apply at once, without a restart that would drop every workload's history, cool-downs and OOM
// holds.
class PlannerFile {
 public:
  // `path` missing: an error, unless it is the shipped file's default path (a binary copied
  // without its data files), where the built-in policies apply, warned. `command` prefixes the log.
  static Result<PlannerFile> open(const std::string& path, const std::string& command);
  // The policies in force: the file's as last read well (changed() moves them on).
  const allocate::PlannerConfigs& current() const { return *applied_; }
  // The file's policies when they changed since the last call (a file that no longer parses keeps
  // the ones in force, warned with file and line); null otherwise. Cheap: a stat when unchanged.
  std::shared_ptr<const allocate::PlannerConfigs> changed();
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<Reloading<allocate::PlannerConfigs>> file_;  // null: built-in policies
  std::shared_ptr<const allocate::PlannerConfigs> applied_;
  std::string path_, command_;
};

// --bearer-token-file, --tls-cert-file, --tls-key-file and --tls-client-ca-file of the command's
// HTTP endpoint into `o` (server/http.h); `overrides` names what they override, if anything.
void addEndpointSecurityOptions(CLI::App& cmd, server::HttpOptions& o, const std::string& overrides = "");

// --quantile: one risk level for every resource of every policy (0: leave them).
void overrideQuantile(allocate::PlannerConfigs& policies, double quantile);

// The audit trail of the changes a loop applies: opened with --apply, none in dry-run.
Result<std::optional<allocate::AuditLog>> auditTrail(bool apply, const std::string& path);

// --catalog, --machine, --advice-hours, --advice-after of the loops that advise capacity (`run`,
// `guests`): where extra capacity should come from when a forecast exceeds the host.
struct AdviceArgs {
  std::string catalog, machine;  // the shipped price catalog; the host's type in it
  double hours = 24;
  std::int64_t after = 60;  // seconds
  AdviceArgs();
};
// `host` names the host in the help ("this host", "the host").
void addAdviceOptions(CLI::App& cmd, AdviceArgs& a, const std::string& host);
// The advice on a host of the capacity `host` reads (asked only when there is a catalog), its
// machine types ranked by `ranker` (may be null) and its workloads' own ceilings raised as `raise`
// says. None when the shipped catalog is missing (a binary copied without its data files); an
// error when a --catalog given is missing or wrong.
Result<std::optional<loop::CapacityAdvice>> capacityAdvice(const AdviceArgs& a,
                                                           const std::function<Result<allocate::Allocation>()>& host,
                                                           std::shared_ptr<const allocate::MachineRanker> ranker,
                                                           loop::CeilingAdvice raise);

// What the loops that run in rounds, `recommend` and `guests`, take alike.
struct RoundsArgs {
  std::string listen;  // the command's own port
  double period = 60, duration = 0;
  bool apply = false;
  std::string planner, audit;  // the shipped planner file and the default audit trail
  double quantile = 0;
  std::string forecaster = "auto";
  std::vector<std::string> models;  // the shipped models
  // Ten minutes: for `recommend`, ten samples at the metrics API's usual minute, as the
  // autoscaler's min_samples asks anyway; `guests` keeps the same.
  std::int64_t min_history = 600;
  // The live view each round, on a terminal; not into a pod's log, a row per workload a round.
  bool view = false;
  server::HttpOptions endpoint;  // its files; host and port from --listen
  RoundsArgs(std::string listen_on, double period_seconds);
};
// How the options' help names a command's workloads and what it does with them.
struct RoundsHelp {
  std::string period;    // what --period should match
  std::string workload;  // "container", "guest"
  std::string planner;   // what the planner file's sections are keyed by, and its leave_alone
  std::string limit;     // what the live view's "limit" is
  std::string changes;   // what --apply writes and the audit trail keeps
};
// --period, --duration, --apply, --planner, --quantile, --forecaster, --model, --min-history,
// --view, --listen and its security options, --audit.
void addRoundsOptions(CLI::App& cmd, RoundsArgs& a, const RoundsHelp& help);
// The autoscaler's settings from them and the planner's policies in force (backend and its
// options are the command's).
Result<loop::AutoscalerConfig> roundsConfig(const RoundsArgs& a, const allocate::PlannerConfigs& policies);

// The pace of the rounds: one every --period from the start, until SIGINT/SIGTERM or --duration.
class RoundClock {
 public:
  explicit RoundClock(const RoundsArgs& a);  // installs the stop handler
  // Whether the loop is to end: a signal came, or --duration passed.
  bool over() const;
  // Sleeps until the next round is due; false when over().
  bool waitForNextRound();
  bool pause(double seconds);  // false when over()
  void startOver();            // the next round now (a standby that just took the lead)

 private:
  bool sleepUntil(std::chrono::steady_clock::time_point until) const;  // in 50 ms steps; false when over()
  std::chrono::steady_clock::time_point start_, next_;
  std::chrono::steady_clock::duration period_;
  double duration_;
};

// Policies edited in the planner file since the last call, --quantile applied, into the autoscaler.
void reloadPlanner(PlannerFile& file, double quantile, loop::Autoscaler& autoscaler);

// /metrics (the plans, as `run` exports them, and the rounds) and /api/health of a loop that runs in
// rounds: foresight_<command>_rounds_total{result=""|"failed"}, foresight_<command>_errors_total,
// foresight_<command>_<workloads> (the workloads of the last round) and, with `leader_election`,
// foresight_<command>_leading.
class LoopEndpoint {
 public:
  LoopEndpoint(const loop::Autoscaler& autoscaler, std::unique_ptr<server::HttpEndpoint> http, std::string command,
               const std::string& workloads, const std::string& workloads_help, const std::string& errors_help,
               bool leader_election);
  ~LoopEndpoint();  // stops serving before the registry its handlers read goes
  Status start();
  void leading(bool yes);
  void round(std::size_t workloads, std::size_t errors);
  void roundFailed();
  // With --listen "", none. The names are LoopEndpoint's.
  static Result<std::unique_ptr<LoopEndpoint>> serve(const RoundsArgs& a, const loop::Autoscaler& autoscaler,
                                                     const std::string& command, const std::string& workloads,
                                                     const std::string& workloads_help, const std::string& errors_help,
                                                     bool leader_election);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<loop::PlanMetrics> plans_;
  prometheus::Counter *rounds_ = nullptr, *failed_rounds_ = nullptr, *errors_ = nullptr;
  prometheus::Gauge *workloads_ = nullptr, *leading_ = nullptr;
  std::unique_ptr<server::HttpEndpoint> http_;
  std::string command_;
};

// The live view: per workload and resource, the usage, the forecast, the limit in force, the
// target and the rule that decided it; `empty` is printed when no workload has a plan yet.
void printView(const loop::Autoscaler& scaler, const std::string& empty);

}  // namespace foresight::app
