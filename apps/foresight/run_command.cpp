// `foresight run`: the agent (foresight/server/agent.h) closing the loop (foresight/loop/
// autoscaler.h) until SIGINT/SIGTERM, --duration, or the end of a command launched after "--".
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "commands.h"
#include "foresight/allocate/cgroup.h"
#include "foresight/collect/launch.h"
#include "foresight/core/log.h"
#include "foresight/core/reload.h"
#include "foresight/loop/autoscaler.h"
#include "foresight/loop/plan_metrics.h"
#include "foresight/match/ranker.h"
#include "foresight/server/agent.h"
#include "foresight/store/store.h"
#include "loop_options.h"
#include "profiler_common.h"

namespace foresight::app {
namespace {

// A workload first seen in this run (every one after the agent's restart) starts from its
// samples in the agent's own store from before the run, as `recommend --prometheus` starts from
// Prometheus: without them a restart waits --min-history again and relearns every calibration.
// Read on a connection of its own (SQLite WAL: the agent's writes go on beside it).
class StoreHistory {
 public:
  StoreHistory(store::Store db, std::int64_t before_ms, std::int64_t length_seconds, double period_seconds)
      : db_(std::move(db)), before_ms_(before_ms), length_ms_(length_seconds * 1000), period_s_(period_seconds) {}
  // The past to warm `workload` with, sampled at `now` (Unix seconds): once, and only for a
  // workload found in the run's first ten seconds (or ten periods), which are those that ran
  // before it; one that appears later, or is re-created under a gone one's path (on_gone marks
  // it), is new and starts afresh.
  trace::RawSeries pastOf(const std::string& workload, std::int64_t now) {
    trace::RawSeries past;
    if (closed_) return past;
    if (now * 1000 > before_ms_ + static_cast<std::int64_t>(std::max(10.0, 10 * period_s_) * 1000)) {
      closed_ = true;
      std::set<std::string>().swap(asked_);
      return past;
    }
    if (!asked_.insert(workload).second) return past;
    auto rows = db_.samples(workload, before_ms_ - length_ms_, before_ms_);
    if (!rows) {
      spdlog::warn("run: {}: starts without its stored history: {}", workload, rows.error().message);
      return past;
    }
    if (rows->size() < 2) return past;
    // Samples of another period (the agent ran with another --period) would mislead the
    // forecasters, which count samples: left out, said.
    std::vector<std::int64_t> gaps;
    for (std::size_t i = 1; i < rows->size(); ++i) gaps.push_back((*rows)[i].time_ms - (*rows)[i - 1].time_ms);
    std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
    const double step = static_cast<double>(gaps[gaps.size() / 2]) / 1000;
    if (step < period_s_ / 2 || step > period_s_ * 2) {
      spdlog::info("run: {}: its stored samples are {} s apart, not {} s: it starts without them", workload, step,
                   period_s_);
      return past;
    }
    for (const auto& row : *rows) {
      past.time.push_back(row.time_ms / 1000);
      for (std::size_t r = 0; r < kResourceCount; ++r) past.value[r].push_back(row.usage[r]);
    }
    return past;
  }
  void gone(const std::string& workload) {
    if (!closed_) asked_.insert(workload);
  }

 private:
  store::Store db_;
  std::int64_t before_ms_, length_ms_;
  double period_s_;
  std::set<std::string> asked_;
  bool closed_ = false;  // the first seconds are over
};

struct Args {
  std::string config, listen, database;
  server::HttpOptions endpoint;  // its files only; host and port come from --listen or the config
  double period = 0, duration = 0;
  std::vector<std::string> selectors;
  bool apply = false;
  std::string backend = "auto", planner = dataFile(kShippedPlanner), audit = defaultAuditDb();
  std::vector<std::string> backend_options;  // key=value
  double quantile = 0;
  double view = 5;
  std::string forecaster = "auto";
  std::vector<std::string> models = shippedModels();
  AdviceArgs advice;
  std::string match_data;
  std::int64_t min_history = loop::AutoscalerConfig{}.min_history_seconds;
  double history_length = 1800;  // seconds of the store's samples a workload starts from
};

// The cgroup version the `auto` backend writes, as the agent found it mounted: v1 where the cpu
// controller is on v1 (v1 and hybrid), else v2.
std::string cgroupVersion(const collect::CgroupLayout& layout) { return layout.v1("cpu") ? "v1" : "v2"; }

// The agent names a cgroup workload by its path in the hierarchy; the backends (and so the
// autoscaler and the matcher's ranker) take it without the leading '/'.
std::string backendName(const std::string& workload) {
  return workload.starts_with('/') ? workload.substr(1) : workload;
}

// The policies as `run` uses them: --quantile over every level, and an unbounded cpu max stopped
// at this host's cores (a quota above them limits nothing; the capacity advice still sees the
// forecast above it; a workload's cpuset lowers it further).
allocate::PlannerConfigs adjusted(const Args& a, allocate::PlannerConfigs p) {
  overrideQuantile(p, a.quantile);
  const auto cpus = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
  if (std::isinf(p.defaults[Resource::kCpu].max)) p.defaults[Resource::kCpu].max = cpus;
  for (auto& [name, planner] : p.workloads)
    if (std::isinf(planner[Resource::kCpu].max)) planner[Resource::kCpu].max = cpus;
  return p;
}

Result<std::unique_ptr<loop::Autoscaler>> makeAutoscaler(
    const Args& a, const Builtins& builtins, const collect::CgroupLayout& layout, double period,
    std::shared_ptr<match::LiveMatcherRanker> ranker, const allocate::PlannerConfigs& from_file) {
  loop::AutoscalerConfig c;
  const allocate::PlannerConfigs policies = adjusted(a, from_file);
  c.planner = policies.defaults;
  c.workload_planners = policies.workloads;  // keyed by the backend's name: the cgroup path without '/'
  const std::vector<std::filesystem::path> models(a.models.begin(), a.models.end());
  auto forecasters = loop::liveForecasters(a.forecaster, models, period);
  if (!forecasters) return tl::unexpected(forecasters.error());
  c.forecaster = std::move(*forecasters);
  const auto host = []() -> Result<allocate::Allocation> {
    allocate::Allocation capacity;
    capacity[Resource::kCpu] = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
    capacity[Resource::kMemory] =
        static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    return capacity;
  };
  const bool ranked = ranker != nullptr;
  auto advice = capacityAdvice(a.advice, host, std::move(ranker), loop::widenCpuset);
  if (!advice) return tl::unexpected(advice.error());
  if (!*advice && ranked) return fail(ErrorCode::kInvalidArgument, "--match-data needs a price catalog (--catalog)");
  c.advice = std::move(*advice);
  c.min_history_seconds = a.min_history;
  c.max_clock_step_seconds = loop::clockStepFor(period);
  c.apply = a.apply;
  c.backend_name = a.backend;
  for (const auto& kv : a.backend_options)
    if (auto st = c.backend_options.set(kv); !st) return tl::unexpected(st.error());
  if (a.backend == "auto") c.backend_options.values.try_emplace("cgroup", cgroupVersion(layout));
  auto backend = builtins.backends.create(c.backend_name, c.backend_options);
  if (!backend) return tl::unexpected(backend.error());
  if (auto st = (*backend)->configured(); !st) return tl::unexpected(st.error());
  auto audit = auditTrail(a.apply, a.audit);
  if (!audit) return tl::unexpected(audit.error());
  return std::make_unique<loop::Autoscaler>(std::move(c), std::move(*backend), std::move(*audit));
}

}  // namespace

void addRunCommand(CLI::App& app, Builtins& builtins) {
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "run",
      "Agent: sample, fingerprint, store history, serve /metrics and JSON, forecast each cgroup's "
      "cpu and memory and resize it through the planner (dry-run unless --apply); "
      "`run [options] -- CMD ARGS` launches CMD in its own cgroup and manages it");
  cmd->add_option("--config", a->config, "YAML configuration (docs/profiler.md)");
  cmd->add_option("--listen", a->listen,
                  "host:port (overrides the config; default 127.0.0.1:9464)");
  addEndpointSecurityOptions(*cmd, a->endpoint, "the config");
  auto* database = cmd->add_option("--database", a->database,
                                   "SQLite history file (overrides the config; '' = no history store)");
  cmd->add_option("--period", a->period, "seconds between samples (overrides the config)")
      ->check(finiteAbove(0));
  cmd->add_option("--duration", a->duration, "stop after this many seconds (0: until a signal)")
      ->check(finiteIn(0));
  cmd->add_flag("--apply", a->apply, "apply the planned limits (default: dry-run, log them)");
  cmd->add_option("--backend", a->backend,
                  "cgroup-v1, cgroup-v2, systemd (units' limits through systemd, which keeps them), dry-run, "
                  "or auto (systemd units through systemd where PID 1 is systemd, other cgroups "
                  "through their files)")
      ->capture_default_str();
  cmd->add_option("--option,-o", a->backend_options,
                  "backend option key=value (repeatable; e.g. bus=private for systemd, see "
                  "`foresight allocate --help`)");
  cmd->add_option("--planner", a->planner, "planner policies (YAML; read again when the file changes); its leave_alone patterns name the "
                  "workloads never resized (default: ssh, logind, journald, the system bus, user.slice, kubelet, "
                  "the container runtimes)")
      ->capture_default_str();
  cmd->add_option("--quantile", a->quantile,
                  "risk level for every resource (overrides the planner file)")
      ->check(CLI::Range(0.5, 0.999));
  cmd->add_option("--forecaster", a->forecaster,
                  "auto (per workload and resource, lstm unless seasonal's recent quantile loss has "
                  "been below 0.75 times lstm's), lstm (the model of --model, calibrated online per "
                  "workload) or seasonal (training-free, finds the workload's period)")
      ->check(CLI::IsMember({"auto", "lstm", "seasonal"}))
      ->capture_default_str();
  addModelOption(*cmd, a->models);
  addAdviceOptions(*cmd, a->advice, "this host");
  cmd->add_option("--match-data", a->match_data,
                  "matching history (foresight match's folder, fingerprints from Foresight's "
                  "profiles): machine types for that advice ranked by the environment matcher from "
                  "each workload's live fingerprint")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--min-history", a->min_history,
                  "seconds of a workload's history before its first plan (a limit set from less "
                  "caps it at whatever phase it was in)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--history-length", a->history_length,
                  "seconds of its samples in the history store (--database) from before the run that a "
                  "workload starts from, so that a restart does not wait --min-history again (0: none)")
      ->capture_default_str()
      ->check(finiteIn(0, 86400));
  cmd->add_option("--view", a->view, "print the live view every N seconds (0: off)")
      ->capture_default_str()
      ->check(finiteIn(0));
  cmd->add_option("--audit", a->audit, "SQLite audit trail of applied changes (with --apply; env FORESIGHT_AUDIT_DB)")
      ->capture_default_str();
  cmd->add_option("selectors", a->selectors,
                  "pid:N, cgroup:/path, cmd:REGEX (default: every populated cgroup)");
  cmd->callback([a, &builtins, database] {
    server::AgentConfig cfg;
    if (!a->config.empty()) {
      auto c = server::loadAgentConfig(a->config);
      if (!c) {
        spdlog::error("run: {}", c.error().message);
        throw CLI::RuntimeError(2);
      }
      cfg = *c;
    }
    if (!a->listen.empty()) {
      auto c = server::parseAgentConfig("listen: \"" + a->listen + "\"", "--listen");
      if (!c) {
        spdlog::error("run: {}", c.error().message);
        throw CLI::RuntimeError(2);
      }
      cfg.listen_host = c->listen_host;
      cfg.listen_port = c->listen_port;
    }
    if (!a->endpoint.bearer_token_file.empty()) cfg.bearer_token_file = a->endpoint.bearer_token_file;
    if (!a->endpoint.tls_cert_file.empty()) cfg.tls_cert_file = a->endpoint.tls_cert_file;
    if (!a->endpoint.tls_key_file.empty()) cfg.tls_key_file = a->endpoint.tls_key_file;
    if (!a->endpoint.tls_client_ca_file.empty()) cfg.tls_client_ca_file = a->endpoint.tls_client_ca_file;
    if (!a->endpoint.tls_client_crl_file.empty()) cfg.tls_client_crl_file = a->endpoint.tls_client_crl_file;
    if (database->count() > 0) cfg.database = a->database;  // given empty: no history store
    if (a->period > 0) cfg.period_seconds = a->period;
    if (!a->selectors.empty()) cfg.selectors = a->selectors;

    collect::CollectorContext ctx;
    ctx.paths = collect::HostPaths(cfg.root);
    ctx.layout = collect::detectCgroupLayout(ctx.paths);
    ctx.clock_ticks = ::sysconf(_SC_CLK_TCK);
    std::optional<collect::LaunchedWorkload> launched;
    if (!builtins.command.empty()) {
      auto l = collect::LaunchedWorkload::start(ctx, builtins.command);
      if (!l) {
        spdlog::error("run: {}", l.error().message);
        throw CLI::RuntimeError(1);
      }
      launched.emplace(std::move(*l));
      if (launched->workload().kind != collect::Workload::Kind::kCgroup) {
        spdlog::warn("run: {} runs as a process tree (no writable cgroup): watched, not resized",
                     builtins.command.front());
      }
      cfg.selectors = {launched->workload().kind == collect::Workload::Kind::kCgroup
                           ? "cgroup:" + launched->workload().cgroup
                           : "pid:" + std::to_string(launched->pid())};
    }

    std::shared_ptr<match::LiveMatcherRanker> ranker;
    if (!a->match_data.empty()) {
      auto data = match::loadMatchFolder(a->match_data);
      if (!data) {
        spdlog::error("run: --match-data {}: {}", a->match_data, data.error().message);
        throw CLI::RuntimeError(2);
      }
      ranker = std::make_shared<match::LiveMatcherRanker>(std::move(*data));
      cfg.on_fingerprint = [ranker](const std::string& workload, const fingerprint::Fingerprint& f) {
        ranker->observe(backendName(workload), {f.features.begin(), f.features.end()});
      };
    }
    auto planner_file = PlannerFile::open(a->planner, "run");
    if (!planner_file) {
      spdlog::error("run: {}", planner_file.error().message);
      throw CLI::RuntimeError(2);
    }
    auto scaler = makeAutoscaler(*a, builtins, ctx.layout, cfg.period_seconds, ranker, planner_file->current());
    if (!scaler) {
      spdlog::error("run: {}", scaler.error().message);
      throw CLI::RuntimeError(2);
    }
    loop::Autoscaler* autoscaler = scaler->get();
    // A kernel without PSI (built without CONFIG_PSI, or booted with psi=0) has no /proc/pressure:
    // nothing then shows a memory limit a workload stalls at, and an operator should know.
    if (const auto psi = ctx.paths.proc() / "pressure" / "memory"; !std::filesystem::exists(psi))
      spdlog::info("run: no memory PSI on this host ({} is missing): the planner's pressure rule cannot act",
                   psi.string());
    std::string through = a->backend;
    if (a->backend == "auto") {
      const auto pinned = autoscaler->backend().pinned();
      through += fmt::format(" (cgroup {} files{})", pinned.at("cgroup"),
                             pinned.at("systemd") == "yes" ? "; systemd units through systemd" : "");
    }
    spdlog::info("run: {} through {}", a->apply ? "applying limits" : "dry-run (add --apply to resize)", through);
    auto plan_metrics = std::make_shared<loop::PlanMetrics>(*autoscaler);
    cfg.collectables.push_back(plan_metrics);
    const bool dry_backend = a->backend == "dry-run";
    // The planner file is looked at (stat) once a second, from the sampling thread as observe().
    struct PlannerReload {
      PlannerFile file;
      std::int64_t checked = 0;
    };
    auto reload = std::make_shared<PlannerReload>(PlannerReload{std::move(*planner_file)});
    std::shared_ptr<StoreHistory> history;
    if (a->history_length > 0 && !cfg.database.empty() && std::filesystem::exists(cfg.database)) {
      auto db = store::Store::open(cfg.database);
      if (!db) {
        spdlog::warn("run: {}: workloads start without their stored history: {}", cfg.database, db.error().message);
      } else {
        const std::int64_t started_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count();
        history = std::make_shared<StoreHistory>(std::move(*db), started_ms, std::llround(a->history_length),
                                                 cfg.period_seconds);
      }
    }
    auto unmanaged = std::make_shared<std::set<std::string>>();  // the backend's refusal told once each
    auto unmanaged_count = std::make_shared<std::atomic<std::size_t>>(0);  // its size, for the view's thread
    auto told_left_alone = std::make_shared<std::set<std::string>>();
    auto told_stall_elsewhere = std::make_shared<std::set<std::string>>();
    // Planned for and shown, never resized (observe()'s left_alone): a cgroup the agent runs in
    // (its unit, or the session it was started from), where a forecast of its own steady use would
    // throttle the sampling and a memory limit from it could kill the agent at its next spike; one
    // PID 1 runs in (systemd's init.scope), where a limit would stall or kill the init system; and
    // what the planner file's leave_alone patterns name. Their plans still tell an operator when
    // one will outgrow a limit it has (the forecast-above-limit alerts).
    std::map<std::string, std::string> why_not;  // by backend name
    for (const auto& c : collect::cgroupsOfProcess(ctx.paths, 1)) why_not[backendName(c)] = "PID 1, the init system, runs in it";
    for (const auto& c : collect::cgroupsOfProcess(ctx.paths, ::getpid()))
      why_not[backendName(c)] = "the agent runs in it and does not resize itself";
    const auto left_alone = [reload, kept = std::move(why_not)](const std::string& name) -> std::optional<std::string> {
      if (auto it = kept.find(name); it != kept.end()) return it->second;
      if (auto pattern = reload->file.current().leftAlone(name))
        return fmt::format("it matches the planner policies' leave_alone '{}'", *pattern);
      return std::nullopt;
    };
    auto failures = std::make_shared<RepeatedLog>();  // a workload's failing rounds, said once a minute
    cfg.on_usage = [a, autoscaler, plan_metrics, dry_backend, reload, history, unmanaged, unmanaged_count,
                    told_left_alone, told_stall_elsewhere, left_alone, failures](
                       const std::string& workload, std::int64_t t, const std::array<double, kResourceCount>& usage,
                       const std::array<double, kResourceCount>& demand, const collect::LimitReadings& limits) {
      if (t != reload->checked) {
        reload->checked = t;
        if (auto p = reload->file.changed()) {
          const auto policies = adjusted(*a, *p);
          autoscaler->setPlanners(policies.defaults, policies.workloads);
        }
      }
      // Process trees have nothing to resize but can be planned for in dry-run.
      if (workload.empty()) return false;
      if (workload.front() != '/' && !dry_backend) return false;
      const Status managed = autoscaler->manages(backendName(workload));
      if (!managed) {
        if (unmanaged->insert(workload).second) {
          *unmanaged_count = unmanaged->size();
          spdlog::info("run: {}: left alone: {}", workload, managed.error().message);
        }
        return false;
      }
      const auto why = left_alone(backendName(workload));
      if (!why) told_left_alone->erase(workload);  // said again if left alone again later
      else if (told_left_alone->insert(workload).second)
        spdlog::info("run: {}: left alone (planned and shown, never resized): {}", workload, *why);
      plan_metrics->name(backendName(workload), workload);
      if (history)
        if (const auto past = history->pastOf(workload, t); !past.time.empty())
          if (const auto fed = autoscaler->warm(backendName(workload), past))
            spdlog::info("run: {}: starts from {} samples of the history store", workload, fed);
      loop::Bounds bounds;
      if (limits.cpuset_cpus > 0) bounds.ceiling[Resource::kCpu] = limits.cpuset_cpus;
      // Stalls its own limit does not cure, which the pressure rule leaves alone: said once, and
      // again only after a reading without any. 1 %: the ForesightMemoryStalledAtLimit alert's.
      if (limits.memory_stall_elsewhere > 0.01) {
        if (told_stall_elsewhere->insert(workload).second)
          spdlog::warn("run: {}: stalled on memory {:.1f}% of the time while not at its own memory limit: the host's "
                       "memory or an ancestor cgroup's limit is short, and raising its own limit would not help",
                       workload, 100 * limits.memory_stall_elsewhere);
      } else if (limits.memory_stall_elsewhere == 0) {
        told_stall_elsewhere->erase(workload);
      }
      std::optional<allocate::MemoryStall> stall;
      if (!std::isnan(limits.memory_stall) && !std::isnan(limits.memory_limit))
        stall = allocate::MemoryStall{limits.memory_stall, limits.memory_limit,
                                      static_cast<std::int64_t>(limits.memory_stall_since)};
      auto plan = autoscaler->observe(backendName(workload), t, usage, demand, bounds, why.has_value(), stall);
      if (!plan) {
        std::size_t held_back = 0;
        if (failures->due(workload, plan.error().message, RepeatedLog::Clock::now(), held_back))
          spdlog::warn("run: {}: {}{}", workload, plan.error().message,
                       held_back ? fmt::format(" ({} more times since it was last said)", held_back) : "");
      } else {
        failures->forget(workload);
      }
      return plan && *plan && (*plan)->hasChanges() && autoscaler->applies() && !why;
    };

    // A cgroup re-created under a gone one's path starts afresh (--min-history included).
    cfg.on_gone = [autoscaler, plan_metrics, ranker, history, unmanaged, unmanaged_count, told_left_alone,
                   told_stall_elsewhere, failures](const std::string& workload) {
      if (history) history->gone(workload);
      if (unmanaged->erase(workload)) *unmanaged_count = unmanaged->size();
      told_left_alone->erase(workload);
      told_stall_elsewhere->erase(workload);
      failures->forget(workload);
      autoscaler->forget(backendName(workload));
      plan_metrics->forget(backendName(workload));
      if (ranker) ranker->forget(backendName(workload));
    };
    server::Agent agent(cfg);
    if (auto st = agent.start(); !st) {
      spdlog::error("run: {}", st.error().message);
      throw CLI::RuntimeError(1);
    }
    installStopHandler();
    const auto start = std::chrono::steady_clock::now();
    auto next_view = start + std::chrono::duration<double>(a->view);
    while (!stopFlag().load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (a->view > 0 && std::chrono::steady_clock::now() >= next_view) {
        // Workloads the backend refuses (pods, libvirt guests) have no plan and never will:
        // counted, so that a view with none planned does not read as still waiting.
        const std::size_t left_alone = *unmanaged_count;
        printView(*autoscaler,
                  fmt::format("(no cgroup workload with enough history yet: the first plan waits for {} s of it, "
                              "--min-history{})",
                              a->min_history,
                              left_alone ? fmt::format("; {} left alone, said in the log", left_alone) : ""));
        next_view += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(a->view));
      }
      if (a->duration > 0 &&
          std::chrono::steady_clock::now() - start > std::chrono::duration<double>(a->duration))
        break;
      if (launched && launched->exited()) break;
    }
    agent.stop();
    spdlog::info("run: stopped after {} rounds", agent.rounds());
    // As `record`: a launched command that failed (or could not be executed, 127) is exit status 3.
    if (launched && failedOnItsOwn(*launched)) {
      spdlog::warn("run: {} exited with status {}", builtins.command.front(), launched->exitCode());
      throw CLI::RuntimeError(3);
    }
  });
}

}  // namespace foresight::app
