#include "foresight/collect/collector.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "collectors_impl.h"
#include "foresight/collect/perf.h"

namespace foresight::collect {

const Metric* Sample::find(std::string_view name) const {
  for (const Metric& m : metrics)
    if (name == m.name) return &m;
  return nullptr;
}

double Sample::get(std::string_view name) const {
  const Metric* m = find(name);
  return m ? m->value : std::numeric_limits<double>::quiet_NaN();
}

bool Sample::has(std::string_view name) const { return find(name) != nullptr; }

void carryForward(Sample& last, const Sample& cur) {
  std::vector<Metric> merged;
  merged.reserve(std::max(cur.metrics.size(), last.metrics.size()));
  for (Metric m : cur.metrics) {
    if (m.time_ns == 0) m.time_ns = cur.intervalNs();
    merged.push_back(m);
  }
  // Both lists come from the same collectors in the same order: search from where the last match
  // was, so the merge is linear per round rather than quadratic.
  std::size_t hint = 0;
  for (const Metric& m : last.metrics) {
    bool found = false;
    for (std::size_t k = 0; k < cur.metrics.size() && !found; ++k) {
      const std::size_t i = (hint + k) % cur.metrics.size();
      if (std::string_view(cur.metrics[i].name) == m.name) {
        found = true;
        hint = i + 1;
      }
    }
    if (found) continue;
    Metric kept = m;
    if (kept.time_ns == 0) kept.time_ns = last.intervalNs();
    merged.push_back(kept);
  }
  last.workload = cur.workload;
  last.time_ns = cur.time_ns;
  last.mono_ns = cur.mono_ns;
  last.detail = cur.detail;
  last.metrics = std::move(merged);
}

void registerCollectors(CollectorRegistry& registry) {
  registry.add("cgroup.v1", "cgroup v1 cpu/cpuacct/memory/blkio (+PSI on hybrid hosts)",
               [](const CollectorContext& c) { return makeCgroupV1Collector(c); });
  registry.add("cgroup.v2", "cgroup v2 cpu.stat, memory, io.stat, PSI",
               [](const CollectorContext& c) { return makeCgroupV2Collector(c); });
  registry.add("procfs", "per-process CPU, run delay, RSS, faults, I/O, context switches, fds",
               [](const CollectorContext& c) { return makeProcfsCollector(c); });
  registry.add("net", "bytes and packets per network namespace (host fallback)",
               [](const CollectorContext& c) { return makeNetCollector(c); });
  registry.add("probe", "libforesight-probe.so segments: I/O and IPC calls, bytes, latency",
               [](const CollectorContext& c) { return makeProbeCollector(c); });
  registry.add("perf", "perf_event_open cycles, instructions, cache misses, task-clock",
               [](const CollectorContext& c) { return makePerfCollector(c, systemPerfOpener()); });
}

std::vector<std::string> defaultCollectors(const CgroupLayout& layout) {
  std::vector<std::string> out;
  if (layout.version == CgroupVersion::kV2) out.push_back("cgroup.v2");
  if (layout.version == CgroupVersion::kV1 || layout.version == CgroupVersion::kHybrid)
    out.push_back("cgroup.v1");
  for (const char* c : {"procfs", "net", "perf", "probe"}) out.push_back(c);
  return out;
}

double counterRate(const Sample& prev, const Sample& cur, std::string_view name) {
  const Metric *pa = prev.find(name), *pb = cur.find(name);
  if (!pa || !pb) return std::numeric_limits<double>::quiet_NaN();
  const std::int64_t ta = pa->time_ns ? pa->time_ns : prev.intervalNs();
  const std::int64_t tb = pb->time_ns ? pb->time_ns : cur.intervalNs();
  const double a = pa->value, b = pb->value, dt = static_cast<double>(tb - ta) / 1e9;
  if (std::isnan(a) || std::isnan(b) || dt <= 0) return std::numeric_limits<double>::quiet_NaN();
  return b >= a ? (b - a) / dt : 0.0;
}

std::array<double, kResourceCount> resourceUsage(const Sample& prev, const Sample& cur) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::array<double, kResourceCount> u{nan, nan, nan, nan};
  // cpu: the cgroup's own accounting when there is one (it keeps exited children's time).
  double cpu = counterRate(prev, cur, "cpu_usage_seconds_total");
  if (std::isnan(cpu)) {
    cpu = counterRate(prev, cur, "proc_cpu_user_seconds_total") +
          counterRate(prev, cur, "proc_cpu_system_seconds_total");
  }
  u[index(Resource::kCpu)] = cpu;
  double mem = cur.get("memory_working_set_bytes");
  if (std::isnan(mem)) mem = cur.get("proc_rss_bytes");
  u[index(Resource::kMemory)] = mem;
  // disk: v1 blkio misses buffered writeback on many kernels (zero on this project's VMs) and
  // procfs misses processes that exited, so take whichever saw more.
  const double cg = counterRate(prev, cur, "io_read_bytes_total") +
                    counterRate(prev, cur, "io_write_bytes_total");
  const double pr = counterRate(prev, cur, "proc_read_bytes_total") +
                    counterRate(prev, cur, "proc_write_bytes_total");
  if (!std::isnan(cg) || !std::isnan(pr)) {
    u[index(Resource::kDiskIo)] = std::max(std::isnan(cg) ? 0.0 : cg, std::isnan(pr) ? 0.0 : pr);
  }
  // Counters from another source than last time (the workload's namespace changed, or the host's
  // stood in while it had no process) are a reset: no rate for the interval.
  bool same_source = true;
  for (std::string_view n : {"net_host_fallback", "net_namespace"}) {
    const double a = prev.get(n), b = cur.get(n);
    if (std::isnan(a) != std::isnan(b) || (!std::isnan(a) && a != b)) same_source = false;
  }
  if (same_source) {
    u[index(Resource::kNetwork)] = counterRate(prev, cur, "net_rx_bytes_total") +
                                   counterRate(prev, cur, "net_tx_bytes_total");
  }
  return u;
}

std::array<double, kResourceCount> resourceDemand(const Sample& prev, const Sample& cur,
                                                  const std::array<double, kResourceCount>& usage,
                                                  double cpus) {
  auto d = usage;
  // cpu.stat.local's throttling (by the cgroup's own or any ancestor's quota) where the kernel has
  // it, else cpu.stat's (its own quota's only).
  double throttled = counterRate(prev, cur, "cpu_throttled_local_seconds_total");
  if (std::isnan(throttled)) throttled = counterRate(prev, cur, "cpu_throttled_seconds_total");
  const double cpuset = cur.get("cpuset_cpus");  // NaN without a cpuset (then the host's CPUs)
  if (cpuset > 0) cpus = std::min(cpus, cpuset);
  if (!std::isnan(throttled) && !std::isnan(d[index(Resource::kCpu)]))
    d[index(Resource::kCpu)] = cpuDemand(d[index(Resource::kCpu)], throttled, cpus);
  const double kills_before = prev.get("memory_oom_kills_total"), kills = cur.get("memory_oom_kills_total");
  const double limit = cur.get("memory_limit_bytes");
  // Swap of a cgroup under a memory limit of its own is memory the limit may have held out, as
  // throttled time is for cpu: without it, a workload pushed into swap shows a working set that
  // fits its limit, and the limit stays while the workload thrashes. It counts while the workload
  // reads swap back (anonymous refaults); swap nothing read back in the interval is cold pages
  // the limit rightly keeps out (what Senpai-style tuners push out on purpose). Without the
  // counter (kernels before 5.9, a first interval) all of it counts: the safe side.
  const double refaults = counterRate(prev, cur, "memory_anon_refaults_total");
  if (const double swap = cur.get("memory_swap_bytes"); swap > 0 && std::isfinite(limit) && refaults != 0)
    d[index(Resource::kMemory)] += swap;  // NaN stays NaN: no working set this round
  if (kills > kills_before && std::isfinite(limit)) {  // false when either count is missing (NaN)
    double& mem = d[index(Resource::kMemory)];
    mem = std::isnan(mem) ? memoryDemandAfterOomKill(limit) : std::max(mem, memoryDemandAfterOomKill(limit));
  }
  return d;
}

double cpuDemand(double usage, double throttled_per_second, double cpus) {
  return std::max(usage, std::min(usage + throttled_per_second, cpus));
}

double memoryDemandAfterOomKill(double limit) {
  return std::max(limit * 1.2, limit + 100.0 * (1 << 20));
}

namespace {

// The interval's memory stall split by where it came from: at the cgroup's own limit, weighed by
// what it read back (memoryStallAtLimit), or elsewhere (memoryStallElsewhere). One PSI rate, one
// limit test, for both.
struct MemoryStalls {
  double at_limit, elsewhere;
};
MemoryStalls memoryStalls(const Sample& prev, const Sample& cur) {
  const double stalled = counterRate(prev, cur, "psi_memory_some_seconds_total");
  if (std::isnan(stalled)) return {stalled, stalled};
  // fmin: the one read where the other is not (NaN); a usage not read (NaN) is not at the limit.
  const double limit = std::fmin(cur.get("memory_limit_bytes"), cur.get("memory_high_bytes"));
  // At its own limit: the kernel counted charges that hit it in the interval (v1 memory.failcnt,
  // v2 memory.events.local max + high). A cgroup held by an ancestor's limit (a slice's) stalls
  // just under its own as often, and its own limit does not cure that: 2.6 % of the time at 92 %
  // of it under a parent's lower limit, with no hits of its own (docs/closed-loop.md). Where the
  // count is not read, usage at 90 % of the limit stands for it.
  const double hits = counterRate(prev, cur, "memory_limit_hits_total");
  const bool at_limit =
      std::isfinite(limit) && (std::isnan(hits) ? cur.get("memory_usage_bytes") >= 0.9 * limit : hits > 0);
  if (!at_limit) return {0.0, std::min(stalled, 1.0)};
  // Reclaim at the limit stalls a workload that streams data it never reads again as it stalls
  // one that thrashes, but only the second is cured by more memory. Refaults (pages read again
  // soon after eviction: mm/workingset.c) are the kernel's sign of thrashing, so the stall counts
  // by the share of the pages out that came back. A stream that reads a file once stalled 2-3 %
  // of the time under 32 MiB and under 256 MiB alike, with no refaults (docs/closed-loop.md).
  // Reclaim that freed nothing (anonymous memory without swap over memory.high) counts whole: the
  // limit holds that workload back. So does all of it without the counters (kernels before 5.9, a
  // first interval), as before.
  const double back = counterRate(prev, cur, "memory_anon_refaults_total") +
                      counterRate(prev, cur, "memory_file_refaults_total");
  const double out = counterRate(prev, cur, "memory_pages_out_total");
  const double reused = std::isnan(back) || !(out > 0) ? 1.0 : std::min(back / out, 1.0);
  return {std::min(stalled, 1.0) * reused, 0.0};
}

}  // namespace

double memoryStallAtLimit(const Sample& prev, const Sample& cur) { return memoryStalls(prev, cur).at_limit; }

double memoryStallElsewhere(const Sample& prev, const Sample& cur) { return memoryStalls(prev, cur).elsewhere; }

LimitReadings limitReadings(const Sample& prev, const Sample& cur) {
  // A metric's time is on the interval clock (monotonic): the interval's start on the wall clock is
  // as long before this sample's wall time.
  const Metric* from = prev.find("psi_memory_some_seconds_total");
  const double since =
      from ? static_cast<double>(cur.time_ns - (cur.intervalNs() - (from->time_ns ? from->time_ns : prev.intervalNs()))) / 1e9
           : NAN;
  const MemoryStalls stalls = memoryStalls(prev, cur);
  return {cur.get("cpuset_cpus"), cur.get("memory_limit_bytes"), stalls.at_limit, since, stalls.elsewhere};
}

}  // namespace foresight::collect

namespace foresight::collect {

std::vector<Metric> derivedMetrics(const Sample& prev, const Sample& cur) {
  std::vector<Metric> out;
  auto delta = [&](std::string_view n) {
    const double a = prev.get(n), b = cur.get(n);
    return (std::isnan(a) || std::isnan(b) || b < a) ? std::numeric_limits<double>::quiet_NaN() : b - a;
  };
  const double cycles = delta("perf_cycles_total"), instr = delta("perf_instructions_total");
  if (cycles > 0 && instr > 0) {
    out.push_back({"ipc", instr / cycles});
    out.push_back({"cpi", cycles / instr});
  }
  const double refs = delta("perf_cache_references_total"), miss = delta("perf_cache_misses_total");
  if (refs > 0 && !std::isnan(miss)) out.push_back({"cache_miss_ratio", miss / refs});
  const double periods = delta("cpu_periods_total"), thr = delta("cpu_throttled_periods_total");
  if (periods > 0 && !std::isnan(thr)) out.push_back({"cpu_throttled_ratio", thr / periods});
  // What the planner's pressure rule acts on, for the alert that covers where it cannot act.
  if (const double stall = memoryStallAtLimit(prev, cur); !std::isnan(stall))
    out.push_back({"memory_stall_at_limit_ratio", stall});
  return out;
}

}  // namespace foresight::collect
