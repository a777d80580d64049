// systemd backend: the limits of a systemd unit, set through systemd's D-Bus API rather than in
// its cgroup files. systemd owns its units' cgroups: it writes its own settings (CPUQuota=,
// MemoryMax=, or none) back over a hand-written cpu.max whenever it applies the unit's cgroup
// settings again (`systemctl daemon-reload`, `set-property`, a restart). A limit set with
// SetUnitProperties is systemd's own, kept in a runtime drop-in (/run/systemd/system.control), so it
// survives those and is gone after a reboot, as `systemctl set-property --runtime` does.
//
// A workload is a unit name (nginx.service) or the cgroup path of one (system.slice/nginx.service,
// as `foresight run` names cgroups). cpu is CPUQuotaPerSecUSec, memory MemoryMax and MemoryHigh
// (memory_high_ratio x it, as the cgroup-v2 backend writes memory.high); systemd maps them to
// cgroup v1 (which has no MemoryHigh) or v2 itself.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <systemd/sd-bus.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "foresight/allocate/backend.h"
#include "foresight/core/log.h"
#include "systemd_units.h"
#include "target_checks.h"

namespace foresight::allocate {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr std::uint64_t kInfinity = std::numeric_limits<std::uint64_t>::max();  // USEC_INFINITY, CGROUP_LIMIT_MAX
constexpr const char* kCpuQuota = "CPUQuotaPerSecUSec";
constexpr const char* kMemoryMax = "MemoryMax";
constexpr const char* kMemoryHigh = "MemoryHigh";
// systemd 252 keeps the quota in its runtime drop-in in whole percent, cut down: 1.2346 s per
// second is written "CPUQuota=123%" and reads back as 1.23 s after a daemon-reload (seen against
// Debian's systemd 252 in RealSystemdTest). So quotas go up to whole percent (10 ms per second):
// those read back the same, which keeps apply() idempotent and the limit no lower than asked.
// 1% is also the least the kernel takes (1 ms per 100 ms period).
constexpr std::uint64_t kQuotaStepUsec = 10000, kMinQuotaUsec = 10000;

struct BusUnref {
  void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
struct MessageUnref {
  void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using BusPtr = std::unique_ptr<sd_bus, BusUnref>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageUnref>;

// sd_bus_error freed on scope exit; what() names the D-Bus error as systemctl prints it.
struct BusError {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusError() { sd_bus_error_free(&e); }
  std::string what(int r) const {
    if (sd_bus_error_is_set(&e)) return fmt::format("{}: {}", e.name, e.message ? e.message : "");
    return std::strerror(-r);
  }
};

Result<SystemdUnit> unitOf(const std::string& workload) {
  if (auto unit = systemdUnitOf(workload)) return *unit;
  return fail(ErrorCode::kInvalidArgument,
              "systemd workload '{}': not a unit with resource control (a .service, .scope, "
              ".slice, .socket, .mount or .swap, or its cgroup path below slices only); a cgroup "
              "inside a unit is managed with the cgroup backends",
              workload);
}

// The settings this backend changes, as systemd holds them (kInfinity = none); disk I/O for the
// io_device only.
struct Settings {
  std::uint64_t cpu_quota = kInfinity, memory_max = kInfinity, memory_high = kInfinity;
  std::uint64_t io_read = kInfinity, io_write = kInfinity;
  bool operator==(const Settings&) const = default;
};
// A property of type t, or (per_device) of type a(st): one (device path, value) entry per device.
struct Field {
  const char* key;
  std::uint64_t Settings::*member;
  bool per_device;
};
// Memory first, as the cgroup backends write it.
constexpr Field kFields[] = {{kMemoryMax, &Settings::memory_max, false},
                             {kMemoryHigh, &Settings::memory_high, false},
                             {kCpuQuota, &Settings::cpu_quota, false},
                             {"IOReadBandwidthMax", &Settings::io_read, true},
                             {"IOWriteBandwidthMax", &Settings::io_write, true}};

class SystemdBackend final : public Backend {
 public:
  explicit SystemdBackend(const BackendOptions& o)
      : bus_name_(o.get("bus", "system")), root_(o.get("root", "/")), timeout_text_(o.get("timeout", "5")),
        max_age_text_(o.get("max_age", "10")), memory_high_ratio_(memoryHighRatio(o, "systemd")),
        io_device_(ioDevice(o, "systemd").map([](const std::string& d) {
          // udev's link to the device node; systemd stat()s the path when it applies the limit.
          return d.empty() ? d : "/dev/block/" + d;
        })) {
    timeout_ = optionSeconds(timeout_text_).value_or(0);
    max_age_ = optionSeconds(max_age_text_).value_or(-1);
    unsigned major = 0, minor = 0;
    if (std::sscanf(devicePath().c_str(), "/dev/block/%u:%u", &major, &minor) == 2) io_dev_ = makedev(major, minor);
  }

  std::string name() const override { return "systemd"; }

  Status manages(const std::string& workload) const override {
    return unitOf(workload).map([](const SystemdUnit&) {});
  }

  Status configured() const override {
    if (bus_name_.empty()) return fail(ErrorCode::kInvalidArgument, "systemd: -o bus= is empty");
    if (timeout_ == 0)
      return fail(ErrorCode::kInvalidArgument, "systemd option timeout='{}': expected seconds in (0, 3600]",
                  timeout_text_);
    if (max_age_ < 0)
      return fail(ErrorCode::kInvalidArgument, "systemd option max_age='{}': expected seconds in [0, 3600]",
                  max_age_text_);
    if (!io_device_) return tl::unexpected(io_device_.error());
    return memory_high_ratio_.map([](double) {});
  }

  // The planner asks every round (every second in `foresight run`) for every unit, and each read is
  // four calls to PID 1, which serves the whole host from one thread. So current() may answer
  // from a read up to max_age old (10 s); a change (apply, restore) and a snapshot read afresh,
  // so a limit set behind Foresight's back is seen at the latest max_age later and never written
  // over from a stale read, and the read after a change sees systemd's value.
  Result<Allocation> current(const std::string& workload) override {
    auto unit = unitOf(workload);
    if (!unit) return tl::unexpected(unit.error());
    auto hit = cache_.find(unit->name);
    const bool recent = hit != cache_.end() && std::chrono::steady_clock::now() - hit->second.at <= maxAge();
    auto s = recent ? Result<Settings>(hit->second.settings) : read(workload);
    if (!s) return tl::unexpected(s.error());
    Allocation a;
    if (s->cpu_quota != kInfinity) a[Resource::kCpu] = static_cast<double>(s->cpu_quota) / 1e6;
    if (s->memory_max != kInfinity) a[Resource::kMemory] = static_cast<double>(s->memory_max);
    if (s->io_read != kInfinity) a[Resource::kDiskIo] = static_cast<double>(s->io_read);
    return a;
  }

  Result<Allocation> usage(const std::string& workload) override {
    auto unit = unitOf(workload);
    if (!unit) return tl::unexpected(unit.error());
    auto path = unitPath(*unit);
    if (!path) return tl::unexpected(path.error());
    auto mem = property(*unit, *path, "MemoryCurrent");
    if (!mem) return tl::unexpected(mem.error());
    Allocation a;
    if (*mem != kInfinity) a[Resource::kMemory] = static_cast<double>(*mem);  // none: accounting off
    return a;
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    const std::string what = fmt::format("systemd {}", workload);
    if (target[Resource::kNetwork])
      return fail(ErrorCode::kInvalidArgument, "{}: network is not managed by this backend", what);
    if (target[Resource::kDiskIo] && devicePath().empty())
      return fail(ErrorCode::kInvalidArgument, "{}: disk_io limit needs the io_device=MAJ:MIN option", what);
    if (auto st = checkTarget(target, what); !st) return st;
    auto before = read(workload);
    if (!before) return tl::unexpected(before.error());
    Settings want = *before;
    if (const auto& cpu = target[Resource::kCpu]) want.cpu_quota = cpuQuota(*cpu);
    if (const auto& mem = target[Resource::kMemory]) {
      want.memory_max = std::isinf(*mem) ? kInfinity : roundToPage(*mem);
      // As the cgroup-v2 backend writes memory.high: reclaim and throttling start there.
      want.memory_high = std::isinf(*mem) ? kInfinity : roundToPage(*mem * memory_high_ratio_.value_or(1.0));
    }
    if (const auto& io = target[Resource::kDiskIo])  // both directions, as the cgroup backends
      want.io_read = want.io_write = std::isinf(*io) ? kInfinity : static_cast<std::uint64_t>(std::llround(*io));
    return change(workload, *before, want);
  }

  Result<nlohmann::json> snapshot(const std::string& workload) override {
    auto s = read(workload);
    if (!s) return tl::unexpected(s.error());
    nlohmann::json snap;
    for (const auto& f : kFields)
      if (!f.per_device || !devicePath().empty()) snap[f.key] = (*s).*f.member;
    return snap;
  }

  Status restore(const std::string& workload, const nlohmann::json& snap) override {
    const std::string what = fmt::format("systemd {}", workload);
    if (!snap.is_object()) return fail(ErrorCode::kParse, "{}: snapshot is not an object", what);
    auto before = read(workload);
    if (!before) return tl::unexpected(before.error());
    Settings want = *before;
    for (const auto& f : kFields) {
      if (!snap.contains(f.key) || (f.per_device && devicePath().empty())) continue;
      if (!snap[f.key].is_number_unsigned())
        return fail(ErrorCode::kParse, "{}: snapshot {} is not a whole number", what, f.key);
      want.*f.member = snap[f.key].get<std::uint64_t>();
    }
    return change(workload, *before, want);
  }

 private:
  static std::uint64_t cpuQuota(double cores) {
    if (std::isinf(cores)) return kInfinity;
    const auto usec = static_cast<std::uint64_t>(std::ceil(cores * 1e6 / kQuotaStepUsec - 1e-9)) * kQuotaStepUsec;
    return std::max(usec, kMinQuotaUsec);
  }

  // One SetUnitProperties call with what differs. systemd checks every property before it sets
  // any, so a refusal changes nothing; should a call fail after all, what it changed is set back.
  Status change(const std::string& workload, const Settings& before, const Settings& want) {
    if (want == before) return ok();
    auto unit = unitOf(workload);
    if (!unit) return tl::unexpected(unit.error());
    cache_.erase(unit->name);
    auto st = setProperties(unit->name, before, want);
    if (st) return ok();
    std::string undo;
    if (auto now = read(workload); now && !(*now == before)) {
      auto back = setProperties(unit->name, *now, before);
      undo = back ? " (restored)" : "; restoring failed too: " + back.error().message;
    }
    return fail(st.error().code, "{}{}", st.error().message, undo);
  }

  Status setProperties(const std::string& unit, const Settings& from, const Settings& to) {
    std::string said;
    for (const auto& f : kFields)
      if (from.*f.member != to.*f.member)
        said += fmt::format(" {}={}{}", f.key, f.per_device ? devicePath() + " " : "",
                            to.*f.member == kInfinity ? "infinity" : std::to_string(to.*f.member));
    BusError err;
    auto r = onBus(err, [&](sd_bus* b) {
      sd_bus_message* raw = nullptr;
      int r = sd_bus_message_new_method_call(b, &raw, kSystemd, kManagerPath, kManager, "SetUnitProperties");
      MessagePtr m(raw);
      if (r >= 0) r = sd_bus_message_append(m.get(), "sb", unit.c_str(), 1);  // runtime: until reboot
      if (r >= 0) r = sd_bus_message_open_container(m.get(), 'a', "(sv)");
      // A device's entry replaces that device's entry only; UINT64_MAX is no limit.
      for (const auto& f : kFields)
        if (r >= 0 && from.*f.member != to.*f.member)
          r = f.per_device ? sd_bus_message_append(m.get(), "(sv)", f.key, "a(st)", 1, devicePath().c_str(), to.*f.member)
                           : sd_bus_message_append(m.get(), "(sv)", f.key, "t", to.*f.member);
      if (r >= 0) r = sd_bus_message_close_container(m.get());
      if (r >= 0) r = sd_bus_call(b, m.get(), 0, &err.e, nullptr);
      return r;
    });
    if (!r) return tl::unexpected(r.error());
    if (*r < 0) return fail(errorCode(err), "systemd {}: cannot set{}: {}", unit, said, err.what(*r));
    spdlog::debug("systemd {}: set{}", unit, said);
    return ok();
  }

  // Reads afresh, and keeps what it read for current().
  Result<Settings> read(const std::string& workload) {
    auto unit = unitOf(workload);
    if (!unit) return tl::unexpected(unit.error());
    cache_.erase(unit->name);
    auto path = unitPath(*unit);
    if (!path) return tl::unexpected(path.error());
    Settings s;
    for (const auto& f : kFields) {
      if (f.per_device && devicePath().empty()) continue;
      auto v = f.per_device ? deviceProperty(*unit, *path, f.key) : property(*unit, *path, f.key);
      if (!v) return tl::unexpected(v.error());
      s.*f.member = *v;
    }
    cache_[unit->name] = {s, std::chrono::steady_clock::now()};
    return s;
  }

  // GetUnit: the unit must be loaded (one that is not has no cgroup to limit).
  Result<std::string> unitPath(const SystemdUnit& unit) {
    BusError err;
    sd_bus_message* raw = nullptr;
    auto r = onBus(err, [&](sd_bus* b) {
      return sd_bus_call_method(b, kSystemd, kManagerPath, kManager, "GetUnit", &err.e, &raw, "s", unit.name.c_str());
    });
    MessagePtr reply(raw);
    if (!r) return tl::unexpected(r.error());
    if (*r < 0) return fail(errorCode(err), "systemd {}: {}", unit.name, err.what(*r));
    const char* path = nullptr;
    if (sd_bus_message_read(reply.get(), "o", &path) < 0)
      return fail(ErrorCode::kParse, "systemd {}: GetUnit answered without an object path", unit.name);
    return std::string(path);
  }

  Result<std::uint64_t> property(const SystemdUnit& unit, const std::string& path, const char* key) {
    BusError err;
    std::uint64_t v = 0;
    auto r = onBus(err, [&](sd_bus* b) {
      return sd_bus_get_property_trivial(b, kSystemd, path.c_str(), unit.interface.c_str(), key, &err.e, 't', &v);
    });
    if (!r) return tl::unexpected(r.error());
    if (*r < 0) return fail(errorCode(err), "systemd {}: cannot read {}: {}", unit.name, key, err.what(*r));
    return v;
  }

  // The io_device's entry of an a(st) property (none: kInfinity): the one under the path this
  // backend writes (/dev/block/MAJ:MIN), as systemd keeps paths as given; else the last under
  // another node of the same disk (`/dev/sda`, as unit files name disks), the one systemd applies
  // last. Without that, a unit's own limit read as none, and a rollback wrote "none" for the path
  // written, after the unit's entry: lifting the limit it had. Only paths under /dev are looked
  // at: a file elsewhere (systemd takes the disk of the file system holding it) is not matched,
  // and a stat() there could hang the sampling round on a dead network mount.
  Result<std::uint64_t> deviceProperty(const SystemdUnit& unit, const std::string& path, const char* key) {
    BusError err;
    sd_bus_message* raw = nullptr;
    auto r = onBus(err, [&](sd_bus* b) {
      return sd_bus_get_property(b, kSystemd, path.c_str(), unit.interface.c_str(), key, &err.e, &raw, "a(st)");
    });
    MessagePtr reply(raw);
    if (!r) return tl::unexpected(r.error());
    if (*r < 0) return fail(errorCode(err), "systemd {}: cannot read {}: {}", unit.name, key, err.what(*r));
    std::optional<std::uint64_t> own, same_disk;
    int k = sd_bus_message_enter_container(reply.get(), 'a', "(st)");
    const char* device = nullptr;
    std::uint64_t v = 0;
    while (k > 0 && (k = sd_bus_message_read(reply.get(), "(st)", &device, &v)) > 0) {
      struct stat st{};
      if (devicePath() == device) own = v;
      else if (std::string_view(device).starts_with("/dev/") &&  // devtmpfs: a stat() that cannot hang
               ::stat((root_ / std::filesystem::path(device).relative_path()).c_str(), &st) == 0 &&
               S_ISBLK(st.st_mode) && st.st_rdev == io_dev_)
        same_disk = v;
    }
    if (k < 0) return fail(ErrorCode::kParse, "systemd {}: {} is not a list of (device, bytes)", unit.name, key);
    return own ? *own : same_disk.value_or(kInfinity);
  }

  const std::string& devicePath() const {
    static const std::string none;
    return io_device_ ? *io_device_ : none;
  }

  // Runs call(bus), the sd-bus return value; a connection closed under it (dbus-daemon restarted,
  // or systemd re-executed by `systemctl daemon-reexec`, which closes its private socket's
  // connections) is opened again and the call made once more. Every call here is a read or sets
  // values, so making it twice is harmless.
  //
  // The planner asks current() every round, for every unit, from the agent's sampling thread: a
  // hung PID 1 would stop sampling for a timeout per unit per round. So after a call times out,
  // systemd is not asked again for six timeouts (30 s by default); calls meanwhile fail at once.
  template <typename Call>
  Result<int> onBus(BusError& err, Call&& call) {
    const auto now = std::chrono::steady_clock::now();
    if (now < quiet_until_)
      return fail(ErrorCode::kUnavailable, "systemd: {} did not answer within {} s; not asked again for another {:.0f} s",
                  where_, timeout_text_, std::ceil(std::chrono::duration<double>(quiet_until_ - now).count()));
    for (int attempt = 0;; ++attempt) {
      auto b = bus();
      if (!b) return tl::unexpected(b.error());
      sd_bus_error_free(&err.e);
      const int r = call(*b);
      if (r == -ETIMEDOUT) {
        quiet_until_ = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(kQuietTimeouts * timeout_));
        return fail(ErrorCode::kUnavailable, "systemd: {} did not answer within {} s; not asked again for {:g} s",
                    where_, timeout_text_, kQuietTimeouts * timeout_);
      }
      const bool closed = r == -ENOTCONN || r == -ECONNRESET || r == -EPIPE || sd_bus_is_open(*b) <= 0;
      if (r >= 0 || !closed || attempt == 1) return r;
      spdlog::info("systemd: the connection to {} closed; connecting again", bus_name_);
      bus_.reset();
    }
  }

  static ErrorCode errorCode(const BusError& err) {
    if (sd_bus_error_has_name(&err.e, "org.freedesktop.systemd1.NoSuchUnit")) return ErrorCode::kNotFound;
    if (sd_bus_error_has_name(&err.e, SD_BUS_ERROR_INVALID_ARGS)) return ErrorCode::kInvalidArgument;
    return ErrorCode::kIo;
  }

  // Connected on first use: `system` is the system bus (through dbus-daemon; polkit decides who may
  // change units, root may); `private` is systemd's own socket under the root, which needs no
  // dbus-daemon and only root may open (what systemctl uses as root); anything else is the address
  // of a bus.
  Result<sd_bus*> bus() {
    if (bus_) return bus_.get();
    sd_bus* raw = nullptr;
    int r = 0;
    std::string& where = where_;
    if (bus_name_ == "system") {
      where = "the system bus";
      r = sd_bus_open_system(&raw);
    } else {
      const bool direct = bus_name_ == "private";
      const std::string address =
          direct ? "unix:path=" + (root_ / "run/systemd/private").string() : bus_name_;
      where = address;
      r = sd_bus_new(&raw);
      if (r >= 0) r = sd_bus_set_address(raw, address.c_str());
      if (r >= 0) r = sd_bus_set_bus_client(raw, !direct);
      if (r >= 0) r = sd_bus_start(raw);
    }
    if (r >= 0) r = sd_bus_set_method_call_timeout(raw, static_cast<std::uint64_t>(timeout_ * 1e6));
    if (r < 0) {
      sd_bus_flush_close_unref(raw);
      return fail(ErrorCode::kUnavailable, "systemd: cannot connect to {}: {}{}", where, std::strerror(-r),
                  bus_name_ == "system" ? " (as root, -o bus=private reaches systemd without dbus-daemon)" : "");
    }
    bus_.reset(raw);
    return bus_.get();
  }

  std::chrono::steady_clock::duration maxAge() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(max_age_));
  }

  static constexpr double kQuietTimeouts = 6;
  std::string bus_name_;
  std::filesystem::path root_;
  std::string timeout_text_;
  std::string max_age_text_;
  Result<double> memory_high_ratio_;
  Result<std::string> io_device_;  // /dev/block/MAJ:MIN, or empty without io_device
  dev_t io_dev_ = 0;                // the same as a device number (0 without it)
  double timeout_ = 0;   // seconds; 0: the option did not read
  double max_age_ = -1;  // seconds; < 0: the option did not read
  struct Read {
    Settings settings;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, Read> cache_;  // by unit
  std::string where_;   // the bus, as errors name it
  std::chrono::steady_clock::time_point quiet_until_{};
  BusPtr bus_;
};

}  // namespace

std::optional<SystemdUnit> systemdUnitOf(const std::string& workload) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".service", "Service"}, {".scope", "Scope"}, {".slice", "Slice"},
      {".socket", "Socket"},   {".mount", "Mount"}, {".swap", "Swap"}};
  const std::filesystem::path path(workload);
  const std::string name = path.filename().string();
  for (const auto& part : path.parent_path().relative_path())
    if (!part.string().ends_with(".slice")) return std::nullopt;
  for (const auto& [suffix, type] : kTypes)
    if (name.size() > std::strlen(suffix) && name.ends_with(suffix))
      return SystemdUnit{name, std::string(kSystemd) + "." + type};
  return std::nullopt;
}

std::unique_ptr<Backend> makeSystemdBackend(const BackendOptions& options) {
  return std::make_unique<SystemdBackend>(options);
}

}  // namespace foresight::allocate
