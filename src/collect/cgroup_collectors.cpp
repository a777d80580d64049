// cgroup v1 and v2 collectors. File formats: Documentation/admin-guide/cgroup-v1/*.rst and
// cgroup-v2.rst (cpu.stat, cpu.max, memory.stat, io.stat) and accounting/psi.rst.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>

#include "collectors_impl.h"
#include "foresight/collect/kernel_files.h"

namespace fs = std::filesystem;

namespace foresight::collect {
namespace {

fs::path under(const fs::path& mount, const std::string& cgroup) {
  return cgroup == "/" ? mount : mount / cgroup.substr(1);
}

// v1 reports "no limit" as a page-rounded LONG_MAX; anything this big is no limit.
double limitOrInf(double v) { return v >= 4.0e18 ? std::numeric_limits<double>::infinity() : v; }

// "some avg10=0.00 avg60=0.00 avg300=0.00 total=12345" (total in microseconds).
void readPressure(const fs::path& dir, const char* resource, Sample& out) {
  struct Names { const char* some; const char* full; };
  static const std::map<std::string, Names> kNames = {
      {"cpu", {"psi_cpu_some_seconds_total", "psi_cpu_full_seconds_total"}},
      {"memory", {"psi_memory_some_seconds_total", "psi_memory_full_seconds_total"}},
      {"io", {"psi_io_some_seconds_total", "psi_io_full_seconds_total"}}};
  auto text = readKernelFile(dir / (std::string(resource) + ".pressure"));
  if (!text) return;  // PSI is optional (kernel without CONFIG_PSI, or psi=0)
  const Names& n = kNames.at(resource);
  forEachLine(*text, [&](std::string_view line) {
    std::size_t tp = line.find("total=");
    if (tp == std::string_view::npos) return;
    auto v = parseNumber(field(line.substr(tp + 6), 0));
    if (!v) return;
    if (line.starts_with("some")) out.add(n.some, *v / 1e6);
    if (line.starts_with("full")) out.add(n.full, *v / 1e6);
  });
}

// Directory fds of one cgroup, opened once (O_PATH): reading with openat() skips the path walk
// that dominated the per-file cost in the agent benchmark (docs/results-profiler.md).
class DirFd {
 public:
  DirFd() = default;
  explicit DirFd(const fs::path& p) : fd_(::open(p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {}
  DirFd(DirFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirFd& operator=(DirFd&& o) noexcept { std::swap(fd_, o.fd_); return *this; }
  ~DirFd() { if (fd_ >= 0) ::close(fd_); }
  int get() const { return fd_; }
  // The file's text in buf; nullopt when it (or the directory) is missing or unreadable.
  std::optional<std::string_view> read(const char* name, std::string& buf) const {
    if (fd_ < 0) return std::nullopt;
    return readAt(fd_, name, buf);
  }
 private:
  int fd_ = -1;
};

class CgroupV1Collector final : public Collector {
 public:
  explicit CgroupV1Collector(const CollectorContext& ctx) : ctx_(ctx) {}
  const char* name() const override { return "cgroup.v1"; }
  void forget(const std::string& id) override { dirs_.erase(id); }

  Status collect(const Workload& w, const std::vector<pid_t>&, Sample& out) override {
    if (w.kind != Workload::Kind::kCgroup) return ok();
    auto it = dirs_.find(w.id);
    if (it == dirs_.end()) {
      const fs::path ref = under(ctx_.layout.reference(), w.cgroup);
      Dirs d;
      d.ref = DirFd(ref);
      if (d.ref.get() < 0) return fail(ErrorCode::kNotFound, "{}: cgroup is gone", ref.string());
      const char* names[] = {"cpuacct", "cpu", "memory", "blkio"};
      for (int i = 0; i < 4; ++i)
        if (auto m = ctx_.layout.v1(names[i])) d.ctrl[i] = DirFd(under(*m, w.cgroup));
      if (ctx_.layout.version == CgroupVersion::kHybrid) d.unified = DirFd(under(ctx_.layout.unified, w.cgroup));
      it = dirs_.emplace(w.id, std::move(d)).first;
    }
    Dirs& d = it->second;
    // A removed cgroup keeps its fd but its files are gone (the sampler's cgroup.procs read
    // notices first and the sampler then calls forget()).
    const double hz = static_cast<double>(ctx_.clock_ticks);
    const bool limits_due = d.rounds++ % kLimitEvery == 0;
    if (auto t = d.ctrl[0].read("cpuacct.usage", buf_)) {
      if (auto v = parseNumber(*t)) out.add("cpu_usage_seconds_total", *v / 1e9);
    }
    if (auto t = d.ctrl[0].read("cpuacct.stat", buf_)) {
      forEachKeyValue(*t, [&](std::string_view k, double v) {
        if (k == "user") out.add("cpu_user_seconds_total", v / hz);
        if (k == "system") out.add("cpu_system_seconds_total", v / hz);
      });
    }
    if (auto t = d.ctrl[1].read("cpu.stat", buf_)) {
      forEachKeyValue(*t, [&](std::string_view k, double v) {
        if (k == "nr_periods") out.add("cpu_periods_total", v);
        if (k == "nr_throttled") out.add("cpu_throttled_periods_total", v);
        if (k == "throttled_time") out.add("cpu_throttled_seconds_total", v / 1e9);
      });
    }
    // Limits change rarely: read them every kLimitEvery rounds, report the last value between.
    if (limits_due) {
      std::optional<double> q, p;
      if (auto t = d.ctrl[1].read("cpu.cfs_quota_us", buf_)) q = parseNumber(*t);
      if (auto t = d.ctrl[1].read("cpu.cfs_period_us", buf_)) p = parseNumber(*t);
      d.cpu_limit = (q && p && *p > 0) ? (*q < 0 ? std::numeric_limits<double>::infinity() : *q / *p) : NAN;
      d.mem_limit = NAN;
      if (auto t = d.ctrl[2].read("memory.limit_in_bytes", buf_))
        if (auto v = parseNumber(*t)) d.mem_limit = limitOrInf(*v);
    }
    if (!std::isnan(d.cpu_limit)) out.add("cpu_limit_cores", d.cpu_limit);
    if (!std::isnan(d.mem_limit)) out.add("memory_limit_bytes", d.mem_limit);
    double usage = NAN;
    if (auto t = d.ctrl[2].read("memory.usage_in_bytes", buf_)) {
      if (auto v = parseNumber(*t)) {
        usage = *v;
        out.add("memory_usage_bytes", usage);
      }
    }
    if (auto t = d.ctrl[2].read("memory.stat", buf_)) {
      // total_* include descendants, matching usage_in_bytes with use_hierarchy=1.
      double rss = NAN, cache = NAN, inactive_file = NAN, pgfault = NAN, pgmaj = NAN;
      forEachKeyValue(*t, [&](std::string_view k, double v) {
        if (!k.starts_with("total_")) return;
        k.remove_prefix(6);
        if (k == "rss") rss = v;
        else if (k == "cache") cache = v;
        else if (k == "inactive_file") inactive_file = v;
        else if (k == "pgfault") pgfault = v;
        else if (k == "pgmajfault") pgmaj = v;
      });
      if (!std::isnan(rss)) out.add("memory_anon_bytes", rss);
      if (!std::isnan(cache)) out.add("memory_file_bytes", cache);
      if (!std::isnan(pgfault)) out.add("memory_faults_total", pgfault);
      if (!std::isnan(pgmaj)) out.add("memory_major_faults_total", pgmaj);
      // Working set as the kubelet computes it: usage minus inactive file pages.
      if (!std::isnan(usage) && !std::isnan(inactive_file)) {
        out.add("memory_working_set_bytes", std::max(0.0, usage - inactive_file));
      }
    }
    if (d.ctrl[3].get() >= 0) {
      readBlkio(d.ctrl[3], "blkio.throttle.io_service_bytes", "io_read_bytes_total",
                "io_write_bytes_total", out);
      readBlkio(d.ctrl[3], "blkio.throttle.io_serviced", "io_read_ops_total", "io_write_ops_total", out);
    }
    // Hybrid hosts keep PSI on the v2 side; the same path there is the same workload.
    if (d.unified.get() >= 0) {
      for (const char* r : {"cpu", "memory", "io"}) readPressure(under(ctx_.layout.unified, w.cgroup), r, out);
    }
    return ok();
  }

 private:
  static constexpr std::uint64_t kLimitEvery = 10;
  struct Dirs {
    DirFd ref, unified;
    DirFd ctrl[4];  // cpuacct, cpu, memory, blkio
    std::uint64_t rounds = 0;
    double cpu_limit = NAN, mem_limit = NAN;
  };

  // "MAJ:MIN Read N" lines; the _recursive file includes descendants where the kernel has it.
  void readBlkio(const DirFd& dir, const std::string& base, const char* read_name,
                 const char* write_name, Sample& out) {
    auto t = dir.read((base + "_recursive").c_str(), buf_);
    if (!t) t = dir.read(base.c_str(), buf_);
    if (!t) return;
    double rd = 0, wr = 0;
    forEachLine(*t, [&](std::string_view line) {
      std::string_view op = field(line, 1);
      auto v = parseNumber(field(line, 2));
      if (!v) return;
      if (op == "Read") rd += *v;
      if (op == "Write") wr += *v;
    });
    out.add(read_name, rd);
    out.add(write_name, wr);
  }
  std::unordered_map<std::string, Dirs> dirs_;
  std::string buf_;
  CollectorContext ctx_;
};

class CgroupV2Collector final : public Collector {
 public:
  explicit CgroupV2Collector(const CollectorContext& ctx) : ctx_(ctx) {}
  const char* name() const override { return "cgroup.v2"; }

  Status collect(const Workload& w, const std::vector<pid_t>&, Sample& out) override {
    if (w.kind != Workload::Kind::kCgroup) return ok();
    const fs::path dir = under(ctx_.layout.unified, w.cgroup);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return fail(ErrorCode::kNotFound, "{}: cgroup is gone", dir.string());
    }
    if (auto t = readKernelFile(dir / "cpu.stat")) {
      forEachKeyValue(*t, [&](std::string_view k, double v) {
        if (k == "usage_usec") out.add("cpu_usage_seconds_total", v / 1e6);
        if (k == "user_usec") out.add("cpu_user_seconds_total", v / 1e6);
        if (k == "system_usec") out.add("cpu_system_seconds_total", v / 1e6);
        if (k == "nr_periods") out.add("cpu_periods_total", v);
        if (k == "nr_throttled") out.add("cpu_throttled_periods_total", v);
        if (k == "throttled_usec") out.add("cpu_throttled_seconds_total", v / 1e6);
      });
    }
    if (auto t = readKernelFile(dir / "cpu.max")) {  // "max 100000" or "50000 100000"
      auto q = parseNumber(field(*t, 0)), p = parseNumber(field(*t, 1));
      if (q && p && *p > 0) out.add("cpu_limit_cores", *q / *p);
    }
    double usage = NAN;
    if (auto t = readKernelFile(dir / "memory.current")) {
      if (auto v = parseNumber(*t)) {
        usage = *v;
        out.add("memory_usage_bytes", usage);
      }
    }
    if (auto t = readKernelFile(dir / "memory.max")) {
      if (auto v = parseNumber(*t)) out.add("memory_limit_bytes", *v);
    }
    if (auto t = readKernelFile(dir / "memory.stat")) {
      double inactive_file = NAN;
      forEachKeyValue(*t, [&](std::string_view k, double v) {
        if (k == "anon") out.add("memory_anon_bytes", v);
        if (k == "file") out.add("memory_file_bytes", v);
        if (k == "inactive_file") inactive_file = v;
        if (k == "pgfault") out.add("memory_faults_total", v);
        if (k == "pgmajfault") out.add("memory_major_faults_total", v);
      });
      if (!std::isnan(usage) && !std::isnan(inactive_file)) {
        out.add("memory_working_set_bytes", std::max(0.0, usage - inactive_file));
      }
    }
    // "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N"; empty before the first I/O.
    if (auto t = readKernelFile(dir / "io.stat")) {
      double sums[4] = {0, 0, 0, 0};
      static constexpr std::string_view kKeys[4] = {"rbytes=", "wbytes=", "rios=", "wios="};
      forEachLine(*t, [&](std::string_view line) {
        for (std::size_t f = 1;; ++f) {
          std::string_view kv = field(line, f);
          if (kv.empty()) break;
          for (int k = 0; k < 4; ++k) {
            if (kv.starts_with(kKeys[k])) {
              if (auto v = parseNumber(kv.substr(kKeys[k].size()))) sums[k] += *v;
            }
          }
        }
      });
      out.add("io_read_bytes_total", sums[0]);
      out.add("io_write_bytes_total", sums[1]);
      out.add("io_read_ops_total", sums[2]);
      out.add("io_write_ops_total", sums[3]);
    }
    for (const char* r : {"cpu", "memory", "io"}) readPressure(dir, r, out);
    return ok();
  }

 private:
  CollectorContext ctx_;
};

}  // namespace

std::unique_ptr<Collector> makeCgroupV1Collector(const CollectorContext& ctx) {
  return std::make_unique<CgroupV1Collector>(ctx);
}
std::unique_ptr<Collector> makeCgroupV2Collector(const CollectorContext& ctx) {
  return std::make_unique<CgroupV2Collector>(ctx);
}

}  // namespace foresight::collect
