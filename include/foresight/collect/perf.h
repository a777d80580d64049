#pragma once
// perf_event_open collector: cycles, instructions, cache references/misses (hardware) and
// task-clock (software). Process-tree workloads: counting the root process and the children it
// starts after the counters open (inherit). Cgroup workloads: cgroup events (PERF_FLAG_PID_CGROUP
// on the cgroup's directory in the unified (v2) hierarchy, one per online CPU, summed); a cgroup
// without a unified-side directory (a pure v1 host, or a v1-only cgroup of a hybrid host) gets
// perf_cgroup_supported 0, logged once. Where the kernel refuses an event (no PMU in a VM:
// ENOENT/EOPNOTSUPP), the collector degrades: it logs once, reports perf_<event>_supported 0 and
// keeps the other events. Counts are scaled for multiplexing (scaledCount).
//
// Thread-safety: one sampling thread at a time, like every Collector.

#include <linux/perf_event.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "foresight/collect/collector.h"

namespace foresight::collect {

// perf_event_open(attr, pid, cpu, -1, flags): an fd or -errno; injectable so tests can play a
// kernel that refuses events. For cgroup events pid is the cgroup directory's fd.
using PerfOpener = std::function<int(perf_event_attr&, pid_t pid, int cpu, unsigned long flags)>;
PerfOpener systemPerfOpener();

// What a counter read with PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING
// stands for: with more events than counters the kernel multiplexes them, and an event counts
// only for `running` of the `enabled` nanoseconds, so its count is scaled by enabled / running
// (what perf stat does). 0 for an event never enabled (nothing to count yet); nullopt for one
// enabled but never running, whose count is unknown rather than 0.
std::optional<double> scaledCount(std::uint64_t value, std::uint64_t enabled, std::uint64_t running);

std::unique_ptr<Collector> makePerfCollector(const CollectorContext& ctx, PerfOpener opener);

}  // namespace foresight::collect
