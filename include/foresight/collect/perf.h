#pragma once
// perf_event_open collector: cycles, instructions, cache references/misses (hardware) and
// task-clock (software) per process-tree workload, counting the root process and the children it
// starts after the counters open (inherit). Where the kernel refuses an event (no PMU in a VM:
// ENOENT/EOPNOTSUPP), the collector degrades: it logs once, reports perf_<event>_supported 0 and
// keeps the other events. cgroup workloads get no perf counters (that needs per-CPU cgroup events;
// not done).
//
// Thread-safety: one sampling thread at a time, like every Collector.

#include <linux/perf_event.h>
#include <sys/types.h>

#include <functional>

#include "foresight/collect/collector.h"

namespace foresight::collect {

// Returns an fd or -errno; injectable so tests can play a kernel that refuses events.
using PerfOpener = std::function<int(perf_event_attr&, pid_t)>;
PerfOpener systemPerfOpener();

std::unique_ptr<Collector> makePerfCollector(const CollectorContext& ctx, PerfOpener opener);

}  // namespace foresight::collect
