#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <map>
#include <optional>
#include <cstring>
#include <string_view>
#include <unordered_set>

#include "collectors_impl.h"
#include "foresight/collect/kernel_files.h"
#include "foresight/collect/probe_reader.h"
#include "foresight/core/log.h"

namespace foresight::collect {

std::filesystem::path probeSegmentPath(const std::filesystem::path& dir, pid_t pid) {
  return dir / ("foresight-probe-" + std::to_string(pid));
}

Result<fs_probe_segment> readProbeSegment(const std::filesystem::path& file,
                                          std::span<const uid_t> owners) {
  // The folder is world-writable (/dev/shm): a FIFO planted under a segment's name blocked a
  // plain open() for good (O_NONBLOCK), and a link could lead anywhere (O_NOFOLLOW).
  int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return fail(ErrorCode::kNotFound, "{}: no probe segment", file.string());
    if (e == ELOOP) return fail(ErrorCode::kParse, "{}: a symbolic link, not a probe segment", file.string());
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

class ProbeCollector final : public Collector {
 public:
  explicit ProbeCollector(const CollectorContext& ctx) : ctx_(ctx) {}
  const char* name() const override { return "probe"; }
  void forget(const std::string& id) override { previous_.erase(id); }
  Status collect(const Workload& w, const std::vector<pid_t>& pids, Sample& out) override {
    // Detail tier, like the per-process files: a cgroup's pid list is only fresh in its detail
    // rounds (Sampler), and segments are named by pid, so a stale list could count a reused pid.
    if (!out.detail) return ok();
    fs_probe_counters sum[FS_PROBE_CLASSES] = {};
    int seen = 0;
    refreshListing();
    for (pid_t pid : pids) {
      if (!withSegment_.count(pid)) continue;
      auto uids = processUids(pid);
      if (!uids) continue;  // exited
      auto seg = readProbeSegment(probeSegmentPath(ctx_.probe_dir, pid), *uids);
      if (!seg) {
        // Skipped, not an error: one bad file must not stop the others being read.
        if (seg.error().code != ErrorCode::kNotFound && warned_.insert(pid).second)
          spdlog::warn("probe: skipping {} (logged once per file)", seg.error().message);
        continue;
      }
      ++seen;
      for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
        sum[k].calls += seg->c[k].calls;
        sum[k].errors += seg->c[k].errors;
        sum[k].bytes += seg->c[k].bytes;
        sum[k].total_ns += seg->c[k].total_ns;
        for (int b = 0; b < FS_PROBE_BUCKETS; ++b) sum[k].hist[b] += seg->c[k].hist[b];
      }
    }
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
    auto& prev = previous_[w.id];
    for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
      std::uint64_t delta[FS_PROBE_BUCKETS], total = 0;
      for (int b = 0; b < FS_PROBE_BUCKETS; ++b) {
        // A process that left takes its counts along: treat a drop as a fresh start.
        delta[b] = sum[k].hist[b] >= prev[k][b] ? sum[k].hist[b] - prev[k][b] : sum[k].hist[b];
        total += delta[b];
        prev[k][b] = sum[k].hist[b];
      }
      if (total == 0) continue;
      const std::uint64_t rank = (total * 99 + 99) / 100;  // ceil(0.99 * total)
      std::uint64_t seen = 0;
      for (int b = 0; b < FS_PROBE_BUCKETS; ++b) {
        seen += delta[b];
        if (seen >= rank) {
          out.add(kP99[k], b == 0 ? 0.0 : std::ldexp(1.0, b) / 1e9);
          break;
        }
      }
    }
    return ok();
  }

 private:
  // Few processes run with the probe: one listing of the segment folder, reused for kReuse
  // (a round), replaces a failed open() per process per round.
  static constexpr auto kReuse = std::chrono::milliseconds(200);
  void refreshListing() {
    const auto now = std::chrono::steady_clock::now();
    if (listed_ && now - listedAt_ < kReuse) return;
    listed_ = true;
    listedAt_ = now;
    withSegment_.clear();
    DIR* d = ::opendir(ctx_.probe_dir.c_str());
    if (!d) return;
    constexpr std::string_view kPrefix = "foresight-probe-";
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (!n.starts_with(kPrefix)) continue;
      n.remove_prefix(kPrefix.size());
      pid_t pid = 0;
      auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), pid);
      if (ec == std::errc() && p == n.data() + n.size()) withSegment_.insert(pid);
    }
    ::closedir(d);
    std::erase_if(warned_, [&](pid_t p) { return !withSegment_.count(p); });
  }

  // Real, effective, saved and filesystem uid: whichever the probe ran as when it created the
  // segment. nullopt when the process is gone.
  std::optional<std::array<uid_t, 4>> processUids(pid_t pid) const {
    auto text = readKernelFile(ctx_.paths.procPid(pid) / "status");
    if (!text) return std::nullopt;
    std::optional<std::array<uid_t, 4>> out;
    forEachLine(*text, [&](std::string_view line) {
      if (out || !line.starts_with("Uid:")) return;
      std::array<uid_t, 4> u{};
      for (std::size_t i = 0; i < u.size(); ++i) {
        const std::string_view f = field(line.substr(4), i);
        if (std::from_chars(f.data(), f.data() + f.size(), u[i]).ec != std::errc()) return;
      }
      out = u;
    });
    return out;
  }

  CollectorContext ctx_;
  bool listed_ = false;
  std::chrono::steady_clock::time_point listedAt_;
  std::unordered_set<pid_t> withSegment_;
  std::unordered_set<pid_t> warned_;  // segments whose refusal was logged
  std::map<std::string, std::array<std::array<std::uint64_t, FS_PROBE_BUCKETS>, FS_PROBE_CLASSES>> previous_;
};

}  // namespace

std::unique_ptr<Collector> makeProbeCollector(const CollectorContext& ctx) {
  return std::make_unique<ProbeCollector>(ctx);
}

}  // namespace foresight::collect
