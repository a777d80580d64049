#include "foresight/loop/experiment.h"
#include "clock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "foresight/allocate/cgroup.h"
#include "foresight/collect/collector.h"
#include "foresight/collect/kernel_files.h"
#include "foresight/core/log.h"
#include "foresight/loop/controller.h"

namespace foresight::loop {
namespace fs = std::filesystem;
namespace {

using collect::readKernelFile;

// Cgroup files take one whole value per write.
Status writeFile(const fs::path& p, const std::string& v) {
  std::ofstream out(p);
  out << v;
  out.flush();
  if (!out)
    return fail(ErrorCode::kIo, "{}: cannot write '{}': {}", p.string(), v, std::strerror(errno));
  return ok();
}
// The value of `key` in a flat "key value" file (cpu.stat, memory.events, memory.oom_control).
Result<double> keyed(const fs::path& p, const std::string& key) {
  auto text = readKernelFile(p);
  if (!text) return tl::unexpected(text.error());
  const std::string_view k[1] = {key};
  double found[1];
  collect::findKeys(*text, k, found);
  if (std::isnan(found[0])) return fail(ErrorCode::kParse, "{}: no '{}'", p.string(), key);
  return found[0];
}
Result<double> number(const fs::path& p) {
  auto text = readKernelFile(p);
  if (!text) return tl::unexpected(text.error());
  auto v = collect::parseNumber(*text);
  if (!v) return fail(ErrorCode::kParse, "{}: not a number: '{}'", p.string(), *text);
  return *v;
}

struct CpuCounters {
  double usage_seconds = 0, throttled_seconds = 0;
};

// The experiment's own cgroup, v1 or v2, created for one run and removed after it; it reads the
// counters the experiment scores. Limits are set through the allocator's cgroup backend, the same
// path `foresight allocate` takes.
class ExperimentCgroup {
 public:
  // v1: the cpu part needs the cpu and cpuacct hierarchies, the memory part the memory one (and
  // the cpu one where mounted, for the weight below); a hierarchy the part does not need may be
  // missing.
  static Result<ExperimentCgroup> create(const fs::path& root, const std::string& name, bool memory) {
    ExperimentCgroup cg;
    cg.v2_ = fs::exists(root / "cgroup.controllers");
    const bool joint = fs::exists(root / "cpu,cpuacct" / "cgroup.procs");
    const fs::path cpu_root = root / (joint ? "cpu,cpuacct" : "cpu"),
                   cpuacct_root = root / (joint ? "cpu,cpuacct" : "cpuacct"), memory_root = root / "memory";
    std::vector<fs::path> needed;  // hierarchy roots
    if (!cg.v2_) needed = memory ? std::vector{memory_root} : std::vector{cpu_root, cpuacct_root};
    // Not a cgroup mount: creating the directories would only make ordinary folders there.
    for (const auto& h : needed)
      if (!fs::exists(h / "cgroup.procs"))
        return fail(ErrorCode::kUnavailable,
                    "{}: not a cgroup hierarchy (no cgroup.procs), which the {} part needs ({} is not cgroup v2 either)",
                    h.string(), memory ? "memory" : "cpu", root.string());
    std::vector<fs::path> dirs;
    if (cg.v2_) {
      cg.cpu_ = cg.cpuacct_ = cg.memory_ = root / name;
      (void)writeFile(root / "cgroup.subtree_control", "+cpu +memory");
      dirs = {cg.cpu_};
    } else {
      cg.cpu_ = cpu_root / name;
      cg.cpuacct_ = cpuacct_root / name;
      cg.memory_ = memory_root / name;
      for (const auto& [h, d] : {std::pair{cpu_root, cg.cpu_}, {cpuacct_root, cg.cpuacct_}, {memory_root, cg.memory_}})
        if (fs::exists(h / "cgroup.procs") && std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
    }
    for (const auto& d : dirs) {
      std::error_code ec;
      fs::create_directories(d, ec);
      if (ec)
        return fail(ErrorCode::kUnavailable, "{}: cannot create cgroup: {}", d.string(),
                    ec.message());
      cg.dirs_.push_back(d);
    }
    // The largest CPU weight: other processes on the host must not starve the workload, so that
    // the only limit it meets is the quota under test.
    (void)writeFile(cg.cpu_ / (cg.v2_ ? "cpu.weight" : "cpu.shares"), cg.v2_ ? "10000" : "262144");
    return cg;
  }
  ExperimentCgroup() = default;
  ExperimentCgroup(ExperimentCgroup&& o) noexcept
      : v2_(o.v2_),
        cpu_(o.cpu_),
        cpuacct_(o.cpuacct_),
        memory_(o.memory_),
        dirs_(std::move(o.dirs_)) {}
  ~ExperimentCgroup() {
    for (const auto& d : dirs_) {
      // rmdir; the kernel may take a moment to release a cgroup whose last task just exited.
      std::error_code ec;
      for (int i = 0; i < 50 && fs::exists(d) && !fs::remove(d, ec); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (fs::exists(d)) spdlog::warn("{}: could not remove: {}", d.string(), ec.message());
    }
  }

  // The cgroup.procs files to join; writing "0" to one moves the writer itself.
  std::vector<std::string> procsFiles() const {
    std::vector<std::string> out;
    for (const auto& d : dirs_) out.push_back((d / "cgroup.procs").string());
    return out;
  }
  Result<CpuCounters> cpu() const {
    CpuCounters c;
    if (v2_) {
      auto u = keyed(cpu_ / "cpu.stat", "usage_usec");
      auto t = keyed(cpu_ / "cpu.stat", "throttled_usec");
      if (!u || !t) return tl::unexpected(u ? t.error() : u.error());
      c.usage_seconds = *u * 1e-6, c.throttled_seconds = *t * 1e-6;
    } else {
      auto u = number(cpuacct_ / "cpuacct.usage");
      auto t = keyed(cpu_ / "cpu.stat", "throttled_time");
      if (!u || !t) return tl::unexpected(u ? t.error() : u.error());
      c.usage_seconds = *u * 1e-9, c.throttled_seconds = *t * 1e-9;
    }
    return c;
  }
  Result<double> memoryUsage() const {
    return number(memory_ / (v2_ ? "memory.current" : "memory.usage_in_bytes"));
  }
  Result<double> oomKills() const {
    return v2_ ? keyed(memory_ / "memory.events", "oom_kill")
               : keyed(memory_ / "memory.oom_control", "oom_kill");
  }
  bool v2() const { return v2_; }
  void killAll() const {
    for (const auto& d : dirs_) {
      auto procs = readKernelFile(d / "cgroup.procs");
      if (!procs) continue;
      std::istringstream in(*procs);
      pid_t pid;
      while (in >> pid) ::kill(pid, SIGKILL);
    }
  }

 private:
  bool v2_ = false;
  fs::path cpu_, cpuacct_, memory_;
  std::vector<fs::path> dirs_;
};

}  // namespace

Result<ForesightOptions> foresightOptionsFor(bool memory, const ExperimentOptions& o) {
  const auto per_cycle =
      static_cast<std::size_t>(std::lround(o.cycle_seconds / o.interval_seconds));
  // The planner's product defaults, but for the time scale: decisions every second on cycles of
  // tens of seconds leave no room for a 300 s cool-down or a 10%-a-step descent.
  predict::SeasonalOptions so;
  so.max_period = std::max<std::size_t>(8, 3 * per_cycle / 2);
  so.errors = 2 * per_cycle;
  so.follow_growth = memory;  // a growing working set
  auto forecasters = makeForecasters(o.forecaster, o.models, so, o.interval_seconds);
  if (!forecasters) return tl::unexpected(forecasters.error());
  ForesightOptions f;
  f.forecaster = std::move(*forecasters);
  f.resource = memory ? Resource::kMemory : Resource::kCpu;
  f.interval_seconds = o.interval_seconds;
  f.policy.headroom = 0.05;
  f.policy.hysteresis = 0.05;
  f.policy.max_step_down = 0.30;
  f.policy.cooldown_down_seconds = 0;
  f.policy.min = memory ? 16.0 * (1 << 20) : 0.05;
  if (memory) f.policy.quantile = 0.99;  // an OOM kill costs far more than a throttled second
  return f;
}

namespace {

Result<std::unique_ptr<Controller>> makeController(const std::string& name, bool memory,
                                                   const ExperimentOptions& o) {
  const auto per_cycle =
      static_cast<std::size_t>(std::lround(o.cycle_seconds / o.interval_seconds));
  if (name == "static") {
    StaticOptions s;
    s.warmup_intervals = per_cycle * static_cast<std::size_t>(o.warmup_cycles);
    return makeStaticController(s);
  }
  if (name == "reactive") {
    ReactiveOptions r;
    r.min_limit = memory ? 16.0 * (1 << 20) : 0.05;
    return makeReactiveController(r);
  }
  return foresightOptionsFor(memory, o).map(makeForesightController);
}

pid_t spawnWorkload(const ExperimentOptions& o, const ExperimentCgroup& cg, const std::string& kind,
                    double start_epoch, double end, const fs::path& out) {
  const std::vector<std::string> args = {o.self_exe.string(),
                                         "--log-level",
                                         "warn",
                                         "bench",
                                         "workload",
                                         "--kind",
                                         kind,
                                         "--cycle",
                                         fmt::format("{}", o.cycle_seconds),
                                         "--duration",
                                         fmt::format("{}", end - start_epoch),
                                         "--start-epoch",
                                         fmt::format("{:.6f}", start_epoch),
                                         "--score-after",
                                         fmt::format("{}", o.warmup_cycles * o.cycle_seconds),
                                         "--out",
                                         out.string()};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const auto procs = cg.procsFiles();  // prepared before fork: the child only makes system calls
  const pid_t pid = fork();
  if (pid == 0) {
    for (const auto& f : procs) {
      const int fd = ::open(f.c_str(), O_WRONLY);
      if (fd < 0 || ::write(fd, "0", 1) != 1) _exit(126);
      ::close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// The workload process and its result file, ended and removed on every way out of runOne(): an
// error or an interrupt must not leave a workload running in a cgroup that then cannot be removed.
struct WorkloadGuard {
  pid_t& child;
  const ExperimentCgroup& cg;
  fs::path out;
  ~WorkloadGuard() {
    if (child > 0) {
      ::kill(child, SIGKILL);
      waitpid(child, nullptr, 0);  // reaped: a zombie would keep the cgroup busy
    }
    cg.killAll();
    std::error_code ec;
    fs::remove(out, ec);
  }
};

bool stopped(const ExperimentOptions& o) { return o.stop && o.stop->load(); }

Result<ControllerResult> runOne(const ExperimentOptions& o, const std::string& controller_name,
                                bool memory) {
  const std::string kind = memory ? "memory" : "cpu";
  const std::string name = fmt::format("foresight-bench-{}-{}-{}", kind, controller_name, getpid());
  auto made = makeController(controller_name, memory, o);  // before anything is created
  if (!made) return tl::unexpected(made.error());
  auto controller = std::move(*made);
  auto cg = ExperimentCgroup::create(o.cgroup_root, name, memory);
  if (!cg) return tl::unexpected(cg.error());
  const fs::path out = fs::temp_directory_path() /
                       fmt::format("foresight-bench-{}-{}.json", controller_name, getpid());
  fs::remove(out);

  const double start = wallNow() + 0.5;
  const double duration = (o.warmup_cycles + o.scored_cycles) * o.cycle_seconds;
  const double end = start + duration, scored_from = start + o.warmup_cycles * o.cycle_seconds;
  allocate::CgroupConfig config;
  config.root = o.cgroup_root;
  auto backend = cg->v2() ? allocate::makeCgroupV2Backend(config, allocate::makeRealCgroupFiles())
                          : allocate::makeCgroupV1Backend(config, allocate::makeRealCgroupFiles());
  const Resource resource = memory ? Resource::kMemory : Resource::kCpu;
  auto setLimit = [&](double value) {
    allocate::Allocation a;
    a[resource] = value;  // +infinity removes the limit
    return backend->apply(name, a);
  };
  double limit = kUnlimited;
  if (auto s = setLimit(limit); !s) return tl::unexpected(s.error());
  pid_t child = spawnWorkload(o, *cg, kind, start, end, out);
  if (child < 0)
    return fail(ErrorCode::kUnavailable, "cannot fork the workload: {}", std::strerror(errno));
  const WorkloadGuard guard{child, *cg, out};

  ControllerResult r;
  double scored_time = 0, limit_time = 0;
  auto cpu0 = memory ? Result<CpuCounters>(CpuCounters{}) : cg->cpu();
  auto oom0 = memory ? cg->oomKills() : Result<double>(0.0);
  if (!cpu0 || !oom0) return tl::unexpected(!cpu0 ? cpu0.error() : oom0.error());
  CpuCounters prev = *cpu0;
  double prev_oom = *oom0, prev_t = wallNow();
  const double machine_cores = static_cast<double>(std::thread::hardware_concurrency());
  const double machine_memory =
      static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  for (double tick = start + o.interval_seconds; tick <= end + 1e-9; tick += o.interval_seconds) {
    sleepUntilWall(tick);
    if (stopped(o)) return fail(ErrorCode::kUnavailable, "interrupted");
    const double t = wallNow(), dt = t - prev_t;
    Interval in;
    in.limit = limit;
    double oom_delta = 0;
    if (memory) {
      auto usage = cg->memoryUsage();
      auto ooms = cg->oomKills();
      if (!usage || !ooms) return tl::unexpected(!usage ? usage.error() : ooms.error());
      oom_delta = *ooms - prev_oom;
      prev_oom = *ooms;
      in.usage = in.demand = *usage;
      in.pressure = !std::isinf(limit) && *usage > 0.9 * limit;
      if (oom_delta > 0 && !std::isinf(limit)) {
        in.demand = std::max(*usage, collect::memoryDemandAfterOomKill(limit));
        in.pressure = true;
      }
    } else {
      auto c = cg->cpu();
      if (!c) return tl::unexpected(c.error());
      in.usage = (c->usage_seconds - prev.usage_seconds) / dt;
      const double throttled = c->throttled_seconds - prev.throttled_seconds;
      in.demand = collect::cpuDemand(in.usage, throttled / dt, machine_cores);
      in.pressure = throttled > 0;
      if (tick > scored_from + 1e-9) r.throttled_seconds += throttled;
      prev = *c;
    }
    if (tick > scored_from + 1e-9) {
      scored_time += dt;
      // No limit is the whole machine, as it is for cpu: counted as 0 it scored best.
      limit_time += dt * (std::isinf(limit) ? (memory ? machine_memory : machine_cores) : limit);
      r.oom_kills += static_cast<int>(oom_delta);
    } else {
      r.warmup_oom_kills += static_cast<int>(oom_delta);
    }
    prev_t = t;
    // A workload killed by the OOM killer is started again, from the beginning of its cycle, as
    // a restarted service would be.
    int status = 0;
    if (child > 0 && waitpid(child, &status, WNOHANG) == child) {
      child = -1;
      if (WIFSIGNALED(status) && t + 1 < end) child = spawnWorkload(o, *cg, kind, t, end, out);
    }
    const double next = controller->decide(in);
    if (auto s = setLimit(next); s) {
      limit = next;
    } else {
      spdlog::warn("{}: keeping the previous limit: {}", controller_name, s.error().message);
    }
  }
  if (child > 0) {
    // The workload takes no arrivals after `end` and then drains its backlog; wait for it.
    for (int i = 0; i < 600 && !stopped(o); ++i) {
      if (waitpid(child, nullptr, WNOHANG) == child) {
        child = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (stopped(o)) return fail(ErrorCode::kUnavailable, "interrupted");
    if (child > 0) {
      ::kill(child, SIGKILL);
      waitpid(child, nullptr, 0);  // reaped: a zombie would keep the cgroup busy
      child = -1;
    }
  }
  cg->killAll();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  if (!(scored_time > 0))
    return fail(ErrorCode::kInternal, "{}: no decision fell in the scored cycles", controller_name);
  if (memory) {
    r.mean_memory_limit_bytes = scored_time > 0 ? limit_time / scored_time : 0;
  } else {
    r.mean_quota_cores = scored_time > 0 ? limit_time / scored_time : 0;
    // A missing latency is said, not left out of the JSON unnoticed: it is half of what the cpu
    // part compares.
    auto j = readKernelFile(out);
    nlohmann::json parsed = j ? nlohmann::json::parse(*j, nullptr, false) : nlohmann::json();
    if (!j) {
      spdlog::warn("{}: no p99 latency: {}", controller_name, j.error().message);
    } else if (parsed.is_discarded() || !parsed.is_object()) {
      spdlog::warn("{}: no p99 latency: {} is not a JSON object", controller_name, out.string());
    } else if (auto it = parsed.find("p99_latency_ms"); it == parsed.end() || !it->is_number()) {
      spdlog::warn("{}: no p99 latency: {} has no numeric p99_latency_ms (requests: {})",
                   controller_name, out.string(), parsed.value("requests", nlohmann::json()).dump());
    } else {
      r.p99_latency_ms = it->get<double>();
    }
  }
  return r;  // the guard removes `out`
}

}  // namespace

Result<ExperimentResult> runClosedLoopExperiment(const ExperimentOptions& o) {
  ExperimentResult result;
  for (const auto& name : o.controllers) {
    if (name != "static" && name != "reactive" && name != "foresight") {
      return fail(ErrorCode::kInvalidArgument,
                  "unknown controller '{}' (known: static, reactive, foresight)", name);
    }
  }
  for (const auto& name : o.controllers) {
    auto& r = result.controllers[name];
    if (stopped(o)) return fail(ErrorCode::kUnavailable, "interrupted");
    if (o.cpu) {
      spdlog::info("cpu part: {} ({} s)", name,
                   (o.warmup_cycles + o.scored_cycles) * o.cycle_seconds);
      auto c = runOne(o, name, false);
      if (!c) return tl::unexpected(c.error());
      r.throttled_seconds = c->throttled_seconds;
      r.mean_quota_cores = c->mean_quota_cores;
      r.p99_latency_ms = c->p99_latency_ms;
    }
    if (o.memory) {
      spdlog::info("memory part: {} ({} s)", name,
                   (o.warmup_cycles + o.scored_cycles) * o.cycle_seconds);
      auto m = runOne(o, name, true);
      if (!m) return tl::unexpected(m.error());
      r.oom_kills = m->oom_kills;
      r.warmup_oom_kills = m->warmup_oom_kills;
      r.mean_memory_limit_bytes = m->mean_memory_limit_bytes;
    }
  }
  return result;
}

nlohmann::ordered_json ExperimentResult::toJson(const ExperimentOptions& o) const {
  nlohmann::ordered_json j;
  j["protocol"] = {{"interval_seconds", o.interval_seconds},
                   {"cycle_seconds", o.cycle_seconds},
                   {"warmup_cycles", o.warmup_cycles},
                   {"scored_cycles", o.scored_cycles},
                   {"cpu", o.cpu},
                   {"forecaster", o.forecaster},
                   {"memory", o.memory}};
  for (const auto& name : o.controllers) {  // in the order asked, as the runs were made
    auto it = controllers.find(name);
    if (it == controllers.end()) continue;
    const ControllerResult& r = it->second;
    auto& c = j["controllers"][name];
    if (o.cpu) {
      c["throttled_seconds"] = r.throttled_seconds;
      c["mean_quota_cores"] = r.mean_quota_cores;
      c["p99_latency_ms"] = r.p99_latency_ms ? nlohmann::ordered_json(*r.p99_latency_ms) : nullptr;
    }
    if (o.memory) {
      c["oom_kills"] = r.oom_kills;
      c["warmup_oom_kills"] = r.warmup_oom_kills;
      c["mean_memory_limit_bytes"] = r.mean_memory_limit_bytes;
    }
  }
  return j;
}

}  // namespace foresight::loop
