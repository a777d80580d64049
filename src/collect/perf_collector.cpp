#include "foresight/collect/perf.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>

#include "foresight/core/log.h"

namespace foresight::collect {

PerfOpener systemPerfOpener() {
  return [](perf_event_attr& attr, pid_t pid) -> int {
    long fd = ::syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    return fd < 0 ? -errno : static_cast<int>(fd);
  };
}

namespace {

struct EventSpec {
  const char* label;
  std::uint32_t type;
  std::uint64_t config;
  const char* metric;
  const char* supported_metric;
};
constexpr std::array<EventSpec, 5> kEvents = {{
    {"cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, "perf_cycles_total",
     "perf_cycles_supported"},
    {"instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, "perf_instructions_total",
     "perf_instructions_supported"},
    {"cache-references", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES,
     "perf_cache_references_total", "perf_cache_references_supported"},
    {"cache-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES, "perf_cache_misses_total",
     "perf_cache_misses_supported"},
    {"task-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, "perf_task_clock_seconds_total",
     "perf_task_clock_supported"},
}};

class PerfCollector final : public Collector {
 public:
  PerfCollector(const CollectorContext&, PerfOpener opener) : opener_(std::move(opener)) {}
  ~PerfCollector() override {
    for (auto& [id, fds] : open_)
      for (int fd : fds) if (fd >= 0) ::close(fd);
  }
  const char* name() const override { return "perf"; }

  Status collect(const Workload& w, const std::vector<pid_t>&, Sample& out) override {
    if (w.kind != Workload::Kind::kProcessTree) return ok();
    auto it = open_.find(w.id);
    if (it == open_.end()) it = open_.emplace(w.id, openAll(w.root_pid)).first;
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      out.add(kEvents[i].supported_metric, refused_[i] ? 0 : 1);
      int fd = it->second[i];
      if (fd < 0) continue;
      std::uint64_t value = 0;
      if (::read(fd, &value, sizeof value) != sizeof value) continue;
      double v = static_cast<double>(value);
      if (kEvents[i].type == PERF_TYPE_SOFTWARE) v /= 1e9;  // task-clock counts nanoseconds
      out.add(kEvents[i].metric, v);
    }
    return ok();
  }

 private:
  std::array<int, kEvents.size()> openAll(pid_t pid) {
    std::array<int, kEvents.size()> fds;
    fds.fill(-1);
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      if (refused_[i]) continue;
      perf_event_attr attr{};
      attr.size = sizeof attr;
      attr.type = kEvents[i].type;
      attr.config = kEvents[i].config;
      attr.inherit = 1;
      attr.exclude_kernel = 1;  // allowed at perf_event_paranoid 2 as well
      attr.exclude_hv = 1;
      int fd = opener_(attr, pid);
      if (fd >= 0) {
        fds[i] = fd;
      } else if (fd == -ENOENT || fd == -EOPNOTSUPP || fd == -EINVAL || fd == -EACCES ||
                 fd == -EPERM || fd == -ENODEV) {
        // The kernel or hardware will not count this event for anyone: stop asking, say so once.
        refused_[i] = true;
        spdlog::warn("perf: the kernel refuses event '{}' ({}); continuing without it",
                     kEvents[i].label, std::strerror(-fd));
      }
      // Other errors (ESRCH: the process just exited) are per-workload and not logged.
    }
    return fds;
  }

  PerfOpener opener_;
  std::array<bool, kEvents.size()> refused_{};
  std::map<std::string, std::array<int, kEvents.size()>> open_;
};

}  // namespace

std::unique_ptr<Collector> makePerfCollector(const CollectorContext& ctx, PerfOpener opener) {
  return std::make_unique<PerfCollector>(ctx, std::move(opener));
}

}  // namespace foresight::collect
