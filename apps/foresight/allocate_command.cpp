// `foresight allocate`: apply an allocation by hand through a backend, on the audit trail.
// `foresight cost`: where extra capacity should come from, with every alternative's cost.
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "foresight/allocate/audit.h"
#include "foresight/allocate/cost.h"
#include "foresight/match/ranker.h"
#include "foresight/core/log.h"

namespace foresight::app {

std::string defaultAuditDb() {
  const char* env = std::getenv("FORESIGHT_AUDIT_DB");
  return env && *env ? env : "foresight-audit.db";
}

namespace {

bool isUnlimited(const std::string& s) { return s == "max" || s == "unlimited"; }

Result<double> parseCores(const std::string& s) {
  if (isUnlimited(s)) return INFINITY;
  try {
    std::size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size() && v > 0 && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  return fail(ErrorCode::kInvalidArgument, "--cpu '{}': expected cores (e.g. 1.5) or max", s);
}

Result<double> parseSize(const std::string& flag, const std::string& s) {
  if (isUnlimited(s)) return INFINITY;
  auto v = allocate::parseBytes(s);
  if (!v) return fail(ErrorCode::kInvalidArgument, "{}: {}", flag, v.error().message);
  // A zero limit starves the workload (memory 0 kills it); "no limit" is max.
  if (*v <= 0) return fail(ErrorCode::kInvalidArgument, "{} '{}': must be > 0, or max", flag, s);
  return v;
}

// Checked here, like the two below, so that a change that cannot work is refused before it reaches
// the audit trail: a VM's vCPUs and a pod's resources have no "unlimited".
Status checkUnlimited(const std::string& backend, const allocate::Allocation& target) {
  if (backend != "libvirt" && backend != "kubernetes") return ok();
  for (Resource r : {Resource::kCpu, Resource::kMemory})
    if (target[r] && std::isinf(*target[r]))
      return fail(ErrorCode::kInvalidArgument, "--{} max: the {} backend needs an amount",
                  r == Resource::kCpu ? "cpu" : "memory", backend);
  return ok();
}

// The backends that can throttle disk I/O (cgroup, systemd, auto, libvirt) need the device; the
// others cannot at all.
Status checkDiskIo(const std::string& backend, const allocate::BackendOptions& options) {
  if (backend == "cgroup-v1" || backend == "cgroup-v2" || backend == "systemd" || backend == "auto") {
    if (options.get("io_device").empty())
      return fail(ErrorCode::kInvalidArgument,
                  "--io: {} needs the block device to throttle: -o io_device=MAJ:MIN", backend);
  } else if (backend == "libvirt") {
    if (options.get("disk").empty())
      return fail(ErrorCode::kInvalidArgument,
                  "--io: libvirt needs the guest's disk to throttle: -o disk=TARGET (as virsh domblklist lists it, "
                  "e.g. vda)");
  } else if (backend == "kubernetes") {
    return fail(ErrorCode::kInvalidArgument, "--io: the {} backend does not manage disk I/O",
                backend);
  }
  return ok();
}

struct AllocateArgs {
  std::string backend, workload, cpu, memory, io, reason = "manual", db = defaultAuditDb();
  std::vector<std::string> options;
  bool dry_run = false, force = false;
  double usage_margin = 0.10;
};

int runAllocate(const AllocateArgs& a, const Builtins& builtins) {
  allocate::BackendOptions options;
  for (const auto& kv : a.options)
    if (auto st = options.set(kv); !st) {
      spdlog::error("{}", st.error().message);
      return 2;
    }
  allocate::Allocation target;
  for (auto [flag, text, r] : {std::tuple{"--cpu", a.cpu, Resource::kCpu},
                               {"--memory", a.memory, Resource::kMemory},
                               {"--io", a.io, Resource::kDiskIo}}) {
    if (text.empty()) continue;
    auto v = r == Resource::kCpu ? parseCores(text) : parseSize(flag, text);
    if (!v) {
      spdlog::error("{}", v.error().message);
      return 2;
    }
    target[r] = *v;
  }
  if (target.empty()) {
    spdlog::error("nothing to allocate: give --cpu, --memory and/or --io");
    return 2;
  }
  if (auto st = checkUnlimited(a.backend, target); !st) {
    spdlog::error("{}", st.error().message);
    return 2;
  }
  if (target[Resource::kDiskIo])
    if (auto st = checkDiskIo(a.backend, options); !st) {
      spdlog::error("{}", st.error().message);
      return 2;
    }
  auto created = builtins.backends.create(a.backend, options);
  if (!created) {
    spdlog::error("{}", created.error().message);
    return 2;
  }
  if (auto st = (*created)->configured(); !st) {
    spdlog::error("{}", st.error().message);
    return 2;
  }
  std::unique_ptr<allocate::Backend> backend = std::move(*created);
  if (a.dry_run) backend = allocate::makeDryRunBackend(std::move(backend));

  auto before = backend->current(a.workload);
  if (!before) {
    spdlog::error("{}", before.error().message);
    return 1;
  }
  // The planner's safety rail, for hand-made changes too.
  if (target[Resource::kMemory] && !std::isinf(*target[Resource::kMemory])) {
    auto used = backend->usage(a.workload);
    if (!used)
      spdlog::warn("{} {}: usage unknown, memory safety check skipped: {}", a.backend, a.workload,
                   used.error().message);
    if (used && (*used)[Resource::kMemory]) {
      const double floor = *(*used)[Resource::kMemory] * (1.0 + a.usage_margin);
      if (*target[Resource::kMemory] < floor && !a.force) {
        spdlog::error(
            "{} {}: memory {} is below the memory in use {} (the working set, where the backend can tell) "
            "plus {:.0f}% margin; use --force to apply anyway",
            a.backend, a.workload, allocate::formatBytes(*target[Resource::kMemory]),
            allocate::formatBytes(*(*used)[Resource::kMemory]), a.usage_margin * 100);
        return 1;
      }
    }
  }
  std::cout << "before: " << allocate::format(*before) << "\n";
  if (a.dry_run) {
    auto st = backend->apply(a.workload, target);
    std::cout << "dry run: would apply " << allocate::format(target) << "\n";
    return st ? 0 : 1;
  }
  auto log = allocate::AuditLog::open(a.db);
  if (!log) {
    spdlog::error("{}", log.error().message);
    return 1;
  }
  auto id =
      allocate::applyAndRecord(*backend, a.backend, options, *log, a.workload, target, a.reason);
  if (!id) {
    spdlog::error("{}", id.error().message);
    return 1;
  }
  auto after = backend->current(a.workload);
  std::cout << "after:  " << (after ? allocate::format(*after) : after.error().message) << "\n"
            << "recorded as #" << *id << " in " << a.db << "\n";
  return 0;
}

struct CostArgs {
  std::string catalog = dataFile(kShippedCatalog), machine, need_cpu, need_memory, cur_cpu = "0",
              cur_memory = "0", spare_cpu = "0", spare_memory = "0";
  std::optional<double> current_hourly;
  double hours = 1, risk_budget = 0.05, migration_cost = 0;
  bool no_scale_out = false;
  std::int64_t top = 12;  // signed: CLI11 would wrap -1 in an unsigned
  std::string match_data, match_workload;
};

int runCost(const CostArgs& a) {
  auto catalog = allocate::loadPriceCatalog(a.catalog);
  if (!catalog) {
    spdlog::error("{}", catalog.error().message);
    return 2;
  }
  if (!a.machine.empty() && !catalog->find(a.machine)) {
    std::vector<std::string> known;
    for (const auto& m : catalog->machines) known.push_back(m.name);
    spdlog::error("--machine '{}': not in {} (known: {})", a.machine, a.catalog,
                  fmt::join(known, ", "));
    return 2;
  }
  allocate::CapacityRequest req;
  req.machine = a.machine;
  auto cores = [](const std::string& s) -> Result<double> {
    try {
      std::size_t used = 0;
      const double v = std::stod(s, &used);
      if (used == s.size() && std::isfinite(v) && v >= 0) return v;
    } catch (const std::exception&) {
    }
    return fail(ErrorCode::kInvalidArgument, "'{}' is not a number of cores >= 0", s);
  };
  for (auto [flag, text, alloc, r] :
       {std::tuple{"--need-cpu", a.need_cpu, &req.need, Resource::kCpu},
        {"--need-memory", a.need_memory, &req.need, Resource::kMemory},
        {"--current-cpu", a.cur_cpu, &req.current, Resource::kCpu},
        {"--current-memory", a.cur_memory, &req.current, Resource::kMemory},
        {"--spare-cpu", a.spare_cpu, &req.spare, Resource::kCpu},
        {"--spare-memory", a.spare_memory, &req.spare, Resource::kMemory}}) {
    auto v = r == Resource::kCpu ? cores(text) : allocate::parseBytes(text);
    if (!v) {
      spdlog::error("{}: {}", flag, v.error().message);
      return 2;
    }
    (*alloc)[r] = *v;
  }
  req.hours = a.hours;
  req.risk_budget = a.risk_budget;
  req.migration_cost = a.migration_cost;
  req.can_scale_out = !a.no_scale_out;
  if (a.current_hourly) {
    req.current_hourly = *a.current_hourly;
  } else {
    const auto* m = catalog->find(a.machine);
    req.current_hourly = m && m->on_demand ? *m->on_demand : 0.0;
  }
  std::optional<match::MatcherRanker> ranker;
  if (!a.match_data.empty()) {
    auto data = match::loadMatchFolder(a.match_data);
    auto r = data ? match::MatcherRanker::forWorkload(*data, a.match_workload)
                  : Result<match::MatcherRanker>(tl::unexpected(data.error()));
    if (!r) {
      spdlog::error("--match-data {}: {}", a.match_data, r.error().message);
      return 2;
    }
    if (r->rank(req, *catalog).empty()) {
      spdlog::error("--match-data {}: none of the matcher's machine types ({}) is in {}",
                    a.match_data, fmt::join(r->order(), ", "), a.catalog);
      return 2;
    }
    ranker.emplace(std::move(*r));
    std::cout << fmt::format("machine types for {} by the matcher, best first: {}\n{}\n",
                             a.match_workload, fmt::join(ranker->rank(req, *catalog), ", "),
                             ranker->explanation());
  }
  const allocate::CostModel model(*catalog, ranker ? &*ranker : nullptr);
  const auto choice = model.choose(req);
  std::cout << fmt::format("prices: {} ({}, {}, {}){}\n", a.catalog, catalog->prices_as_of,
                           catalog->region, catalog->currency,
                           catalog->resource_prices_fitted
                               ? fmt::format("; resource prices fitted: {:.5f}/core-h, "
                                             "{:.5f}/GiB-h",
                                             catalog->cpu_core_hour, catalog->memory_gib_hour)
                               : "");
  std::cout << choice.summary(static_cast<std::size_t>(a.top));
  if (!choice.chosen) {
    std::cout << "no feasible alternative\n";
    return 1;
  }
  return 0;
}

}  // namespace

void addAllocateCommand(CLI::App& app, Builtins& builtins) {
  auto a = std::make_shared<AllocateArgs>();
  std::string backends;
  for (const auto& n : builtins.backends.names())
    backends += "\n  " + n + ": " + builtins.backends.summary(n);
  auto* cmd = app.add_subcommand(
      "allocate", "Apply an allocation by hand through a backend; recorded in the audit trail.");
  cmd->footer("Backends:" + backends);
  cmd->add_option("--backend", a->backend, "one of the backends below")
      ->required();
  cmd->add_option("--workload", a->workload,
                  "cgroup path, systemd unit, libvirt domain, ns/pod[/container] or ns/vpa/container")
      ->required();
  cmd->add_option("--cpu", a->cpu, "cores, e.g. 1.5, or max");
  cmd->add_option("--memory", a->memory, "bytes, e.g. 2G or 512M, or max");
  cmd->add_option("--io", a->io, "disk bytes/s per direction, e.g. 50M, or max");
  cmd->add_option("--option,-o", a->options, "backend option key=value (repeatable)");
  cmd->add_flag("--dry-run", a->dry_run, "log what would change; change and record nothing");
  cmd->add_option("--db", a->db, "audit database (env FORESIGHT_AUDIT_DB)")->capture_default_str();
  cmd->add_option("--reason", a->reason, "why, for the audit trail")->capture_default_str();
  // A negative margin would let memory go below what the workload uses: the check would be off.
  cmd->add_option("--usage-margin", a->usage_margin, "refuse memory below the memory in use (the working set, where the backend can tell) * (1 + margin)")
      ->capture_default_str()
      ->check(finiteIn(0));
  cmd->add_flag("--force", a->force, "apply memory below the memory in use plus margin anyway");
  cmd->callback([a, &builtins] {
    const int rc = runAllocate(*a, builtins);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });

  auto c = std::make_shared<CostArgs>();
  auto* cost = app.add_subcommand(
      "cost", "Where extra capacity should come from: every alternative's expected cost.");
  cost->add_option("--catalog", c->catalog, "price catalog (YAML)")->capture_default_str();
  cost->add_option("--machine", c->machine, "current machine type");
  cost->add_option("--need-cpu", c->need_cpu, "cores the forecast needs")->required();
  cost->add_option("--need-memory", c->need_memory, "memory the forecast needs, e.g. 12G")
      ->required();
  cost->add_option("--current-cpu", c->cur_cpu, "cores the workload has now");
  cost->add_option("--current-memory", c->cur_memory, "memory the workload has now");
  cost->add_option("--spare-cpu", c->spare_cpu, "free cores on the current machine");
  cost->add_option("--spare-memory", c->spare_memory, "free memory on the current machine");
  cost->add_option("--current-hourly", c->current_hourly,
                   "what the current placement costs per hour (default: machine's on-demand)")
      ->check(finiteIn(0));
  cost->add_option("--hours", c->hours, "how long the capacity is needed")->capture_default_str()
      ->check(finiteAbove(0));
  cost->add_option("--risk-budget", c->risk_budget, "highest acceptable interruption probability")
      ->capture_default_str()
      ->check(finiteIn(0, 1));
  cost->add_option("--migration-cost", c->migration_cost, "cost of one move")
      ->capture_default_str()
      ->check(finiteIn(0));
  cost->add_option("--top", c->top, "show the N best alternatives (0 = all)")
      ->capture_default_str()
      ->check(wholeNumber(0));
  cost->add_flag("--no-scale-out", c->no_scale_out, "the workload cannot run on two machines");
  auto* md = cost->add_option("--match-data", c->match_data,
                              "environment-matcher folder (docs/matching.md): move/add consider "
                              "only the machine types the matcher ranks for --match-workload");
  cost->add_option("--match-workload", c->match_workload, "the workload's id in --match-data")
      ->needs(md);
  md->needs(cost->get_option("--match-workload"));
  cost->callback([c] {
    const int rc = runCost(*c);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
