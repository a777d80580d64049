// CPU time of one sampling round over N real cgroups (each holding one sleeping process), with the
// collectors `foresight run` uses on this host. Needs root and a cgroup hierarchy.
// Counters: CPU per round and per workload, kept_fds (fds the collectors hold between rounds).
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include "foresight/collect/kernel_files.h"
#include "foresight/collect/sampler.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {

double processCpu() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct Fleet {
  std::vector<fs::path> dirs;
  std::vector<pid_t> pids;
  std::vector<Workload> workloads;
  ~Fleet() {
    for (pid_t p : pids) ::kill(p, SIGKILL);
    for (pid_t p : pids) ::waitpid(p, nullptr, 0);
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::rmdir(it->c_str());
  }
};

bool makeFleet(const CgroupLayout& layout, int n, Fleet& f) {
  std::vector<fs::path> mounts;
  if (layout.version == CgroupVersion::kV2) mounts.push_back(layout.unified);
  else for (const char* c : {"cpu", "cpuacct", "memory", "blkio"}) if (auto d = layout.v1(c)) mounts.push_back(*d);
  // FORESIGHT_BENCH_UNIFIED=1 on a hybrid host: the cgroups in the unified hierarchy too, as
  // systemd places its units, which gives them PSI files and perf cgroup events.
  if (layout.version == CgroupVersion::kHybrid && std::getenv("FORESIGHT_BENCH_UNIFIED"))
    mounts.push_back(layout.unified);
  // FORESIGHT_BENCH_CPUSET=1 on v1: in the cpuset hierarchy too, as container runtimes place
  // theirs, so the collector reads each one's cpuset (by path, with the limits). The sleeper
  // does not join it: an empty v1 cpuset takes no tasks, and the read does not need them.
  const auto cpuset = layout.version != CgroupVersion::kV2 && std::getenv("FORESIGHT_BENCH_CPUSET")
                          ? layout.v1("cpuset") : std::nullopt;
  // FORESIGHT_BENCH_QUOTA=1: each cgroup gets a CFS quota (one core), as the workloads the
  // allocator sizes have; only those have their cpu.stat read every round.
  const bool quota = std::getenv("FORESIGHT_BENCH_QUOTA") != nullptr;
  // FORESIGHT_BENCH_DEPTH=D: each cgroup D levels down, under D - 1 parents shared by all of them
  // (as kubepods/burstable/pod.../ctr), whose quota files the collector reads with the limits.
  const long depth = std::getenv("FORESIGHT_BENCH_DEPTH") ? std::strtol(std::getenv("FORESIGHT_BENCH_DEPTH"), nullptr, 10) : 1;
  std::string prefix;
  for (long d = 1; d < depth; ++d) {
    if (d == 1) prefix.append("foresight-bench-").append(std::to_string(::getpid())).append("-tree/");
    else prefix.append("l").append(std::to_string(d)).append("/");
    std::vector<fs::path> levels = mounts;
    if (cpuset) levels.push_back(*cpuset);
    for (const auto& m : levels) {
      std::error_code ec;
      if (!fs::create_directory(m / prefix, ec)) return false;
      f.dirs.push_back(m / prefix);
    }
  }
  for (int i = 0; i < n; ++i) {
    const std::string name = prefix + "foresight-bench-" + std::to_string(::getpid()) + "-" + std::to_string(i);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::pause();
      _exit(0);
    }
    f.pids.push_back(pid);
    for (const auto& m : mounts) {
      std::error_code ec;
      if (!fs::create_directory(m / name, ec)) return false;
      f.dirs.push_back(m / name);
      std::ofstream(m / name / "cgroup.procs") << pid << '\n';
      if (quota && fs::exists(m / name / "cpu.cfs_quota_us")) std::ofstream(m / name / "cpu.cfs_quota_us") << "100000\n";
      if (quota && fs::exists(m / name / "cpu.max")) std::ofstream(m / name / "cpu.max") << "100000 100000\n";
    }
    if (cpuset) {
      std::error_code ec;
      if (!fs::create_directory(*cpuset / name, ec)) return false;
      f.dirs.push_back(*cpuset / name);
    }
    f.workloads.push_back({Workload::Kind::kCgroup, "/" + name, "/" + name, 0});
  }
  return true;
}

void BM_SamplingRound(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  CollectorContext ctx;
  ctx.clock_ticks = ::sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  if (::geteuid() != 0 || ctx.layout.version == CgroupVersion::kNone) {
    state.SkipWithError("needs root and a cgroup hierarchy");
    return;
  }
  Fleet fleet;
  if (!makeFleet(ctx.layout, n, fleet)) {
    state.SkipWithError("cannot create cgroups");
    return;
  }
  // FORESIGHT_BENCH_DETAIL_EVERY=N reads the detail files every N rounds (default: the agent's).
  if (const char* env = std::getenv("FORESIGHT_BENCH_DETAIL_EVERY")) ctx.detail_every = std::strtoul(env, nullptr, 10);
  state.counters["detail_every"] = ctx.detail_every;
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  // FORESIGHT_BENCH_COLLECTORS=a,b measures a subset (per-collector cost in the docs).
  std::vector<std::string> names = defaultCollectors(ctx.layout);
  if (const char* env = std::getenv("FORESIGHT_BENCH_COLLECTORS")) {
    names.clear();
    std::string s = env;
    for (std::size_t pos = 0; pos <= s.size();) {
      std::size_t next = s.find(',', pos);
      if (next == std::string::npos) next = s.size();
      if (next > pos) names.push_back(s.substr(pos, next - pos));
      pos = next + 1;
    }
  }
  auto sampler = Sampler::create(ctx, names, reg);
  if (!sampler) {
    state.SkipWithError(sampler.error().message.c_str());
    return;
  }
  // FORESIGHT_BENCH_KEPT_FDS=N caps the fds kept open between rounds (0: open/read/close every
  // file every round, the degraded mode), to measure what keeping them buys.
  if (const char* env = std::getenv("FORESIGHT_BENCH_KEPT_FDS")) setKeptFdBudget(std::strtoul(env, nullptr, 10));
  // The first round opens every kept fd and reads every workload's detail files; what an agent
  // pays each period is the steady state after it.
  (void)sampler->sample(fleet.workloads);
  double cpu = 0;
  std::size_t samples = 0;
  for (auto _ : state) {
    const double c0 = processCpu();
    auto r = sampler->sample(fleet.workloads);
    cpu += processCpu() - c0;
    samples += r.samples.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["cpu_ms_per_round"] = 1e3 * cpu / state.iterations();
  state.counters["cpu_us_per_workload"] = 1e6 * cpu / state.iterations() / n;
  // Share of one core when sampling every second.
  state.counters["core_pct_at_1s"] = 100.0 * cpu / state.iterations();
  state.counters["samples_per_round"] = static_cast<double>(samples) / state.iterations();
  state.counters["kept_fds"] = static_cast<double>(keptFdCount());
}
BENCHMARK(BM_SamplingRound)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// One kernel file kept open N times and pread in rotation: the CPU per read as the number of kept
// fds grows, with the work per read fixed (why the per-workload cost rises with the fleet).
void BM_KeptPread(benchmark::State& state, const char* file) {
  const int n = static_cast<int>(state.range(0));
  std::vector<KeptFile> files;
  for (int i = 0; i < n; ++i) files.emplace_back(file);
  std::string buf;
  for (auto& f : files) f.read(buf);
  if (keptFdCount() < static_cast<std::size_t>(n)) {
    state.SkipWithError("fd budget too small (RLIMIT_NOFILE)");
    return;
  }
  double cpu = 0;
  for (auto _ : state) {
    const double c0 = processCpu();
    for (auto& f : files) benchmark::DoNotOptimize(f.read(buf));
    cpu += processCpu() - c0;
  }
  state.counters["cpu_ns_per_read"] = 1e9 * cpu / state.iterations() / n;
}
BENCHMARK_CAPTURE(BM_KeptPread, proc_stat, "/proc/self/stat")->Arg(10)->Arg(1000)->Arg(10000)->Setup([](const benchmark::State&) { raiseFdLimit(); });
BENCHMARK_CAPTURE(BM_KeptPread, proc_status, "/proc/self/status")->Arg(10)->Arg(1000)->Arg(10000)->Setup([](const benchmark::State&) { raiseFdLimit(); });

}  // namespace

BENCHMARK_MAIN();
