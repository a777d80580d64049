#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "collectors_impl.h"
#include "foresight/collect/probe_reader.h"

namespace foresight::collect {

std::filesystem::path probeSegmentPath(const std::filesystem::path& dir, pid_t pid) {
  return dir / ("foresight-probe-" + std::to_string(pid));
}

Result<fs_probe_segment> readProbeSegment(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return fail(ErrorCode::kNotFound, "{}: no probe segment", file.string());
    return fail(ErrorCode::kIo, "{}: {}", file.string(), std::strerror(errno));
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

class ProbeCollector final : public Collector {
 public:
  explicit ProbeCollector(const CollectorContext& ctx) : ctx_(ctx) {}
  const char* name() const override { return "probe"; }
  Status collect(const Workload&, const std::vector<pid_t>& pids, Sample& out) override {
    fs_probe_counters sum[FS_PROBE_CLASSES] = {};
    int seen = 0;
    for (pid_t pid : pids) {
      auto seg = readProbeSegment(probeSegmentPath(ctx_.probe_dir, pid));
      if (!seg) continue;  // this process runs without the probe
      ++seen;
      for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
        sum[k].calls += seg->c[k].calls;
        sum[k].errors += seg->c[k].errors;
        sum[k].bytes += seg->c[k].bytes;
        sum[k].total_ns += seg->c[k].total_ns;
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
    return ok();
  }

 private:
  CollectorContext ctx_;
};

}  // namespace

std::unique_ptr<Collector> makeProbeCollector(const CollectorContext& ctx) {
  return std::make_unique<ProbeCollector>(ctx);
}

}  // namespace foresight::collect
