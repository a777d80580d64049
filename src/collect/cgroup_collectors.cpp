// cgroup v1 and v2 collectors. File formats: Documentation/admin-guide/cgroup-v1/*.rst and
// cgroup-v2.rst (cpu.stat, cpu.max, memory.stat, io.stat) and accounting/psi.rst.

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "collectors_impl.h"
#include "foresight/collect/kernel_files.h"

namespace fs = std::filesystem;

namespace foresight::collect {
namespace {

// v1 reports "no limit" as a page-rounded LONG_MAX; anything this big is no limit.
double limitOrInf(double v) { return v >= 4.0e18 ? std::numeric_limits<double>::infinity() : v; }

// Working set as the kubelet computes it: usage minus inactive file pages. Only with a fresh
// memory.stat (a detail file): usage minus an older inactive_file can be far off, even 0, when the
// page cache churns (seen with a writing workload), so between reads it is missing.
void addWorkingSet(double usage, double inactive_file, Sample& out) {
  if (!std::isnan(usage) && !std::isnan(inactive_file))
    out.add("memory_working_set_bytes", std::max(0.0, usage - inactive_file));
}

// The CPUs the cgroup may run on: the most CPU it can use, and so demand, whatever its quota.
void addCpusetCpus(std::optional<int> count, Sample& out) {
  if (count && *count > 0) out.add("cpuset_cpus", *count);
}

// OOM kills in the cgroup, a counter: the "oom_kill" line of memory.events (v2) or
// memory.oom_control (v1). collect::resourceDemand turns a new kill into memory demand.
void addOomKills(std::string_view text, Sample& out) {
  static constexpr std::string_view kKey[1] = {"oom_kill"};
  double v[1];
  findKeys(text, kKey, v);
  if (!std::isnan(v[0])) out.add("memory_oom_kills_total", v[0]);
}

// PSI files of one cgroup, kept open: cpu, memory, io. Detail files: nothing consumes PSI each
// period, the kernel refreshes avg10 every 2 s (PSI_FREQ), and the cumulative total= gives an
// exact rate over any span.
struct Pressure {
  KeptFile files[3];
  explicit Pressure(const fs::path& dir = {})
      : files{KeptFile(dir / "cpu.pressure"), KeptFile(dir / "memory.pressure"),
              KeptFile(dir / "io.pressure")} {}
};

// "some avg10=0.00 avg60=0.00 avg300=0.00 total=12345" (total in microseconds).
void readPressure(Pressure& p, std::string& buf, Sample& out) {
  struct Names { const char* some; const char* full; };
  static constexpr Names kNames[3] = {
      {"psi_cpu_some_seconds_total", "psi_cpu_full_seconds_total"},
      {"psi_memory_some_seconds_total", "psi_memory_full_seconds_total"},
      {"psi_io_some_seconds_total", "psi_io_full_seconds_total"}};
  for (int r = 0; r < 3; ++r) {
    auto text = p.files[r].read(buf);
    if (!text) continue;  // PSI is optional (kernel without CONFIG_PSI, or psi=0)
    const Names& n = kNames[r];
    forEachLine(*text, [&](std::string_view line) {
      std::size_t tp = line.find("total=");
      if (tp == std::string_view::npos) return;
      auto v = parseNumber(field(line.substr(tp + 6), 0));
      if (!v) return;
      if (line.starts_with("some")) out.add(n.some, *v / 1e6);
      if (line.starts_with("full")) out.add(n.full, *v / 1e6);
    });
  }
}

// Whether a cgroup between `dir` (excluded) and its hierarchy's mount (excluded: the root has no
// quota) has a CFS quota, read from `file` (v1 cpu.cfs_quota_us: -1 is none; v2 cpu.max: "max"
// is none). Such a quota throttles dir's tasks without a trace in dir's own cpu.stat. Answers are
// kept per ancestor for kReuse, so the workloads of a round that share ancestors (kubepods,
// kubepods/burstable, a systemd slice) read each one's file once.
class AncestorQuotas {
 public:
  AncestorQuotas(fs::path mount, const char* file) : mount_(std::move(mount)), file_(file) {}
  bool any(const fs::path& dir) {
    const auto now = std::chrono::steady_clock::now();
    if (cache_.size() > 4096) cache_.clear();  // bound it; cgroups come and go
    for (fs::path p = dir.parent_path(); p.native().size() > mount_.native().size(); p = p.parent_path()) {
      auto [it, added] = cache_.try_emplace(p.native());
      if (added || now - it->second.when >= kReuse) it->second = {now, readQuota(p)};
      if (it->second.quota) return true;
    }
    return false;
  }

 private:
  bool readQuota(const fs::path& cgroup) const {
    auto t = readKernelFile(cgroup / file_);
    auto q = t ? parseNumber(field(*t, 0)) : std::nullopt;
    return q && std::isfinite(*q) && *q >= 0;  // "max" parses as +inf: no quota
  }
  struct Entry {
    std::chrono::steady_clock::time_point when;
    bool quota = false;
  };
  static constexpr auto kReuse = std::chrono::milliseconds(200);
  fs::path mount_;
  const char* file_;
  std::unordered_map<std::string, Entry> cache_;
};

// Block devices stacked on others: device mapper (LVM, dm-crypt), md, bcache, whose
// /sys/dev/block/MAJ:MIN/slaves lists the devices below. The kernel accounts a bio to its cgroup
// on every device it is submitted to (blk_cgroup_bio_start), and the bios a stacked driver sends
// down keep the cgroup (bio_clone_blkg_association), so a sum over every device of io.stat or
// blkio counted I/O to an LVM volume twice. Only devices with none below are summed: they see all
// of it, also I/O to another partition of the same disk outside the stack, which a sum of the
// top-level devices would count twice (both list the whole disk). Kept per device, asked again
// after kRecheck: stacks are set up and torn down rarely.
//
// A loop device lists nothing in `slaves`, but its worker does the I/O on the backing file as the
// issuing cgroup (loop_queue_work associates the cgroup), so it reaches that file's disk charged
// to the same cgroup. A loop device counts as stacked when its backing file (loop/backing_file,
// taken under the host root) is on a filesystem whose device is in /sys/dev/block. A file on a
// filesystem without one (tmpfs, overlay, NFS, btrfs's anonymous device) leaves the loop device
// as the bottom, counted; so does a path that is not absolute. The filesystem is found in
// <root>/proc/self/mountinfo by the path alone, not by stat(): a stat on a hung NFS mount would
// block the sampling round, and a deleted backing file (" (deleted)") still has its I/O on its disk.
class StackedDevices {
 public:
  StackedDevices(fs::path root, fs::path dev_block)
      : root_(std::move(root)), dev_block_(std::move(dev_block)) {}
  bool operator()(std::string_view device) {
    const auto now = std::chrono::steady_clock::now();
    if (cache_.size() > 4096) cache_.clear();  // bound it; devices come and go
    auto [it, added] = cache_.try_emplace(std::string(device));
    if (added || now - it->second.when >= kRecheck) it->second = {now, stacked(dev_block_ / it->first)};
    return it->second.stacked;
  }

 private:
  bool stacked(const fs::path& dir) const {
    // No such folder (a gone device, "(unknown)" of some filesystems): a disk, counted.
    std::error_code ec;
    if (const bool empty = fs::is_empty(dir / "slaves", ec); !ec && !empty) return true;
    auto file = readKernelFile(dir / "loop" / "backing_file");  // "/path\n"; none: not a loop device
    if (!file) return false;
    while (!file->empty() && file->back() == '\n') file->pop_back();
    if (file->empty() || file->front() != '/') return false;
    auto mounts = readKernelFileToEnd(root_ / "proc/self/mountinfo");
    if (!mounts) return false;
    const auto device = mountDeviceOf(*mounts, (root_ / file->substr(1)).lexically_normal().string());
    return device && fs::is_directory(dev_block_ / *device, ec);
  }
  struct Entry {
    std::chrono::steady_clock::time_point when;
    bool stacked = false;
  };
  static constexpr auto kRecheck = std::chrono::seconds(60);
  fs::path root_, dev_block_;
  std::unordered_map<std::string, Entry> cache_;
};

// cpu.stat.local's throttled time (`key`, in units of `scale` seconds) as
// cpu_throttled_local_seconds_total; false when the file could not be read (kernel before 6.6).
bool addLocalThrottling(std::optional<std::string_view> text, std::string_view key, double scale,
                        Sample& out) {
  if (!text) return false;
  double v[1];
  findKeys(*text, std::span<const std::string_view>(&key, 1), v);
  if (!std::isnan(v[0])) out.add("cpu_throttled_local_seconds_total", v[0] * scale);
  return true;
}

bool isDirectory(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// What the v1 and v2 collectors share: per workload, the files of Files kept open (open(w):
// nullopt when the cgroup does not exist) and read each round (read(): false when a kept file
// reports its cgroup gone, removed or re-created under the same path; the entry is then dropped
// and rebuilt once from the path).
template <typename Files>
class CachedCgroupCollector : public Collector {
 public:
  void forget(const std::string& id) override { cache_.erase(id); }
  void refreshLimits(const std::string& id) override {
    if (auto it = cache_.find(id); it != cache_.end()) it->second.refresh_limits = true;
  }
  Status collect(const Workload& w, const std::vector<pid_t>&, Sample& out) override {
    if (w.kind != Workload::Kind::kCgroup) return ok();
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto it = cache_.find(w.id);
      if (it == cache_.end()) {
        std::optional<Files> f = open(w);
        if (!f) return fail(ErrorCode::kNotFound, "{}: cgroup is gone", w.cgroup);
        it = cache_.emplace(w.id, std::move(*f)).first;
      }
      const std::size_t first = out.metrics.size();
      if (read(it->second, out)) return ok();
      out.metrics.resize(first);
      cache_.erase(it);
    }
    return fail(ErrorCode::kNotFound, "{}: cgroup is gone", w.cgroup);
  }

 protected:
  CachedCgroupCollector(const CollectorContext& ctx, const fs::path& quota_root, const char* quota_file)
      : ancestors_(quota_root, quota_file), stacked_(ctx.paths.root(), ctx.paths.sys() / "dev" / "block"), ctx_(ctx) {}

  std::string buf_;
  AncestorQuotas ancestors_;
  StackedDevices stacked_;
  CollectorContext ctx_;

 private:
  virtual std::optional<Files> open(const Workload& w) = 0;
  virtual bool read(Files& f, Sample& out) = 0;

  std::unordered_map<std::string, Files> cache_;
};

struct CgroupV1Files {
  KeptFile usage, acct_stat, cpu_stat, mem_usage, mem_stat, mem_oom;
  KeptFile mem_failcnt;  // memory.failcnt: charges that hit this cgroup's own limit
  KeptFile stat_local;  // cpu.stat.local (kernel 6.6+): throttling by this or any ancestor's quota
  KeptFile blk_bytes[2], blk_ops[2];  // *_recursive (with descendants) first, then the plain file
  std::optional<Pressure> psi;        // hybrid hosts keep PSI on the v2 side
  fs::path cpu_dir, mem_dir, cpuset_dir;  // limits: read by path in the detail rounds
  bool refresh_limits = false;            // and in the next round after refreshLimits()
  bool ancestor_quota = false;            // as of the last limits read
  bool has_local = false;                 // cpu.stat.local was read last time
  double cpu_limit = NAN, mem_limit = NAN;
  std::optional<int> cpuset_cpus{};
};

class CgroupV1Collector final : public CachedCgroupCollector<CgroupV1Files> {
 public:
  explicit CgroupV1Collector(const CollectorContext& ctx)
      : CachedCgroupCollector(ctx, ctx.layout.v1("cpu").value_or(fs::path("/")), "cpu.cfs_quota_us") {}
  const char* name() const override { return "cgroup.v1"; }

 private:
  static constexpr std::string_view kAcctKeys[2] = {"user", "system"};
  static constexpr std::string_view kCpuKeys[3] = {"nr_periods", "nr_throttled", "throttled_time"};
  // total_* include descendants, matching usage_in_bytes with use_hierarchy=1.
  // total_swap: with swap accounting (memory.memsw.* present) only; total_workingset_refault_*
  // since kernel 5.9. total_pgpgout counts uncharge events, one per folio (a page or more).
  static constexpr std::string_view kMemKeys[9] = {"total_rss",     "total_cache",      "total_inactive_file",
                                                   "total_pgfault", "total_pgmajfault", "total_swap",
                                                   "total_workingset_refault_anon",
                                                   "total_workingset_refault_file", "total_pgpgout"};
  using Files = CgroupV1Files;

  std::optional<Files> open(const Workload& w) override {
    if (!isDirectory(cgroupPath(ctx_.layout.reference(), w.cgroup))) return std::nullopt;
    auto dir = [&](const char* controller) {
      auto m = ctx_.layout.v1(controller);
      return m ? cgroupPath(*m, w.cgroup) : fs::path();
    };
    auto in = [](const fs::path& d, const char* name) { return d.empty() ? KeptFile() : KeptFile(d / name); };
    Files f;
    const fs::path acct = dir("cpuacct"), blk = dir("blkio");
    f.cpu_dir = dir("cpu");
    f.mem_dir = dir("memory");
    f.cpuset_dir = dir("cpuset");
    // Container runtimes and systemd create a cgroup in every hierarchy when they create it; one
    // that has no cpuset folder now is not looked up by path in every detail round.
    if (!f.cpuset_dir.empty() && !isDirectory(f.cpuset_dir)) f.cpuset_dir.clear();
    f.usage = in(acct, "cpuacct.usage");
    f.acct_stat = in(acct, "cpuacct.stat");
    f.cpu_stat = in(f.cpu_dir, "cpu.stat");
    f.stat_local = in(f.cpu_dir, "cpu.stat.local");
    f.mem_usage = in(f.mem_dir, "memory.usage_in_bytes");
    f.mem_stat = in(f.mem_dir, "memory.stat");
    f.mem_oom = in(f.mem_dir, "memory.oom_control");
    f.mem_failcnt = in(f.mem_dir, "memory.failcnt");
    f.blk_bytes[0] = in(blk, "blkio.throttle.io_service_bytes_recursive");
    f.blk_bytes[1] = in(blk, "blkio.throttle.io_service_bytes");
    f.blk_ops[0] = in(blk, "blkio.throttle.io_serviced_recursive");
    f.blk_ops[1] = in(blk, "blkio.throttle.io_serviced");
    if (ctx_.layout.version == CgroupVersion::kHybrid) {
      const fs::path u = cgroupPath(ctx_.layout.unified, w.cgroup);
      if (isDirectory(u)) f.psi.emplace(u);
    }
    return f;
  }

  // false when the cgroup went away under a kept fd.
  bool read(Files& f, Sample& out) override {
    bool gone = false;
    auto rd = [&](KeptFile& k) {
      auto t = k.read(buf_);
      gone |= k.gone();
      return t;
    };
    const double hz = static_cast<double>(ctx_.clock_ticks);
    if (auto t = rd(f.usage)) {
      if (auto v = parseNumber(*t)) out.add("cpu_usage_seconds_total", *v / 1e9);
    }
    if (auto t = out.detail ? rd(f.acct_stat) : std::nullopt) {
      double v[2];
      findKeys(*t, kAcctKeys, v);
      if (!std::isnan(v[0])) out.add("cpu_user_seconds_total", v[0] / hz);
      if (!std::isnan(v[1])) out.add("cpu_system_seconds_total", v[1] / hz);
    }
    // Limits change rarely: read in the detail rounds, the last value reported between. By path,
    // not kept: four more fds (~18 KiB of kernel memory) per workload for one read in N rounds.
    if (std::exchange(f.refresh_limits, false) || out.detail) {
      std::optional<double> q, p;
      if (!f.cpu_dir.empty()) {
        if (auto t = readKernelFile(f.cpu_dir / "cpu.cfs_quota_us")) q = parseNumber(*t);
        if (auto t = readKernelFile(f.cpu_dir / "cpu.cfs_period_us")) p = parseNumber(*t);
      }
      f.cpu_limit = (q && p && *p > 0) ? (*q < 0 ? std::numeric_limits<double>::infinity() : *q / *p) : NAN;
      f.ancestor_quota = !f.cpu_dir.empty() && ancestors_.any(f.cpu_dir);
      f.mem_limit = NAN;
      if (!f.mem_dir.empty())
        if (auto t = readKernelFile(f.mem_dir / "memory.limit_in_bytes"))
          if (auto v = parseNumber(*t)) f.mem_limit = limitOrInf(*v);
      // effective_cpus (what the kernel enforces, also under an ancestor's narrower set) where the
      // kernel has it, else the configured cpus.
      f.cpuset_cpus.reset();
      if (!f.cpuset_dir.empty()) {
        auto t = readKernelFile(f.cpuset_dir / "cpuset.effective_cpus");
        if (!t) t = readKernelFile(f.cpuset_dir / "cpuset.cpus");
        if (t) f.cpuset_cpus = countCpuList(*t);
      }
    }
    // Throttling is what makes cpu demand exceed usage, so it is read every round where a quota can
    // cause it, and in the detail rounds otherwise. cpu.stat counts only the cgroup's own quota's
    // throttling (zeros without one, even while an ancestor's quota throttles it: checked on v1);
    // cpu.stat.local, where the kernel has it, counts the throttling its tasks got from any level.
    const bool own_quota = !(std::isinf(f.cpu_limit) && f.cpu_limit > 0);  // NaN (unreadable): read it
    if (out.detail || (f.has_local && (own_quota || f.ancestor_quota))) {
      f.has_local = addLocalThrottling(rd(f.stat_local), "throttled_time", 1e-9, out);
    }
    if (auto t = out.detail || (own_quota && !f.has_local) ? rd(f.cpu_stat) : std::nullopt) {
      double v[3];
      findKeys(*t, kCpuKeys, v);
      if (!std::isnan(v[0])) out.add("cpu_periods_total", v[0]);
      if (!std::isnan(v[1])) out.add("cpu_throttled_periods_total", v[1]);
      if (!std::isnan(v[2])) out.add("cpu_throttled_seconds_total", v[2] / 1e9);
    }
    if (!std::isnan(f.cpu_limit)) out.add("cpu_limit_cores", f.cpu_limit);
    if (!std::isnan(f.mem_limit)) out.add("memory_limit_bytes", f.mem_limit);
    addCpusetCpus(f.cpuset_cpus, out);
    double usage = NAN;
    if (auto t = rd(f.mem_usage)) {
      if (auto v = parseNumber(*t)) {
        usage = *v;
        out.add("memory_usage_bytes", usage);
      }
    }
    if (auto t = out.detail ? rd(f.mem_stat) : std::nullopt) {
      double v[9];
      findKeys(*t, kMemKeys, v);
      const double rss = v[0], cache = v[1], inactive_file = v[2], pgfault = v[3], pgmaj = v[4];
      if (!std::isnan(rss)) out.add("memory_anon_bytes", rss);
      if (!std::isnan(v[5])) out.add("memory_swap_bytes", v[5]);
      if (!std::isnan(v[6])) out.add("memory_anon_refaults_total", v[6]);
      if (!std::isnan(v[7])) out.add("memory_file_refaults_total", v[7]);
      if (!std::isnan(v[8])) out.add("memory_pages_out_total", v[8]);
      if (!std::isnan(cache)) out.add("memory_file_bytes", cache);
      if (!std::isnan(pgfault)) out.add("memory_faults_total", pgfault);
      if (!std::isnan(pgmaj)) out.add("memory_major_faults_total", pgmaj);
      addWorkingSet(usage, inactive_file, out);
    }
    // "oom_kill N" since kernel 4.13.
    if (auto t = out.detail ? rd(f.mem_oom) : std::nullopt) addOomKills(*t, out);
    if (auto t = out.detail ? rd(f.mem_failcnt) : std::nullopt)
      if (auto v = parseNumber(*t)) out.add("memory_limit_hits_total", *v);
    if (out.detail) {
      readBlkio(f.blk_bytes, "io_read_bytes_total", "io_write_bytes_total", out, gone);
      readBlkio(f.blk_ops, "io_read_ops_total", "io_write_ops_total", out, gone);
    }
    if (f.psi && out.detail) readPressure(*f.psi, buf_, out);
    return !gone;
  }

  // "MAJ:MIN Read N" lines; the _recursive file includes descendants where the kernel has it.
  // Devices stacked on others are left out (StackedDevices).
  void readBlkio(KeptFile (&files)[2], const char* read_name, const char* write_name, Sample& out,
                 bool& gone) {
    auto t = files[0].read(buf_);
    gone |= files[0].gone();
    if (!t && !files[0].gone()) {
      t = files[1].read(buf_);
      gone |= files[1].gone();
    }
    if (!t) return;
    double rd = 0, wr = 0;
    forEachLine(*t, [&](std::string_view line) {
      std::string_view op = field(line, 1);
      auto v = parseNumber(field(line, 2));
      if (!v || stacked_(field(line, 0))) return;
      if (op == "Read") rd += *v;
      if (op == "Write") wr += *v;
    });
    out.add(read_name, rd);
    out.add(write_name, wr);
  }
};

struct CgroupV2Files {
  KeptFile cpu_stat, cpu_max, mem_current, mem_max, mem_stat, mem_events, io_stat;
  KeptFile mem_swap;  // memory.swap.current: absent without swap accounting
  Pressure psi;
  KeptFile cpuset;  // cpuset.cpus.effective: only where the cpuset controller is enabled
  KeptFile stat_local;  // cpu.stat.local (kernel 6.6+), as on v1
  fs::path dir;
  KeptFile mem_high;  // memory.high: reclaim and throttling start there, below memory.max
  // memory.events.local: its own max and high events, not its descendants' (kernel 5.2+)
  KeptFile mem_events_local;
  double cpu_limit = NAN, mem_limit = NAN, mem_high_limit = NAN;
  std::optional<int> cpuset_cpus{};
  bool refresh_limits = false;  // read the limits in the next round (refreshLimits())
  bool ancestor_quota = false, has_local = false;  // as on v1
};

class CgroupV2Collector final : public CachedCgroupCollector<CgroupV2Files> {
 public:
  explicit CgroupV2Collector(const CollectorContext& ctx) : CachedCgroupCollector(ctx, ctx.layout.unified, "cpu.max") {}
  const char* name() const override { return "cgroup.v2"; }

 private:
  static constexpr std::string_view kCpuKeys[6] = {"usage_usec", "user_usec", "system_usec",
                                                   "nr_periods", "nr_throttled", "throttled_usec"};
  // workingset_refault_* since kernel 5.9. pgsteal: pages reclaimed.
  static constexpr std::string_view kMemKeys[8] = {"anon",    "file",       "inactive_file",
                                                   "pgfault", "pgmajfault", "workingset_refault_anon",
                                                   "workingset_refault_file", "pgsteal"};
  using Files = CgroupV2Files;

  std::optional<Files> open(const Workload& w) override {
    const fs::path dir = cgroupPath(ctx_.layout.unified, w.cgroup);
    if (!isDirectory(dir)) return std::nullopt;
    return Files{KeptFile(dir / "cpu.stat"),       KeptFile(dir / "cpu.max"),
                 KeptFile(dir / "memory.current"), KeptFile(dir / "memory.max"),
                 KeptFile(dir / "memory.stat"),    KeptFile(dir / "memory.events"),
                 KeptFile(dir / "io.stat"),        KeptFile(dir / "memory.swap.current"),
                 Pressure(dir),                    KeptFile(dir / "cpuset.cpus.effective"),
                 KeptFile(dir / "cpu.stat.local"), dir,
                 KeptFile(dir / "memory.high"),    KeptFile(dir / "memory.events.local")};
  }

  bool read(Files& f, Sample& out) override {
    bool gone = false;
    auto rd = [&](KeptFile& k) {
      auto t = k.read(buf_);
      gone |= k.gone();
      return t;
    };
    if (auto t = rd(f.cpu_stat)) {
      static constexpr const char* kNames[6] = {
          "cpu_usage_seconds_total", "cpu_user_seconds_total", "cpu_system_seconds_total",
          "cpu_periods_total", "cpu_throttled_periods_total", "cpu_throttled_seconds_total"};
      static constexpr double kScale[6] = {1e-6, 1e-6, 1e-6, 1, 1, 1e-6};
      double v[6];
      findKeys(*t, kCpuKeys, v);
      for (int i = 0; i < 6; ++i)
        if (!std::isnan(v[i])) out.add(kNames[i], v[i] * kScale[i]);
    }
    // Limits are detail files (and read after refreshLimits()); as on v1, the last value read is
    // reported between reads.
    const bool limits = std::exchange(f.refresh_limits, false) || out.detail;
    if (auto t = limits ? rd(f.cpu_max) : std::nullopt) {  // "max 100000" or "50000 100000"
      auto q = parseNumber(field(*t, 0)), p = parseNumber(field(*t, 1));
      f.cpu_limit = q && p && *p > 0 ? *q / *p : NAN;
    }
    if (limits) f.ancestor_quota = ancestors_.any(f.dir);
    // cpu.stat (read above for the usage) has only the own quota's throttling; see v1.
    if (out.detail || (f.has_local && (std::isfinite(f.cpu_limit) || f.ancestor_quota))) {
      f.has_local = addLocalThrottling(rd(f.stat_local), "throttled_usec", 1e-6, out);
    }
    if (!std::isnan(f.cpu_limit)) out.add("cpu_limit_cores", f.cpu_limit);
    if (auto t = limits ? rd(f.cpuset) : std::nullopt) f.cpuset_cpus = countCpuList(*t);
    addCpusetCpus(f.cpuset_cpus, out);
    double usage = NAN;
    if (auto t = rd(f.mem_current)) {
      if (auto v = parseNumber(*t)) {
        usage = *v;
        out.add("memory_usage_bytes", usage);
      }
    }
    if (auto t = limits ? rd(f.mem_max) : std::nullopt) {
      auto v = parseNumber(*t);
      f.mem_limit = v ? *v : NAN;
    }
    if (!std::isnan(f.mem_limit)) out.add("memory_limit_bytes", f.mem_limit);
    if (auto t = limits ? rd(f.mem_high) : std::nullopt) {  // "max": none, as memory.max
      auto v = parseNumber(*t);
      f.mem_high_limit = v ? *v : NAN;
    }
    if (!std::isnan(f.mem_high_limit)) out.add("memory_high_bytes", f.mem_high_limit);
    if (auto t = out.detail ? rd(f.mem_stat) : std::nullopt) {
      double v[8];
      findKeys(*t, kMemKeys, v);
      if (!std::isnan(v[0])) out.add("memory_anon_bytes", v[0]);
      if (!std::isnan(v[1])) out.add("memory_file_bytes", v[1]);
      if (!std::isnan(v[3])) out.add("memory_faults_total", v[3]);
      if (!std::isnan(v[4])) out.add("memory_major_faults_total", v[4]);
      if (!std::isnan(v[5])) out.add("memory_anon_refaults_total", v[5]);
      if (!std::isnan(v[6])) out.add("memory_file_refaults_total", v[6]);
      if (!std::isnan(v[7])) out.add("memory_pages_out_total", v[7]);
      addWorkingSet(usage, v[2], out);
    }
    if (auto t = out.detail ? rd(f.mem_events) : std::nullopt) addOomKills(*t, out);
    if (auto t = out.detail ? rd(f.mem_events_local) : std::nullopt) {
      static constexpr std::string_view kHits[2] = {"max", "high"};
      double v[2];
      findKeys(*t, kHits, v);
      if (!std::isnan(v[0]) && !std::isnan(v[1])) out.add("memory_limit_hits_total", v[0] + v[1]);
    }
    if (auto t = out.detail ? rd(f.mem_swap) : std::nullopt)
      if (auto v = parseNumber(*t)) out.add("memory_swap_bytes", *v);
    // "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N"; empty before the first I/O.
    // Devices stacked on others are left out (StackedDevices).
    if (auto t = out.detail ? rd(f.io_stat) : std::nullopt) {
      double sums[4] = {0, 0, 0, 0};
      static constexpr std::string_view kKeys[4] = {"rbytes=", "wbytes=", "rios=", "wios="};
      forEachLine(*t, [&](std::string_view line) {
        if (stacked_(field(line, 0))) return;
        for (std::size_t i = 1;; ++i) {
          std::string_view kv = field(line, i);
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
    if (out.detail) readPressure(f.psi, buf_, out);
    return !gone;
  }
};

}  // namespace

std::unique_ptr<Collector> makeCgroupV1Collector(const CollectorContext& ctx) {
  return std::make_unique<CgroupV1Collector>(ctx);
}
std::unique_ptr<Collector> makeCgroupV2Collector(const CollectorContext& ctx) {
  return std::make_unique<CgroupV2Collector>(ctx);
}

}  // namespace foresight::collect
