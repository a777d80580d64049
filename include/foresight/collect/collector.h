#pragma once
// Collectors: small readers behind one interface, registered by name. Each appends raw metrics
// for one workload to a Sample; counters ("*_total") are cumulative and turned into rates by
// counterRate (against the sample kept by carryForward), everything else is a gauge.
//
// Thread-safety: a Collector instance is used by one sampling thread at a time; Sample is a value.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "foresight/collect/paths.h"
#include "foresight/collect/workload.h"
#include "foresight/core/registry.h"
#include "foresight/core/resource.h"
#include "foresight/core/result.h"

namespace foresight::collect {

struct Metric {
  const char* name;  // a static string: no allocation per value on the sampling path
  double value;
  // When it was read, on the sample's interval clock (Sample::intervalNs); 0 = its sample's.
  std::int64_t time_ns = 0;
};

inline bool isCounter(std::string_view name) { return name.ends_with("_total"); }

struct Sample {
  std::string workload;
  std::int64_t time_ns = 0;  // CLOCK_REALTIME: the sample's time, as stored and shown
  std::vector<Metric> metrics;
  // Whether this round read the workload's detail files (Sampler, CollectorContext::detail_every);
  // without them the detail metrics are absent, not repeated.
  bool detail = true;
  // CLOCK_MONOTONIC: rates are taken over it, since the wall clock steps (NTP, a VM resumed), and
  // a step would stretch, shrink or reverse one interval. 0 where a sample was made without it.
  std::int64_t mono_ns = 0;

  void add(const char* name, double value) { metrics.push_back({name, value}); }
  std::int64_t intervalNs() const { return mono_ns ? mono_ns : time_ns; }
  // NaN when absent.
  double get(std::string_view name) const;
  bool has(std::string_view name) const;
  const Metric* find(std::string_view name) const;
};

// The previous sample for rates: `last` becomes `cur` plus every metric `cur` lacks, as last read
// (value and time). Keep one per workload and pass it as `prev` below, so that a counter read every
// N rounds gets its rate over the N periods it really spans.
void carryForward(Sample& last, const Sample& cur);

// What every collector needs about the host.
struct CollectorContext {
  HostPaths paths;
  CgroupLayout layout;
  long clock_ticks = 100;  // sysconf(_SC_CLK_TCK) on the live host
  std::filesystem::path probe_dir = "/dev/shm";  // where libforesight-probe.so keeps segments
  // The detail files (docs/profiler.md, "Tiered sampling") are read every detail_every rounds per
  // workload, staggered by a hash of its id; 1 = every file every round.
  unsigned detail_every = kDefaultDetailEvery;
  static constexpr unsigned kDefaultDetailEvery = 10;
};

class Collector {
 public:
  virtual ~Collector() = default;
  virtual const char* name() const = 0;
  // Appends this collector's metrics for w, whose processes are pids (read once per round by the
  // sampler). A workload that vanished is kNotFound; missing optional files are skipped silently.
  virtual Status collect(const Workload& w, const std::vector<pid_t>& pids, Sample& out) = 0;
  // The workload is gone or no longer sampled: drop whatever is kept for it (open fds, caches).
  virtual void forget(const std::string& workload_id) { (void)workload_id; }
  // This process changed the workload's limits: read them in its next round, not only in its
  // next detail round (on cgroup v1 its throttling depends on them being known).
  virtual void refreshLimits(const std::string& workload_id) { (void)workload_id; }
};

using CollectorRegistry = Registry<Collector, const CollectorContext&>;
// cgroup.v1, cgroup.v2, procfs, net, perf, probe.
void registerCollectors(CollectorRegistry& registry);

// Collector names that apply to this host's layout (cgroup.v1 or cgroup.v2, then the rest).
std::vector<std::string> defaultCollectors(const CgroupLayout& layout);

// Turns two raw samples of one workload into the trace resource vector (cpu cores, memory bytes,
// disk_io and network bytes/s). NaN where the data is missing.
std::array<double, kResourceCount> resourceUsage(const Sample& prev, const Sample& cur);

// What the workload asked for: `usage` (resourceUsage of the same samples) plus what a limit held
// back, since a limit caps measured usage and a forecaster fed usage alone can never see demand
// above the limit it is sizing. cpu: cpuDemand of the CFS throttled seconds per second on `cpus`
// CPUs (the host's), or on the cgroup's cpuset_cpus when it has fewer. memory: after a new OOM kill (memory_oom_kills_total grew) under a finite
// memory_limit_bytes, at least memoryDemandAfterOomKill(limit).
std::array<double, kResourceCount> resourceDemand(const Sample& prev, const Sample& cur,
                                                  const std::array<double, kResourceCount>& usage,
                                                  double cpus);

// cpu demand: usage plus the throttled time per second, at most `cpus` (or usage, if higher).
// The kernel sums throttled time over the CPUs whose run queues were throttled (v1 throttled_time
// and v2 throttled_usec both add up each CPU's wait), so a multi-threaded workload's sum can exceed
// what it could have run; but no workload runs on more CPUs than there are.
double cpuDemand(double usage, double throttled_per_second, double cpus);

// The memory a workload OOM-killed at `limit` bytes is taken to have wanted: VPA's bump-up, the
// limit x 1.2 and at least limit + 100 MiB (OOMBumpUpRatio, OOMMinBumpUp in
// pkg/recommender/model/container.go). The kill hides by how much it was over.
double memoryDemandAfterOomKill(double limit);

// The share of the interval in which some of the workload's tasks stalled on memory (PSI `some`:
// reclaim, refaults of pages evicted not long before, swap-in) while it ran at its own memory
// limit: memory_limit_hits_total rose (where not read: memory_usage_bytes at least 90 % of
// memory_limit_bytes, or of memory_high_bytes where lower). Other stalls are the host's or an
// ancestor's, which a higher limit of its own does not cure: 0.
// At the limit, the share is weighed by the share of the pages out (memory_pages_out_total) that
// were refaulted (memory_{anon,file}_refaults_total): a stream of data read once stalls in reclaim
// too, and no limit cures that. NaN where this round did not read PSI (a detail file) or the
// kernel has none.
double memoryStallAtLimit(const Sample& prev, const Sample& cur);

// The share of the interval stalled on memory (PSI `some`) where the cgroup did not run at its own
// limit: the host's memory or an ancestor's limit was short, which its own limit does not cure;
// 0 where it ran at its own limit. NaN as memoryStallAtLimit.
double memoryStallElsewhere(const Sample& prev, const Sample& cur);

// What a round read of a workload's limits, for a loop that sizes them (server::Agent's on_usage).
struct LimitReadings {
  double cpuset_cpus = NAN;   // the CPUs of its cpuset; NaN where not read this round, or none
  double memory_limit = NAN;  // memory_limit_bytes (+Inf: none); NaN where not read
  double memory_stall = NAN;  // memoryStallAtLimit, under that limit
  double memory_stall_since = NAN;  // Unix seconds: the start of its interval (the last PSI read)
  double memory_stall_elsewhere = NAN;  // memoryStallElsewhere
};
LimitReadings limitReadings(const Sample& prev, const Sample& cur);

// Ratios derived from two samples, present only when their inputs moved: `ipc` and `cpi`
// (instructions/cycles), `cache_miss_ratio` (cache misses/references), `cpu_throttled_ratio`
// (throttled/elapsed CFS periods), and `memory_stall_at_limit_ratio` (memoryStallAtLimit) where
// this round read PSI.
std::vector<Metric> derivedMetrics(const Sample& prev, const Sample& cur);

// Per-second rate of a counter between two samples, over the times its two values were read (a
// metric's own time, else its sample's); NaN when either lacks it. A counter that went backwards (a process of a
// process-tree workload exited and took its counts along) gives 0, not a negative rate.
double counterRate(const Sample& prev, const Sample& cur, std::string_view name);

}  // namespace foresight::collect
