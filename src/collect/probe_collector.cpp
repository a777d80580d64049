#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_set>

#include <fmt/format.h>

#include "collectors_impl.h"
#include "foresight/collect/kernel_files.h"
#include "foresight/collect/probe_reader.h"
#include "foresight/core/log.h"

namespace foresight::collect {

std::string probeSegmentName(const ProbeSegmentId& id) {
  return fmt::format(FS_PROBE_PREFIX "{}-{}-{}", id.pid, id.start, id.pidns);
}

std::optional<ProbeSegmentId> parseProbeSegmentName(std::string_view name) {
  if (!name.starts_with(FS_PROBE_PREFIX)) return std::nullopt;
  name.remove_prefix(std::string_view(FS_PROBE_PREFIX).size());
  ProbeSegmentId id;
  auto number = [&](auto& v, bool last) {
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
    if (ec != std::errc() || p == name.data()) return false;
    name.remove_prefix(static_cast<std::size_t>(p - name.data()));
    if (last) return name.empty();
    if (!name.starts_with('-')) return false;
    name.remove_prefix(1);
    return true;
  };
  if (!number(id.pid, false) || !number(id.start, false) || !number(id.pidns, true))
    return std::nullopt;
  return id;
}

std::filesystem::path probeSegmentPath(const std::filesystem::path& dir, const ProbeSegmentId& id) {
  return dir / probeSegmentName(id);
}

Result<std::uint64_t> processStartTime(const HostPaths& paths, pid_t pid) {
  const auto file = paths.procPid(pid) / "stat";
  auto text = readKernelFile(file);
  if (!text) return tl::unexpected(text.error());
  const auto fields = statFields(*text);
  const std::string_view f = fields ? field(*fields, 22 - 3) : std::string_view();
  std::uint64_t start = 0;
  auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), start);
  if (f.empty() || ec != std::errc() || p != f.data() + f.size())
    return fail(ErrorCode::kParse, "{}: no start time in field 22", file.string());
  return start;
}

namespace {

// The pids of an "NSpid:" line (after the key) of /proc/PID/status, one per pid namespace from
// the procfs's down to the process's own: the last is what the process calls itself.
struct NsPid {
  pid_t pid = 0;
  std::size_t levels = 0;
};
std::optional<NsPid> parseNsPid(std::string_view pids) {
  NsPid out;
  std::string_view last;
  for (; !field(pids, out.levels).empty(); ++out.levels) last = field(pids, out.levels);
  if (std::from_chars(last.data(), last.data() + last.size(), out.pid).ec != std::errc())
    return std::nullopt;
  return out;
}

}  // namespace

Result<ProbeProcess> probeProcessOf(const HostPaths& paths, pid_t pid) {
  ProbeProcess proc;
  auto start = processStartTime(paths, pid);
  if (!start) return tl::unexpected(start.error());
  proc.id.start = *start;
  const auto dir = paths.procPid(pid);
  auto status = readKernelFile(dir / "status");
  if (!status) return tl::unexpected(status.error());
  // Without an NSpid line (kernels before 4.1) the pid is the same in every namespace we see.
  proc.id.pid = pid;
  bool uids = false;
  forEachLine(*status, [&](std::string_view line) {
    if (line.starts_with("Uid:")) {
      for (std::size_t i = 0; i < proc.uids.size(); ++i) {
        const std::string_view f = field(line.substr(4), i);
        uids = std::from_chars(f.data(), f.data() + f.size(), proc.uids[i]).ec == std::errc();
        if (!uids) break;
      }
    } else if (line.starts_with("NSpid:")) {
      if (auto ns = parseNsPid(line.substr(6))) proc.id.pid = ns->pid;
    }
  });
  if (!uids) return fail(ErrorCode::kParse, "{}: no Uid line", (dir / "status").string());
  const auto ns = dir / "ns" / "pid";
  struct stat st {};
  if (::stat(ns.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT || e == ESRCH)
      return fail(ErrorCode::kNotFound, "{}: {}", ns.string(), std::strerror(e));
    return fail(ErrorCode::kIo, "{}: {}", ns.string(), std::strerror(e));
  }
  proc.id.pidns = st.st_ino;
  return proc;
}

Result<fs_probe_segment> readProbeSegment(const std::filesystem::path& file,
                                          std::span<const uid_t> owners) {
  // The folder is world-writable (/dev/shm): a FIFO planted under a segment's name blocked a
  // plain open() for good (O_NONBLOCK), and a link could lead anywhere (O_NOFOLLOW).
  int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return fail(ErrorCode::kNotFound, "{}: no probe segment", file.string());
    if (e == ELOOP)
      return fail(ErrorCode::kParse, "{}: a symbolic link, not a probe segment", file.string());
    return fail(ErrorCode::kIo, "{}: {}", file.string(), std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(ErrorCode::kIo, "{}: {}", file.string(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode) || st.st_size != static_cast<off_t>(sizeof(fs_probe_segment))) {
    ::close(fd);
    return fail(ErrorCode::kParse, "{}: not a probe segment (a regular file of {} bytes)",
                file.string(), sizeof(fs_probe_segment));
  }
  // Anyone can create a file under the name a process's segment would have.
  if (st.st_uid != 0 && std::find(owners.begin(), owners.end(), st.st_uid) == owners.end()) {
    ::close(fd);
    return fail(ErrorCode::kParse, "{}: owned by uid {}, neither root nor the process's user",
                file.string(), st.st_uid);
  }
  fs_probe_segment seg{};
  // pread copies a consistent-enough snapshot: each 8-byte counter is written atomically.
  ssize_t n = ::pread(fd, &seg, sizeof seg, 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof seg) || seg.magic != FS_PROBE_MAGIC ||
      seg.version != FS_PROBE_VERSION || seg.classes != FS_PROBE_CLASSES) {
    return fail(ErrorCode::kParse, "{}: not a version {} probe segment", file.string(), FS_PROBE_VERSION);
  }
  return seg;
}

namespace {

// Static names: "probe_<class>_{calls,errors,bytes,seconds}_total".
struct Names { const char* calls; const char* errors; const char* bytes; const char* seconds; };
#define FS_NAMES(c) {"probe_" c "_calls_total", "probe_" c "_errors_total", "probe_" c "_bytes_total", "probe_" c "_seconds_total"}
constexpr Names kNames[FS_PROBE_CLASSES] = {FS_NAMES("read"), FS_NAMES("write"), FS_NAMES("send"),
                                            FS_NAMES("recv"), FS_NAMES("fsync"), FS_NAMES("connect"),
                                            FS_NAMES("accept"), FS_NAMES("pipe"), FS_NAMES("socket")};
#undef FS_NAMES
constexpr const char* kP99[FS_PROBE_CLASSES] = {
    "probe_read_p99_seconds", "probe_write_p99_seconds", "probe_send_p99_seconds",
    "probe_recv_p99_seconds", "probe_fsync_p99_seconds", "probe_connect_p99_seconds",
    "probe_accept_p99_seconds", "probe_pipe_p99_seconds", "probe_socket_p99_seconds"};

// "foresight-probe-<pid>": a segment of layout version 1, named by its writer's pid alone.
std::optional<pid_t> parseV1SegmentName(std::string_view name) {
  if (!name.starts_with(FS_PROBE_PREFIX)) return std::nullopt;
  name.remove_prefix(std::string_view(FS_PROBE_PREFIX).size());
  pid_t pid = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  if (ec != std::errc() || p != name.data() + name.size() || pid <= 0) return std::nullopt;
  return pid;
}

// The inode of a /proc/PID/ns file; 0 when the kernel has no such namespace (ENOENT), nullopt
// when it cannot be read.
std::optional<std::uint64_t> nsInode(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0) return st.st_ino;
  return errno == ENOENT ? std::optional<std::uint64_t>(0) : std::nullopt;
}

// Whether host pid reads boot-relative times as we do: in another time namespace its
// /proc/PID/stat start time, which names its segment, is shifted by the namespace's offset.
bool sameTimeNamespace(const HostPaths& paths, pid_t pid) {
  const auto mine = nsInode(paths.proc() / "self" / "ns" / "time");
  const auto theirs = nsInode(paths.procPid(pid) / "ns" / "time");
  return mine && theirs && *mine == *theirs;
}

// The initial pid namespace's inode (PROC_PID_INIT_INO, include/linux/proc_ns.h).
constexpr std::uint64_t kInitPidNamespace = 0xEFFFFFFCu;

// Whether the procfs lists every process of the host, which proving a writer in another pid
// namespace gone needs: it is the initial pid namespace's (we are in it and see ourselves
// there), and it is not mounted with hidepid, which hides the processes we may not ptrace.
bool seesEveryProcess(const HostPaths& paths) {
  if (nsInode(paths.proc() / "self" / "ns" / "pid").value_or(0) != kInitPidNamespace) return false;
  auto mounts = readKernelFile(paths.proc() / "self" / "mountinfo");
  if (!mounts) return false;
  const std::string proc = paths.proc().lexically_normal().string();
  bool mounted = false, hidden = false;
  forEachLine(*mounts, [&](std::string_view line) {
    const std::size_t dash = line.find(" - ");
    if (field(line, 4) != proc || dash == std::string_view::npos) return;
    mounted = true;  // the last mount there is the one seen
    hidden = false;
    std::string_view options = field(line.substr(dash + 3), 2);
    while (!options.empty()) {
      const std::size_t comma = options.find(',');
      const std::string_view o = options.substr(0, comma);
      options = comma == std::string_view::npos ? std::string_view() : options.substr(comma + 1);
      if (o.starts_with("hidepid=") && o != "hidepid=0" && o != "hidepid=off") hidden = true;
    }
  });
  return mounted && !hidden;
}

// The processes that may have written a segment of one of `pids` (as a process numbers itself),
// from a full listing of the procfs (seesEveryProcess). nullopt when a process could not be read.
struct Writers {
  struct Proc {
    pid_t pid;           // in its own pid namespace
    std::uint64_t pidns; // 0: not known
    pid_t host;          // in the procfs
  };
  std::vector<Proc> procs;

  static std::optional<Writers> scan(const HostPaths& paths, const std::set<pid_t>& pids) {
    Writers w;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(paths.proc(), ec), end; !ec && it != end; it.increment(ec)) {
      const auto& entry = *it;
      const std::string name = entry.path().filename().string();
      pid_t host = 0;
      if (std::from_chars(name.data(), name.data() + name.size(), host).ptr != name.data() + name.size())
        continue;
      auto status = readKernelFile(entry.path() / "status");
      if (!status) {
        if (status.error().code == ErrorCode::kNotFound) continue;  // exited
        return std::nullopt;
      }
      std::optional<NsPid> ns;
      forEachLine(*status, [&](std::string_view line) {
        if (line.starts_with("NSpid:")) ns = parseNsPid(line.substr(6));
      });
      if (!ns) ns = NsPid{host, 1};  // no NSpid line (before 4.1): one namespace
      if (!pids.count(ns->pid)) continue;
      // One level: the procfs's own namespace, the initial one.
      std::optional<std::uint64_t> pidns = kInitPidNamespace;
      if (ns->levels > 1) pidns = nsInode(entry.path() / "ns" / "pid");
      w.procs.push_back({ns->pid, pidns.value_or(0), host});
    }
    if (ec) return std::nullopt;
    return w;
  }

  // Whether the process that wrote segment id is gone: no process of its namespace has its pid,
  // or the one that has is younger (and reads start times as we do).
  bool gone(const HostPaths& paths, const ProbeSegmentId& id) const {
    for (const auto& p : procs) {
      if (p.pid != id.pid || (p.pidns != 0 && p.pidns != id.pidns)) continue;
      if (p.pidns == 0) return false;  // may be its namespace
      auto start = processStartTime(paths, p.host);
      if (!start) {
        if (start.error().code == ErrorCode::kNotFound) continue;  // exited since
        return false;
      }
      return *start != id.start && sameTimeNamespace(paths, p.host);
    }
    return true;
  }
  // A version 1 segment names no namespace: any process calling itself pid may have written it.
  bool goneV1(pid_t pid) const {
    return std::none_of(procs.begin(), procs.end(), [&](const Proc& p) { return p.pid == pid; });
  }
};

class ProbeCollector final : public Collector {
 public:
  explicit ProbeCollector(const CollectorContext& ctx) : ctx_(ctx) {}
  const char* name() const override { return "probe"; }
  void forget(const std::string& id) override { previous_.erase(id); }
  Status collect(const Workload& w, const std::vector<pid_t>& pids, Sample& out) override {
    // Detail tier, like the per-process files: a cgroup's pid list is only fresh in its detail
    // rounds (Sampler).
    if (!out.detail) return ok();
    fs_probe_counters sum[FS_PROBE_CLASSES] = {};
    // Calls per latency bucket since the previous collect, summed per process: a process that
    // left takes its counts along, which in a sum over the workload looked like a fresh start
    // and counted the others' whole history as new.
    std::uint64_t delta[FS_PROBE_CLASSES][FS_PROBE_BUCKETS] = {};
    Histograms& prev = previous_[w.id];
    Histograms now;
    int seen = 0;
    refreshListing();
    for (pid_t pid : pids) {
      // A process of another pid namespace names its segment by its pid there, so any pid may
      // have one while such segments exist.
      if (!local_.count(pid) && !foreign_) continue;
      auto proc = probeProcessOf(ctx_.paths, pid);
      if (!proc || !listed_.count(proc->id)) continue;  // exited, or runs without the probe
      const auto file = probeSegmentPath(ctx_.probe_dir, proc->id);
      auto seg = readProbeSegment(file, proc->uids);
      if (seg && (seg->pid != proc->id.pid || seg->start != proc->id.start ||
                  seg->pidns != proc->id.pidns)) {
        seg = fail(ErrorCode::kParse, "{}: its header names another process", file.string());
      }
      if (!seg) {
        // Skipped, not an error: one bad file must not stop the others being read.
        if (seg.error().code != ErrorCode::kNotFound && warned_.insert(proc->id).second)
          spdlog::warn("probe: skipping {} (logged once per file)", seg.error().message);
        continue;
      }
      ++seen;
      // A process new to the workload brings every call since it started.
      const auto before = prev.find(proc->id);
      auto& hist = now[proc->id];
      for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
        sum[k].calls += seg->c[k].calls;
        sum[k].errors += seg->c[k].errors;
        sum[k].bytes += seg->c[k].bytes;
        sum[k].total_ns += seg->c[k].total_ns;
        for (int b = 0; b < FS_PROBE_BUCKETS; ++b) {
          const std::uint64_t was = before == prev.end() ? 0 : before->second[k][b];
          hist[k][b] = seg->c[k].hist[b];
          delta[k][b] += hist[k][b] >= was ? hist[k][b] - was : hist[k][b];
        }
      }
    }
    prev = std::move(now);
    if (seen == 0) return ok();
    out.add("probe_processes", seen);
    for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
      out.add(kNames[k].calls, static_cast<double>(sum[k].calls));
      out.add(kNames[k].errors, static_cast<double>(sum[k].errors));
      out.add(kNames[k].bytes, static_cast<double>(sum[k].bytes));
      out.add(kNames[k].seconds, static_cast<double>(sum[k].total_ns) / 1e9);
    }
    // p99 latency of the calls since the previous collect (all calls the first time), as the upper
    // edge of the log2 bucket holding the 99th percentile; absent when there was no call.
    for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
      std::uint64_t total = 0;
      for (int b = 0; b < FS_PROBE_BUCKETS; ++b) total += delta[k][b];
      if (total == 0) continue;
      const std::uint64_t rank = (total * 99 + 99) / 100;  // ceil(0.99 * total)
      std::uint64_t below = 0;
      for (int b = 0; b < FS_PROBE_BUCKETS; ++b) {
        below += delta[k][b];
        if (below >= rank) {
          out.add(kP99[k], b == 0 ? 0.0 : std::ldexp(1.0, b) / 1e9);
          break;
        }
      }
    }
    return ok();
  }

 private:
  // Few processes run with the probe: one listing of the segment folder, reused for kReuse
  // (a round), replaces a failed open() per process per round. It also removes the segments whose
  // process is gone (killed, _exit: no destructor ran) or whose pid now names another process:
  // nothing else would, and /dev/shm is memory. Those of this pid namespace are checked at each
  // listing; those of other namespaces and of layout version 1, which need a walk of every
  // process, at most every kScanEvery and only where the procfs shows every process.
  static constexpr auto kReuse = std::chrono::milliseconds(200);
  static constexpr auto kScanEvery = std::chrono::seconds(60);
  void refreshListing() {
    const auto now = std::chrono::steady_clock::now();
    if (listedOnce_ && now - listedAt_ < kReuse) return;
    listedOnce_ = true;
    listedAt_ = now;
    listed_.clear();
    local_.clear();
    foreign_ = false;
    if (!ownPidns_) ownPidns_ = nsInode(ctx_.paths.proc() / "self" / "ns" / "pid").value_or(0);
    DIR* d = ::opendir(ctx_.probe_dir.c_str());
    if (!d) return;
    std::set<std::string> stale;
    // Without the right to remove it (another user's, in a sticky folder), it is left.
    auto remove = [&](const std::string& name) {
      stale.insert(name);
      if (!unremovable_.count(name) && ::unlinkat(::dirfd(d), name.c_str(), 0) != 0 && errno != ENOENT)
        unremovable_.insert(name);
    };
    std::map<ProbeSegmentId, std::string> foreign;
    std::map<pid_t, std::string> v1;
    while (dirent* e = ::readdir(d)) {
      auto id = parseProbeSegmentName(e->d_name);
      if (!id) {
        if (auto pid = parseV1SegmentName(e->d_name)) v1.emplace(*pid, e->d_name);
        continue;
      }
      if (id->pidns != *ownPidns_) {
        // Its pid is another namespace's: whether its process lives is for the scan below.
        foreign.emplace(*id, e->d_name);
        listed_.insert(*id);
        continue;
      }
      auto start = processStartTime(ctx_.paths, id->pid);
      if (start ? *start == id->start || !sameTimeNamespace(ctx_.paths, id->pid)
                : start.error().code != ErrorCode::kNotFound) {
        listed_.insert(*id);
        local_.insert(id->pid);
        continue;
      }
      remove(e->d_name);
    }
    if ((!foreign.empty() || !v1.empty()) && (!scannedOnce_ || now - scannedAt_ >= kScanEvery)) {
      scannedOnce_ = true;
      scannedAt_ = now;
      std::set<pid_t> pids;
      for (const auto& [id, name] : foreign) pids.insert(id.pid);
      for (const auto& [pid, name] : v1) pids.insert(pid);
      // Listed after the folder: a writer alive when its segment was listed and still alive now
      // is in the scan.
      std::optional<Writers> writers;
      if (seesEveryProcess(ctx_.paths)) writers = Writers::scan(ctx_.paths, pids);
      if (writers) {
        for (auto it = foreign.begin(); it != foreign.end();) {
          if (!writers->gone(ctx_.paths, it->first)) {
            ++it;
            continue;
          }
          remove(it->second);
          listed_.erase(it->first);
          it = foreign.erase(it);
        }
        for (const auto& [pid, name] : v1)
          if (writers->goneV1(pid)) remove(name);
      }
    }
    foreign_ = !foreign.empty();
    ::closedir(d);
    std::erase_if(warned_, [&](const ProbeSegmentId& id) { return !listed_.count(id); });
    std::erase_if(unremovable_, [&](const std::string& name) { return !stale.count(name); });
  }

  CollectorContext ctx_;
  bool listedOnce_ = false, scannedOnce_ = false;
  std::chrono::steady_clock::time_point listedAt_, scannedAt_;
  std::optional<std::uint64_t> ownPidns_;  // the agent's pid namespace; 0 if unknown
  std::set<ProbeSegmentId> listed_;        // segments in the folder, but stale ones
  std::unordered_set<pid_t> local_;        // their pids of this namespace
  bool foreign_ = false;                   // some are of another pid namespace
  std::set<ProbeSegmentId> warned_;        // segments whose refusal was logged
  std::set<std::string> unremovable_;      // stale segments we may not remove
  // Per workload, each of its processes' histograms at the previous collect.
  using Histograms =
      std::map<ProbeSegmentId,
               std::array<std::array<std::uint64_t, FS_PROBE_BUCKETS>, FS_PROBE_CLASSES>>;
  std::map<std::string, Histograms> previous_;
};

}  // namespace

std::unique_ptr<Collector> makeProbeCollector(const CollectorContext& ctx) {
  return std::make_unique<ProbeCollector>(ctx);
}

}  // namespace foresight::collect
