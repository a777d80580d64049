#include "foresight/collect/perf.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "foresight/collect/kernel_files.h"
#include "foresight/core/log.h"

namespace foresight::collect {

PerfOpener systemPerfOpener() {
  return [](perf_event_attr& attr, pid_t pid, int cpu, unsigned long flags) -> int {
    long fd = ::syscall(SYS_perf_event_open, &attr, pid, cpu, -1, flags | PERF_FLAG_FD_CLOEXEC);
    return fd < 0 ? -errno : static_cast<int>(fd);
  };
}

std::optional<double> scaledCount(std::uint64_t value, std::uint64_t enabled, std::uint64_t running) {
  if (enabled == 0) return static_cast<double>(value);
  if (running == 0) return std::nullopt;
  if (running >= enabled) return static_cast<double>(value);
  return static_cast<double>(value) * (static_cast<double>(enabled) / static_cast<double>(running));
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
  PerfCollector(const CollectorContext& ctx, PerfOpener opener)
      : ctx_(ctx), opener_(std::move(opener)),
        online_(ctx_.paths.sys() / "devices" / "system" / "cpu" / "online") {
    (void)online_.read(online_buf_);  // its kept fd is the collector's, not the first workload's
  }
  ~PerfCollector() override {
    for (auto& [id, o] : open_) close(o);
  }
  const char* name() const override { return "perf"; }
  void forget(const std::string& id) override {
    auto it = open_.find(id);
    if (it == open_.end()) return;
    close(it->second);
    open_.erase(it);
  }

  Status collect(const Workload& w, const std::vector<pid_t>&, Sample& out) override {
    // Detail tier: a read() per event per CPU per workload, and nothing consumes the counters
    // each period; they are cumulative, so their rates stay exact over each read's own span.
    if (!out.detail) return ok();
    const bool cgroup = w.kind == Workload::Kind::kCgroup;
    auto it = open_.find(w.id);
    if (it == open_.end()) {
      it = open_.emplace(w.id, cgroup ? openCgroup(w, onlineCpus()) : openTree(w.root_pid)).first;
    } else if (cgroup && it->second.cgroup) {
      // Only where cgroup events are counted: a host without them reads the CPU list once per
      // workload, not every detail round.
      if (auto cpus = onlineCpus(); cpus && *cpus != it->second.cpus) followCpus(w, it->second, cpus);
    }
    Open& o = it->second;
    if (cgroup) {
      out.add("perf_cgroup_supported", o.cgroup ? 1 : 0);
      if (!o.cgroup) return ok();
    }
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      out.add(kEvents[i].supported_metric, refused_[i] ? 0 : 1);
      if (o.fds[i].empty()) continue;
      auto v = sum(o.fds[i]);
      if (!v) continue;  // a partial sum would read as a counter going backwards
      o.last[i] = v;
      double total = o.base[i] + *v;
      if (kEvents[i].type == PERF_TYPE_SOFTWARE) total /= 1e9;  // task-clock counts nanoseconds
      out.add(kEvents[i].metric, total);
    }
    return ok();
  }

 private:
  struct Open {
    std::array<std::vector<int>, kEvents.size()> fds;  // one per event (tree) or per online CPU (cgroup)
    bool cgroup = true;  // false: a cgroup workload perf cannot count (no unified-side directory)
    std::vector<int> cpus;  // cgroup events: the CPUs they were opened on
    std::array<double, kEvents.size()> base{};  // counts of events closed when the CPUs changed
    std::array<std::optional<double>, kEvents.size()> last{};  // the last sum read of the open ones
  };

  // The scaled counts of one event summed over its fds; nullopt when any is unknown.
  static std::optional<double> sum(const std::vector<int>& fds) {
    double v = 0;
    for (int fd : fds) {
      std::uint64_t r[3] = {};  // value, time enabled, time running (attrOf's read_format)
      std::optional<double> scaled;
      if (::read(fd, r, sizeof r) == sizeof r) scaled = scaledCount(r[0], r[1], r[2]);
      if (!scaled) return std::nullopt;
      v += *scaled;
    }
    return v;
  }

  // The kernel's list of online CPUs, read once per call through a kept fd.
  std::optional<std::vector<int>> onlineCpus() {
    auto text = online_.read(online_buf_);
    auto cpus = text ? parseCpuList(*text) : std::nullopt;
    if (!cpus && !logged_no_cpus_) {
      logged_no_cpus_ = true;
      spdlog::warn("perf: {}: {}; cgroup workloads get no perf counters (logged once)",
                   online_.path().string(), text ? "not a CPU list" : "cannot be read");
    }
    return cpus;
  }

  // A CPU came online (a vCPU hot-added, as the libvirt backend does) or went offline: cgroup
  // events count only on the CPUs they were opened on, and one on a CPU that went offline stops
  // for good. Reopened on the CPUs online now, continuing from the counts so far so that the
  // counters do not go backwards.
  void followCpus(const Workload& w, Open& o, const std::optional<std::vector<int>>& cpus) {
    std::array<double, kEvents.size()> base = o.base;
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      auto v = sum(o.fds[i]);
      if (!v) v = o.last[i];  // unreadable now: what was read last
      if (v) base[i] += *v;
    }
    close(o);
    o = openCgroup(w, cpus);
    o.base = base;
  }

  static void close(Open& o) {
    for (auto& v : o.fds)
      for (int fd : v) ::close(fd);
  }

  static perf_event_attr attrOf(const EventSpec& e) {
    perf_event_attr attr{};
    attr.size = sizeof attr;
    attr.type = e.type;
    attr.config = e.config;
    attr.exclude_kernel = 1;  // allowed at perf_event_paranoid 2 as well
    attr.exclude_hv = 1;
    attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    return attr;
  }

  // fd >= 0, or refusal bookkeeping: an error the kernel or hardware gives for everyone stops
  // further asks for that event, said once (sayRefused). Other errors (ESRCH: the process just
  // exited) are per-workload and not logged.
  bool accept(std::size_t i, int fd) {
    if (fd >= 0) return true;
    if (fd == -ENOENT || fd == -EOPNOTSUPP || fd == -EINVAL || fd == -EACCES || fd == -EPERM ||
        fd == -ENODEV) {
      refused_[i] = true;
      newly_refused_[std::strerror(-fd)].push_back(fmt::format("'{}'", kEvents[i].label));
    }
    return false;
  }

  // One line per error for the events refused while opening a workload's: a VM without a PMU
  // refuses all four hardware events at once.
  void sayRefused() {
    for (const auto& [why, events] : newly_refused_)
      spdlog::warn("perf: the kernel refuses event{} {} ({}); continuing without {}", events.size() == 1 ? "" : "s",
                   fmt::join(events, ", "), why, events.size() == 1 ? "it" : "them");
    newly_refused_.clear();
  }

  Open openTree(pid_t pid) {
    Open o;
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      if (refused_[i]) continue;
      perf_event_attr attr = attrOf(kEvents[i]);
      attr.inherit = 1;
      int fd = opener_(attr, pid, -1, 0);
      if (accept(i, fd)) o.fds[i].push_back(fd);
    }
    sayRefused();
    return o;
  }

  // Cgroup events exist for the v2 hierarchy here (perf_event is implicit there); on a hybrid host
  // the cgroup must exist on the unified side. A cgroup event counts only on the CPU it is opened
  // for, hence one per online CPU: by the kernel's list, since online CPUs need not be 0..N-1,
  // and one opened on an offline CPU fails (ENODEV), which refused the event for every workload.
  Open openCgroup(const Workload& w, const std::optional<std::vector<int>>& cpus) {
    Open o;
    if (!cpus) {
      o.cgroup = false;
      return o;
    }
    int dir = -1;
    if (!ctx_.layout.unified.empty())
      dir = ::open(cgroupPath(ctx_.layout.unified, w.cgroup).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
      o.cgroup = false;
      if (!logged_no_unified_) {
        logged_no_unified_ = true;
        spdlog::warn("perf: cgroup {} has no directory in a unified (v2) hierarchy; cgroup workloads "
                     "without one get no perf counters (logged once)", w.cgroup);
      }
      return o;
    }
    o.cpus = *cpus;
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      for (std::size_t c = 0; c < cpus->size() && !refused_[i]; ++c) {
        perf_event_attr attr = attrOf(kEvents[i]);
        int fd = opener_(attr, dir, (*cpus)[c], PERF_FLAG_PID_CGROUP);
        if (fd == -EACCES || fd == -EPERM) {
          // CPU-wide (cgroup) events need CAP_PERFMON or perf_event_paranoid <= 0, which process
          // trees do not: say so, without refusing the event for them.
          close(o);
          o = Open{};
          o.cgroup = false;
          if (!logged_denied_) {
            logged_denied_ = true;
            spdlog::warn("perf: cgroup events denied ({}); cgroup workloads get no perf counters "
                         "(logged once)", std::strerror(-fd));
          }
          ::close(dir);
          sayRefused();
          return o;
        }
        if (accept(i, fd)) {
          o.fds[i].push_back(fd);
        } else {
          for (int f : o.fds[i]) ::close(f);  // all CPUs or none: a partial sum undercounts
          o.fds[i].clear();
          break;
        }
      }
    }
    ::close(dir);  // the events hold their own reference on the cgroup
    sayRefused();
    return o;
  }

  CollectorContext ctx_;
  PerfOpener opener_;
  KeptFile online_;
  std::string online_buf_;
  std::array<bool, kEvents.size()> refused_{};
  std::map<std::string, std::vector<std::string>> newly_refused_;  // error -> events, until said
  bool logged_no_unified_ = false, logged_denied_ = false, logged_no_cpus_ = false;
  std::map<std::string, Open> open_;
};

}  // namespace

std::unique_ptr<Collector> makePerfCollector(const CollectorContext& ctx, PerfOpener opener) {
  return std::make_unique<PerfCollector>(ctx, std::move(opener));
}

}  // namespace foresight::collect
