// cgroup v1 and v2 backends: plan all writes first, then write them in an order the kernel
// accepts, and undo the ones already written when a later one fails.
#include "foresight/allocate/cgroup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "foresight/allocate/cgroup_paths.h"
#include "target_checks.h"
#include "foresight/core/log.h"

namespace foresight::allocate {
namespace fs = std::filesystem;

namespace {

class RealCgroupFiles final : public CgroupFiles {
 public:
  Result<std::string> read(const fs::path& file) override {
    std::ifstream in(file);
    if (!in) return fail(ErrorCode::kIo, "{}: cannot read: {}", file.string(), std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  Status write(const fs::path& file, const std::string& value) override {
    // O_TRUNC as a shell redirection does: the kernel ignores it, fixture files need it.
    const int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
      return fail(ErrorCode::kIo, "{}: cannot open for writing: {}", file.string(),
                  std::strerror(errno));
    const ssize_t n = ::write(fd, value.data(), value.size());
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(value.size()))
      return fail(ErrorCode::kIo, "{}: writing '{}' failed: {}", file.string(), value,
                  n < 0 ? std::strerror(err) : "short write");
    return ok();
  }
  bool exists(const fs::path& path) override {
    std::error_code ec;
    return fs::exists(path, ec);
  }
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

Result<double> parseNumber(const std::string& text, const fs::path& file) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return fail(ErrorCode::kParse, "{}: expected a number, got '{}'", file.string(), text);
}

// Rejects absolute paths and "..": a workload must stay inside the hierarchy.
Status checkWorkload(const std::string& workload) {
  const fs::path p(workload);
  if (workload.empty() || p.is_absolute())
    return fail(ErrorCode::kInvalidArgument,
                "cgroup workload '{}': expected a path relative to the hierarchy", workload);
  for (const auto& part : p)
    if (part == "..")
      return fail(ErrorCode::kInvalidArgument, "cgroup workload '{}': '..' is not allowed",
                  workload);
  return ok();
}

// The CFS quota in microseconds for `cores` at `period_us`, or `unlimited` for inf. The kernel's
// minimum is 1 ms and its maximum 2^44 - 1 us (max_cfs_runtime, kernel/sched/core.c); a quota
// beyond it is refused here, in floating point, before a conversion to an integer could wrap (a
// wrapped 1e17 cores became the 1 ms minimum, i.e. 0.01 cores, reported as applied).
Result<std::string> cfsQuota(double cores, double period_us, const char* unlimited,
                             std::string_view what) {
  if (std::isinf(cores)) return std::string(unlimited);
  constexpr double kMaxQuotaUs = 0x1p44 - 1;
  const double quota = std::max(1000.0, std::round(cores * period_us));
  if (!(quota <= kMaxQuotaUs))
    return fail(ErrorCode::kInvalidArgument,
                "{}: cpu {} cores is a quota of {:.0f} us per {:.0f} us period, above the "
                "kernel's maximum of {:.0f} us; 'max' is no limit",
                what, cores, quota, period_us, kMaxQuotaUs);
  return fmt::format("{:.0f}", quota);
}

struct Write {
  fs::path file;
  std::string value;     // what to write
  std::string restore;   // what puts the previous setting back
};

// Writes in order; on failure writes `restore` of the done ones in reverse order.
Status writeAll(CgroupFiles& files, const std::vector<Write>& writes, const std::string& what) {
  for (std::size_t i = 0; i < writes.size(); ++i) {
    auto st = files.write(writes[i].file, writes[i].value);
    if (st) {
      spdlog::debug("{}: wrote '{}'", writes[i].file.string(), writes[i].value);
      continue;
    }
    std::string undo_errors;
    for (std::size_t j = i; j-- > 0;) {
      auto undo = files.write(writes[j].file, writes[j].restore);
      if (!undo) undo_errors += "; undo failed: " + undo.error().message;
    }
    if (!undo_errors.empty()) spdlog::error("{}: partial change left behind{}", what, undo_errors);
    return fail(st.error().code, "{}: {}{}", what, st.error().message,
                !undo_errors.empty() ? undo_errors
                : i > 0              ? std::string(" (earlier writes restored)")
                                     : std::string());
  }
  return ok();
}

// The value of `key` in lines of "KEY VALUE": blkio.throttle.*_bps_device ("MAJ:MIN BYTES"),
// memory.stat ("inactive_file BYTES").
std::optional<double> keyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  double v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

// The working set, as the kubelet and the profiler count it: `usage_file` (page cache included)
// less the inactive file pages of memory.stat (`inactive_key`), which the kernel reclaims before
// it would OOM-kill. Without memory.stat, the usage. This, not the usage, is what a memory limit
// must stay above: a workload that reads files fills any limit with cache.
Result<double> workingSetOf(CgroupFiles& files, const fs::path& dir, const char* usage_file,
                            const char* inactive_key) {
  const fs::path file = dir / usage_file;
  auto text = files.read(file);
  if (!text) return tl::unexpected(text.error());
  auto used = parseNumber(trim(*text), file);
  if (!used) return tl::unexpected(used.error());
  if (auto stat = files.read(dir / "memory.stat"))
    if (auto inactive = keyedValue(*stat, inactive_key)) return std::max(0.0, *used - *inactive);
  return *used;
}

// ---------------------------------------------------------------------------------------------
class CgroupV1Backend final : public Backend {
 public:
  CgroupV1Backend(CgroupConfig config, std::unique_ptr<CgroupFiles> files)
      : config_(std::move(config)), files_(std::move(files)) {}

  std::string name() const override { return "cgroup-v1"; }

  Result<Allocation> current(const std::string& workload) override {
    if (auto st = checkWorkload(workload); !st) return tl::unexpected(st.error());
    Allocation a;
    auto quota = readNumber(cpuDir(workload) / "cpu.cfs_quota_us");
    if (!quota) return tl::unexpected(quota.error());
    if (*quota >= 0) {
      auto period = readNumber(cpuDir(workload) / "cpu.cfs_period_us");
      if (!period) return tl::unexpected(period.error());
      a[Resource::kCpu] = *quota / *period;
    }
    auto mem = readNumber(memDir(workload) / "memory.limit_in_bytes");
    if (!mem) return tl::unexpected(mem.error());
    // "No limit" reads back as PAGE_COUNTER_MAX pages, just under 2^63.
    if (*mem < kUnlimitedMemory) a[Resource::kMemory] = *mem;
    if (!config_.io_device.empty()) {
      const fs::path file = blkioDir(workload) / "blkio.throttle.read_bps_device";
      auto text = files_->read(file);
      if (!text) return tl::unexpected(text.error());
      a[Resource::kDiskIo] = keyedValue(*text, config_.io_device);
    }
    return a;
  }

  Result<Allocation> usage(const std::string& workload) override {
    if (auto st = checkWorkload(workload); !st) return tl::unexpected(st.error());
    auto mem = workingSetOf(*files_, memDir(workload), "memory.usage_in_bytes", "total_inactive_file");
    if (!mem) return tl::unexpected(mem.error());
    Allocation a;
    a[Resource::kMemory] = *mem;
    return a;
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    const std::string what = fmt::format("cgroup-v1 {}", workload);
    if (auto st = checkTarget(target, what); !st) return st;
    if (auto st = checkWorkload(workload); !st) return st;
    // Only the hierarchies of the resources that change are read: a cpu change needs no memory
    // hierarchy (v1 hosts may not mount one, and a workload may be in only some).
    std::vector<Write> writes;
    // Memory first: it is the write the kernel refuses (EBUSY when it cannot reclaim below the
    // new limit), so a refusal happens before anything else has changed.
    if (target[Resource::kMemory]) {
      const bool unlimited = std::isinf(*target[Resource::kMemory]);
      const auto bytes = unlimited ? 0 : roundToPage(*target[Resource::kMemory]);
      const fs::path file = memDir(workload) / "memory.limit_in_bytes";
      auto old = files_->read(file);
      if (!old) return tl::unexpected(old.error());
      auto have = parseNumber(trim(*old), file);
      if (!have) return tl::unexpected(have.error());
      const bool limited = *have < kUnlimitedMemory;
      const bool same = unlimited ? !limited : (limited && *have == static_cast<double>(bytes));
      if (!same) writes.push_back({file, unlimited ? "-1" : std::to_string(bytes), trim(*old)});
    }
    if (target[Resource::kCpu]) {
      const fs::path quota_file = cpuDir(workload) / "cpu.cfs_quota_us";
      auto period = readNumber(cpuDir(workload) / "cpu.cfs_period_us");
      if (!period) return tl::unexpected(period.error());
      auto quota = cfsQuota(*target[Resource::kCpu], *period, "-1", what);
      if (!quota) return tl::unexpected(quota.error());
      auto old = files_->read(quota_file);
      if (!old) return tl::unexpected(old.error());
      if (trim(*old) != *quota) writes.push_back({quota_file, *quota, trim(*old)});
    }
    if (target[Resource::kDiskIo]) {
      if (config_.io_device.empty())
        return fail(ErrorCode::kInvalidArgument,
                    "{}: disk_io limit needs the io_device=MAJ:MIN option", what);
      // 0 removes the device's rule, i.e. unlimited.
      const long long bps =
          std::isinf(*target[Resource::kDiskIo]) ? 0 : std::llround(*target[Resource::kDiskIo]);
      for (const char* f : {"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"}) {
        const fs::path file = blkioDir(workload) / f;
        auto old = files_->read(file);
        if (!old) return tl::unexpected(old.error());
        const auto prev = keyedValue(*old, config_.io_device);
        if (prev ? std::llround(*prev) == bps : bps == 0) continue;
        // Writing 0 removes a device's rule.
        writes.push_back({file, fmt::format("{} {}", config_.io_device, bps),
                          fmt::format("{} {}", config_.io_device, prev ? std::llround(*prev) : 0)});
      }
    }
    if (writes.empty()) return ok();
    return writeAll(*files_, writes, what);
  }

  Result<nlohmann::json> snapshot(const std::string& workload) override {
    if (auto st = checkWorkload(workload); !st) return tl::unexpected(st.error());
    nlohmann::json snap = nlohmann::json::object();
    for (const fs::path& f :
         {cpuDir(workload) / "cpu.cfs_quota_us", memDir(workload) / "memory.limit_in_bytes"}) {
      auto t = files_->read(f);
      if (!t) return tl::unexpected(t.error());
      snap[f.filename().string()] = trim(*t);
    }
    if (!config_.io_device.empty())
      for (const char* f : kBpsFiles) {
        auto t = files_->read(blkioDir(workload) / f);
        if (!t) return tl::unexpected(t.error());
        const auto v = keyedValue(*t, config_.io_device);
        snap[f] = v ? std::llround(*v) : 0;  // 0: no rule for the device
      }
    return snap;
  }

  Status restore(const std::string& workload, const nlohmann::json& snap) override {
    if (auto st = checkWorkload(workload); !st) return st;
    const std::string what = fmt::format("cgroup-v1 {}", workload);
    if (!snap.is_object()) return fail(ErrorCode::kParse, "{}: snapshot is not an object", what);
    std::vector<Write> writes;
    // Memory first, as in apply(): the write the kernel refuses.
    for (const fs::path& f :
         {memDir(workload) / "memory.limit_in_bytes", cpuDir(workload) / "cpu.cfs_quota_us"}) {
      const std::string key = f.filename().string();
      if (!snap.contains(key)) continue;
      if (!snap[key].is_string())
        return fail(ErrorCode::kParse, "{}: snapshot {} is not text", what, key);
      std::string want = snap[key].get<std::string>();
      auto now = files_->read(f);
      if (!now) return tl::unexpected(now.error());
      if (trim(*now) == want) continue;
      // "No limit" reads back as PAGE_COUNTER_MAX pages; -1 is how it is written.
      if (key == "memory.limit_in_bytes") {
        auto v = parseNumber(want, f);
        if (!v) return tl::unexpected(v.error());
        if (*v >= kUnlimitedMemory) want = "-1";
      }
      writes.push_back({f, want, trim(*now)});
    }
    if (!config_.io_device.empty())
      for (const char* f : kBpsFiles) {
        if (!snap.contains(f)) continue;
        if (!snap[f].is_number_integer())
          return fail(ErrorCode::kParse, "{}: snapshot {} is not a number", what, f);
        const long long want = snap[f].get<long long>();
        const fs::path file = blkioDir(workload) / f;
        auto now = files_->read(file);
        if (!now) return tl::unexpected(now.error());
        const auto have = keyedValue(*now, config_.io_device);
        const long long have_bps = have ? std::llround(*have) : 0;
        if (have_bps != want)
          writes.push_back({file, fmt::format("{} {}", config_.io_device, want),
                            fmt::format("{} {}", config_.io_device, have_bps)});
      }
    if (writes.empty()) return ok();
    return writeAll(*files_, writes, what);
  }

 private:
  static constexpr double kUnlimitedMemory = 4611686018427387904.0;  // 2^62
  static constexpr const char* kBpsFiles[2] = {"blkio.throttle.read_bps_device",
                                               "blkio.throttle.write_bps_device"};

  Result<double> readNumber(const fs::path& file) {
    auto text = files_->read(file);
    if (!text) return tl::unexpected(text.error());
    return parseNumber(trim(*text), file);
  }
  fs::path cpuDir(const std::string& w) const { return config_.root / "cpu" / w; }
  fs::path memDir(const std::string& w) const { return config_.root / "memory" / w; }
  fs::path blkioDir(const std::string& w) const { return config_.root / "blkio" / w; }

  CgroupConfig config_;
  std::unique_ptr<CgroupFiles> files_;
};

// ---------------------------------------------------------------------------------------------
// io.max lines: "MAJ:MIN rbps=N wbps=N riops=max wiops=max"; returns `key` ("rbps" or "wbps")
// for `device`, absent when unlimited.
std::optional<double> ioMaxValue(const std::string& text, const std::string& device,
                                 std::string_view key) {
  const std::string prefix = std::string(key) + "=";
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::string dev, kv;
    if (!(in >> dev) || dev != device) continue;
    while (in >> kv)
      if (kv.rfind(prefix, 0) == 0 && kv != prefix + "max") {
        char* end = nullptr;
        const double v = std::strtod(kv.c_str() + prefix.size(), &end);
        return *end == '\0' ? std::optional<double>(v) : std::nullopt;
      }
  }
  return std::nullopt;
}

class CgroupV2Backend final : public Backend {
 public:
  CgroupV2Backend(CgroupConfig config, std::unique_ptr<CgroupFiles> files)
      : config_(std::move(config)), files_(std::move(files)) {}

  std::string name() const override { return "cgroup-v2"; }

  Result<Allocation> current(const std::string& workload) override {
    if (auto st = checkWorkload(workload); !st) return tl::unexpected(st.error());
    const fs::path dir = config_.root / workload;
    Allocation a;
    auto cpu = files_->read(dir / "cpu.max");
    if (!cpu) return tl::unexpected(cpu.error());
    {
      std::istringstream in(*cpu);
      std::string quota, period;
      if (!(in >> quota >> period))
        return fail(ErrorCode::kParse, "{}: expected 'QUOTA PERIOD', got '{}'",
                    (dir / "cpu.max").string(), trim(*cpu));
      if (quota != "max") {
        auto q = parseNumber(quota, dir / "cpu.max");
        auto p = parseNumber(period, dir / "cpu.max");
        if (!q || !p) return tl::unexpected(q ? p.error() : q.error());
        a[Resource::kCpu] = *q / *p;
      }
    }
    auto mem = readLimit(dir / "memory.max");
    if (!mem) return tl::unexpected(mem.error());
    a[Resource::kMemory] = *mem;
    if (!config_.io_device.empty()) {
      auto io = files_->read(dir / "io.max");
      if (!io) return tl::unexpected(io.error());
      a[Resource::kDiskIo] = ioMaxValue(*io, config_.io_device, "rbps");
    }
    return a;
  }

  Result<Allocation> usage(const std::string& workload) override {
    if (auto st = checkWorkload(workload); !st) return tl::unexpected(st.error());
    auto v = workingSetOf(*files_, config_.root / workload, "memory.current", "inactive_file");
    if (!v) return tl::unexpected(v.error());
    Allocation a;
    a[Resource::kMemory] = *v;
    return a;
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    if (auto st = checkWorkload(workload); !st) return st;
    const fs::path dir = config_.root / workload;
    const std::string what = fmt::format("cgroup-v2 {}", workload);
    if (auto st = checkTarget(target, what); !st) return st;
    std::vector<Write> writes;
    if (target[Resource::kMemory]) {
      const bool unlimited = std::isinf(*target[Resource::kMemory]);
      const auto bytes = unlimited ? 0 : roundToPage(*target[Resource::kMemory]);
      const auto high = roundToPage(static_cast<double>(bytes) * config_.memory_high_ratio);
      if (auto st = memoryWrites(workload, what, unlimited ? "max" : std::to_string(bytes),
                                 unlimited ? "max" : std::to_string(high), writes);
          !st)
        return st;
    }
    if (target[Resource::kCpu]) {
      auto cpu = files_->read(dir / "cpu.max");
      if (!cpu) return tl::unexpected(cpu.error());
      std::istringstream in(*cpu);
      std::string quota, period_text;
      in >> quota >> period_text;
      auto period = parseNumber(period_text, dir / "cpu.max");
      if (!period) return tl::unexpected(period.error());
      auto q = cfsQuota(*target[Resource::kCpu], *period, "max", what);
      if (!q) return tl::unexpected(q.error());
      const std::string value = fmt::format("{} {}", *q, period_text);
      if (trim(*cpu) != value) writes.push_back({dir / "cpu.max", value, trim(*cpu)});
    }
    if (target[Resource::kDiskIo]) {
      if (config_.io_device.empty())
        return fail(ErrorCode::kInvalidArgument,
                    "{}: disk_io limit needs the io_device=MAJ:MIN option", what);
      auto io = files_->read(dir / "io.max");
      if (!io) return tl::unexpected(io.error());
      // The limit is per direction: both are compared and each is restored to its own value.
      const std::string bps = std::isinf(*target[Resource::kDiskIo])
                                  ? "max"
                                  : std::to_string(std::llround(*target[Resource::kDiskIo]));
      const std::string have = ioMaxLine(*io), want = fmt::format("rbps={} wbps={}", bps, bps);
      if (have != want)
        writes.push_back({dir / "io.max", fmt::format("{} {}", config_.io_device, want),
                          fmt::format("{} {}", config_.io_device, have)});
    }
    if (writes.empty()) return ok();
    return writeAll(*files_, writes, what);
  }

  Result<nlohmann::json> snapshot(const std::string& workload) override {
    if (auto st = checkWorkload(workload); !st) return tl::unexpected(st.error());
    const fs::path dir = config_.root / workload;
    nlohmann::json snap = nlohmann::json::object();
    for (const char* f : {"cpu.max", "memory.max", "memory.high"}) {
      auto t = files_->read(dir / f);
      if (!t) return tl::unexpected(t.error());
      snap[f] = trim(*t);
    }
    if (!config_.io_device.empty()) {
      auto io = files_->read(dir / "io.max");
      if (!io) return tl::unexpected(io.error());
      snap["io.max"] = ioMaxLine(*io);
    }
    return snap;
  }

  Status restore(const std::string& workload, const nlohmann::json& snap) override {
    if (auto st = checkWorkload(workload); !st) return st;
    const fs::path dir = config_.root / workload;
    const std::string what = fmt::format("cgroup-v2 {}", workload);
    auto field = [&](const char* key) -> Result<std::optional<std::string>> {
      if (!snap.is_object() || !snap.contains(key)) return std::optional<std::string>();
      if (!snap[key].is_string())
        return fail(ErrorCode::kParse, "{}: snapshot {} is not text", what, key);
      return std::optional<std::string>(snap[key].get<std::string>());
    };
    auto max = field("memory.max"), high = field("memory.high"), cpu = field("cpu.max"),
         io = field("io.max");
    for (auto* f : {&max, &high, &cpu, &io})
      if (!*f) return tl::unexpected(f->error());
    std::vector<Write> writes;
    if (*max && *high)
      if (auto st = memoryWrites(workload, what, **max, **high, writes); !st) return st;
    if (*cpu) {
      auto now = files_->read(dir / "cpu.max");
      if (!now) return tl::unexpected(now.error());
      if (trim(*now) != **cpu) writes.push_back({dir / "cpu.max", **cpu, trim(*now)});
    }
    if (*io && !config_.io_device.empty()) {
      auto now = files_->read(dir / "io.max");
      if (!now) return tl::unexpected(now.error());
      const std::string have = ioMaxLine(*now);
      if (have != **io)
        writes.push_back({dir / "io.max", fmt::format("{} {}", config_.io_device, **io),
                          fmt::format("{} {}", config_.io_device, have)});
    }
    if (writes.empty()) return ok();
    return writeAll(*files_, writes, what);
  }

 private:
  // The device's read and write limits in io.max, as "rbps=N wbps=N" ("max" when unlimited).
  std::string ioMaxLine(const std::string& text) const {
    auto v = [&](const char* key) {
      auto x = ioMaxValue(text, config_.io_device, key);
      return x ? std::to_string(std::llround(*x)) : std::string("max");
    };
    return fmt::format("rbps={} wbps={}", v("rbps"), v("wbps"));
  }

  // memory.max and memory.high to `max` and `high` ("max" or bytes), keeping high <= max at every
  // step: raising writes max first, lowering writes high first. v2 does not refuse a memory.max
  // below usage (it reclaims, then OOM-kills), so one below the working set is refused here.
  Status memoryWrites(const std::string& workload, const std::string& what, const std::string& max,
                      const std::string& high, std::vector<Write>& writes) {
    const fs::path dir = config_.root / workload;
    std::optional<double> bytes;
    if (max != "max") {
      auto b = parseNumber(max, dir / "memory.max");
      if (!b) return tl::unexpected(b.error());
      bytes = *b;
      auto used = usage(workload);  // the working set
      if (!used) return tl::unexpected(used.error());
      const double ws = *(*used)[Resource::kMemory];
      if (*bytes < ws)
        return fail(ErrorCode::kInvalidArgument,
                    "{}: memory.max {} is below the working set {} ({} less inactive_file in "
                    "memory.stat); not applied",
                    what, max, static_cast<std::uint64_t>(ws), (dir / "memory.current").string());
    }
    auto old_max = files_->read(dir / "memory.max");
    auto old_high = files_->read(dir / "memory.high");
    if (!old_max) return tl::unexpected(old_max.error());
    if (!old_high) return tl::unexpected(old_high.error());
    const Write w_max{dir / "memory.max", max, trim(*old_max)};
    const Write w_high{dir / "memory.high", high, trim(*old_high)};
    const bool max_same = w_max.value == w_max.restore, high_same = w_high.value == w_high.restore;
    auto old_bytes = parseLimit(w_max.restore, dir / "memory.max");
    if (!old_bytes) return tl::unexpected(old_bytes.error());
    const bool raising = !bytes || !*old_bytes || *bytes >= **old_bytes;
    if (raising) {
      if (!max_same) writes.push_back(w_max);
      if (!high_same) writes.push_back(w_high);
    } else {
      if (!high_same) writes.push_back(w_high);
      if (!max_same) writes.push_back(w_max);
    }
    return ok();
  }

  // "max" or a byte count; absent when unlimited.
  Result<std::optional<double>> readLimit(const fs::path& file) {
    auto text = files_->read(file);
    if (!text) return tl::unexpected(text.error());
    return parseLimit(trim(*text), file);
  }
  static Result<std::optional<double>> parseLimit(const std::string& v, const fs::path& file) {
    if (v == "max") return std::optional<double>{};
    auto n = parseNumber(v, file);
    if (!n) return tl::unexpected(n.error());
    return std::optional<double>{*n};
  }

  CgroupConfig config_;
  std::unique_ptr<CgroupFiles> files_;
};

Result<CgroupConfig> configFrom(const BackendOptions& options) {
  CgroupConfig c;
  c.root = options.get("root", defaultCgroupRoot().string());
  auto device = ioDevice(options, "cgroup");
  if (!device) return tl::unexpected(device.error());
  c.io_device = *device;
  auto ratio = memoryHighRatio(options, "cgroup");
  if (!ratio) return tl::unexpected(ratio.error());
  c.memory_high_ratio = *ratio;
  return c;
}

}  // namespace

std::unique_ptr<CgroupFiles> makeRealCgroupFiles() { return std::make_unique<RealCgroupFiles>(); }

std::unique_ptr<Backend> makeCgroupV1Backend(CgroupConfig config,
                                             std::unique_ptr<CgroupFiles> files) {
  return std::make_unique<CgroupV1Backend>(std::move(config), std::move(files));
}
std::unique_ptr<Backend> makeCgroupV2Backend(CgroupConfig config,
                                             std::unique_ptr<CgroupFiles> files) {
  return std::make_unique<CgroupV2Backend>(std::move(config), std::move(files));
}
std::unique_ptr<Backend> makeCgroupV1Backend(const BackendOptions& options) {
  auto c = configFrom(options);
  if (!c) return makeMisconfiguredBackend("cgroup-v1", c.error());
  return makeCgroupV1Backend(*c, makeRealCgroupFiles());
}
std::unique_ptr<Backend> makeCgroupV2Backend(const BackendOptions& options) {
  auto c = configFrom(options);
  if (!c) return makeMisconfiguredBackend("cgroup-v2", c.error());
  return makeCgroupV2Backend(*c, makeRealCgroupFiles());
}

}  // namespace foresight::allocate
