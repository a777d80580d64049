// Per-process readers (/proc/<pid>/{stat,status,io,schedstat,fd}) summed over a workload's
// processes, and the network collector (/proc/<pid>/net/dev of the workload's namespace).
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <cmath>
#include <optional>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "collectors_impl.h"
#include "foresight/collect/kernel_files.h"

namespace fs = std::filesystem;

namespace foresight::collect {
namespace {

class ProcfsCollector final : public Collector {
 public:
  explicit ProcfsCollector(const CollectorContext& ctx) : ctx_(ctx) {}
  const char* name() const override { return "procfs"; }
  void forget(const std::string& id) override { workloads_.erase(id); }

  Status collect(const Workload& w, const std::vector<pid_t>& pids, Sample& out) override {
    // Per-process files are detail for cgroups (whose own files give CPU and memory every round);
    // a process tree has no other source, so it is read every round.
    if (!out.detail && w.kind == Workload::Kind::kCgroup) return ok();
    Tracked& t = workloads_[w.id];
    ++t.round;
    double v[kCount] = {};
    int alive = 0, vanished = 0;
    for (pid_t pid : pids) {
      double one[kCount] = {};
      if (readOne(t, pid, one)) {
        ++alive;
        for (int i = 0; i < kCount; ++i) v[i] += one[i];
      } else {
        ++vanished;  // exited between listing and reading: normal
      }
    }
    // Processes that left the workload: close their files.
    std::erase_if(t.procs, [&](const auto& kv) { return kv.second.seen != t.round; });
    if (alive == 0 && w.kind == Workload::Kind::kProcessTree) {
      workloads_.erase(w.id);
      return fail(ErrorCode::kNotFound, "{}: process tree {} has exited",
                  ctx_.paths.procPid(w.root_pid).string(), w.id);
    }
    static constexpr const char* kNames[kCount] = {
        "proc_cpu_user_seconds_total", "proc_cpu_system_seconds_total",
        "proc_run_delay_seconds_total", "proc_rss_bytes", "proc_minor_faults_total",
        "proc_major_faults_total", "proc_read_bytes_total", "proc_write_bytes_total",
        "proc_voluntary_ctxsw_total", "proc_involuntary_ctxsw_total", "proc_threads",
        "proc_fds_file", "proc_fds_socket", "proc_fds_pipe", "proc_fds_other"};
    for (int i = 0; i < kCount; ++i) out.add(kNames[i], v[i]);
    out.add("proc_processes", alive);
    out.add("proc_vanished", vanished);
    return ok();
  }

 private:
  enum { kUser, kSys, kDelay, kRss, kMinflt, kMajflt, kRead, kWrite, kVol, kInvol, kThreads,
         kFdFile, kFdSocket, kFdPipe, kFdOther, kCount };
  // The fd-kind walk (a readlink per open fd) cost more than the four files together; fd counts
  // are gauges that move slowly, so they are refreshed every kFdKindsEvery rounds.
  static constexpr std::uint64_t kFdKindsEvery = 10;

  struct Proc {
    explicit Proc(const fs::path& d)
        : dir(d), stat(d / "stat"), schedstat(d / "schedstat"), status(d / "status"), io(d / "io") {}
    fs::path dir;
    KeptFile stat, schedstat, status, io;
    std::uint64_t seen = 0, rounds = 0;
    double fds[4] = {};  // file, socket, pipe, other at the last walk
  };
  struct Tracked {
    std::unordered_map<pid_t, Proc> procs;
    std::uint64_t round = 0;
  };

  // One process's values into v; false when it has exited. Kept fds of an exited process fail
  // (ESRCH), so its entry is dropped and the pid re-opened by path once: a reused pid then reads
  // the new process, never the old one's files.
  bool readOne(Tracked& t, pid_t pid, double* v) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto it = t.procs.find(pid);
      if (it == t.procs.end()) it = t.procs.emplace(pid, Proc(ctx_.paths.procPid(pid))).first;
      Proc& p = it->second;
      p.seen = t.round;
      if (read(p, pid, v)) return true;
      const bool gone = p.stat.gone();
      t.procs.erase(it);
      std::fill(v, v + kCount, 0.0);
      if (!gone) return false;
    }
    return false;
  }

  bool read(Proc& p, pid_t pid, double* v) {
    auto stat = p.stat.read(buf_);
    if (!stat || stat->empty()) return false;
    const auto fields = statFields(*stat);
    if (!fields) return false;
    const std::string_view rest = *fields;
    const double hz = static_cast<double>(ctx_.clock_ticks);
    auto num = [&](std::size_t proc5_field) {
      auto x = parseNumber(field(rest, proc5_field - 3));
      return x ? *x : 0.0;
    };
    v[kUser] = num(14) / hz;
    v[kSys] = num(15) / hz;
    v[kMinflt] = num(10);
    v[kMajflt] = num(12);
    v[kThreads] = num(20);
    bool gone = false;
    auto rd = [&](KeptFile& f) {
      auto text = f.read(buf_);
      gone |= f.gone();
      return text;
    };
    if (auto s = rd(p.schedstat)) {  // "run_ns wait_ns timeslices"
      if (auto d = parseNumber(field(*s, 1))) v[kDelay] = *d / 1e9;
    }
    auto set = [&](int i, double x) { if (!std::isnan(x)) v[i] = x; };
    if (auto s = rd(p.status)) {
      static constexpr std::string_view kKeys[3] = {"VmRSS", "voluntary_ctxt_switches",
                                                    "nonvoluntary_ctxt_switches"};
      double x[3];
      findKeys(*s, kKeys, x);
      set(kRss, x[0] * 1024.0);
      set(kVol, x[1]);
      set(kInvol, x[2]);
    }
    if (auto s = rd(p.io)) {  // needs ptrace access: root for others' pids
      static constexpr std::string_view kKeys[2] = {"read_bytes", "write_bytes"};
      double x[2];
      findKeys(*s, kKeys, x);
      set(kRead, x[0]);
      set(kWrite, x[1]);
    }
    if (gone) return false;  // exited while being read: counted as vanished, not half-summed
    // First read, then every kFdKindsEvery rounds, offset by pid so a round does not walk the
    // fds of every process at once.
    if (p.rounds++ == 0 || (p.rounds + static_cast<std::uint64_t>(pid)) % kFdKindsEvery == 0) countFds(p);
    for (int i = 0; i < 4; ++i) v[kFdFile + i] = p.fds[i];
    return true;
  }

  void countFds(Proc& p) {
    std::fill(std::begin(p.fds), std::end(p.fds), 0.0);
    int fdd = ::open((p.dir / "fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = fdd >= 0 ? ::fdopendir(fdd) : nullptr;
    if (!d) {
      if (fdd >= 0) ::close(fdd);
      return;
    }
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[128];
      ssize_t n = ::readlinkat(fdd, e->d_name, target, sizeof target - 1);
      if (n <= 0) continue;
      std::string_view t(target, static_cast<std::size_t>(n));
      if (t.starts_with("socket:")) p.fds[1] += 1;
      else if (t.starts_with("pipe:")) p.fds[2] += 1;
      else if (t.starts_with("/")) p.fds[0] += 1;
      else p.fds[3] += 1;
    }
    ::closedir(d);  // closes fdd
  }

  std::unordered_map<std::string, Tracked> workloads_;
  std::string buf_;
  CollectorContext ctx_;
};

// Bytes and packets of every interface but loopback in the workload's network namespace, read
// through its first live process; without one (an empty cgroup), the host's /proc/net/dev.
class NetCollector final : public Collector {
 public:
  explicit NetCollector(const CollectorContext& ctx) : ctx_(ctx), proc_(ctx.paths.proc().string()) {}
  const char* name() const override { return "net"; }

  Status collect(const Workload&, const std::vector<pid_t>& pids, Sample& out) override {
    if (!out.detail) return ok();  // a detail file: read every detail_every rounds
    Result<std::string> text = fail(ErrorCode::kNotFound, "no process");
    std::string ns;
    for (pid_t pid : pids) {
      // Workloads that share a namespace (often all of them: the host's) share one read per
      // round: the namespace link names it, and a reading younger than kReuse is reused.
      // Formatted into a stack buffer: std::filesystem path joins cost more than the readlink.
      char path[512], link[64];
      *fmt::format_to_n(path, sizeof path - 1, "{}/{}/ns/net", proc_, pid).out = '\0';
      ssize_t n = ::readlink(path, link, sizeof link - 1);
      if (n > 0) {
        ns.assign(link, static_cast<std::size_t>(n));
        auto it = cache_.find(ns);
        if (it != cache_.end() && std::chrono::steady_clock::now() - it->second.when < kReuse) {
          for (const auto& m : it->second.metrics) out.add(m.name, m.value);
          return ok();
        }
      }
      // Read by path, not kept: an open net/dev holds a reference on its namespace, which would
      // outlive the containers that used it. It is one read per namespace per round anyway.
      text = readKernelFile(ctx_.paths.procPid(pid) / "net" / "dev");
      if (text) break;
      ns.clear();
    }
    const std::size_t first = out.metrics.size();
    bool host = false;
    if (!text) {
      text = readKernelFile(ctx_.paths.proc() / "net" / "dev");
      host = true;
      if (!text) return ok();  // no procfs network view at all: nothing to report
    }
    double rxb = 0, rxp = 0, txb = 0, txp = 0;
    forEachLine(*text, [&](std::string_view line) {
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) return;  // the two header lines
      std::string_view iface = field(line.substr(0, colon), 0);
      if (iface == "lo") return;
      std::string_view rest = line.substr(colon + 1);
      auto f = [&](std::size_t i) { auto x = parseNumber(field(rest, i)); return x ? *x : 0.0; };
      rxb += f(0); rxp += f(1); txb += f(8); txp += f(9);
    });
    out.add("net_rx_bytes_total", rxb);
    out.add("net_rx_packets_total", rxp);
    out.add("net_tx_bytes_total", txb);
    out.add("net_tx_packets_total", txp);
    out.add("net_host_fallback", host ? 1 : 0);
    // Which counters these are: a rate across two namespaces' counters would be their difference.
    if (auto open = ns.find('['); open != std::string::npos)
      if (auto id = parseNumber(std::string_view(ns).substr(open + 1, ns.size() - open - 2)))
        out.add("net_namespace", *id);
    if (!ns.empty()) {
      if (cache_.size() > 4096) cache_.clear();  // bound it; namespaces come and go
      auto& e = cache_[ns];
      e.when = std::chrono::steady_clock::now();
      e.metrics.assign(out.metrics.begin() + static_cast<std::ptrdiff_t>(first), out.metrics.end());
    }
    return ok();
  }

 private:
  static constexpr auto kReuse = std::chrono::milliseconds(200);
  struct Cached {
    std::chrono::steady_clock::time_point when;
    std::vector<Metric> metrics;
  };
  CollectorContext ctx_;
  std::string proc_;
  std::map<std::string, Cached> cache_;
};

}  // namespace

std::unique_ptr<Collector> makeProcfsCollector(const CollectorContext& ctx) {
  return std::make_unique<ProcfsCollector>(ctx);
}
std::unique_ptr<Collector> makeNetCollector(const CollectorContext& ctx) {
  return std::make_unique<NetCollector>(ctx);
}

}  // namespace foresight::collect
