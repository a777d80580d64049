// The `auto` backend: this host's workloads, each through what owns its cgroup. On a host whose
// PID 1 is systemd, a unit's cgroup (system.slice/nginx.service) belongs to systemd, which writes
// its own settings back over a hand-written cpu.max at the next daemon-reload; its limits go
// through systemd. Every other cgroup (one `foresight run -- CMD` made, a delegated subtree, a
// container runtime's own) goes to the cgroup files, v1 or v2 as mounted.
//
// A Kubernetes pod's cgroup is kubelet's and a libvirt guest's libvirt's: both are refused. Which
// way a workload goes follows from its name and the two settings pinned() stores with each audit
// record (cgroup=v1|v2, systemd=yes|no), so a rollback reaches the same place.
#include <systemd/sd-daemon.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "foresight/allocate/backend.h"
#include "foresight/allocate/cgroup_paths.h"
#include "systemd_units.h"

namespace foresight::allocate {
namespace {

class HostBackend final : public Backend {
 public:
  HostBackend(std::string cgroup, bool systemd, std::unique_ptr<Backend> files, std::unique_ptr<Backend> units)
      : cgroup_(std::move(cgroup)), systemd_(systemd), files_(std::move(files)), units_(std::move(units)) {}

  std::string name() const override { return "auto"; }

  Status configured() const override {
    if (auto st = files_->configured(); !st) return st;
    return units_ ? units_->configured() : ok();
  }
  std::map<std::string, std::string> pinned() const override {
    return {{"cgroup", cgroup_}, {"systemd", systemd_ ? "yes" : "no"}};
  }

  Result<Allocation> current(const std::string& w) override { return via(w, &Backend::current, w); }
  Status apply(const std::string& w, const Allocation& target) override { return via(w, &Backend::apply, w, target); }
  Status applyWithin(const std::string& w, const Allocation& target, const Allocation& lower,
                     const Allocation& upper) override {
    return via(w, &Backend::applyWithin, w, target, lower, upper);
  }
  // A unit's too from its cgroup files where they are there: they tell the working set (page cache
  // the kernel reclaims first left out), where systemd's MemoryCurrent counts the cache. Reading
  // a unit's files is harmless; only writing them is systemd's.
  Result<Allocation> usage(const std::string& w) override {
    auto b = of(w);
    if (!b) return tl::unexpected(b.error());
    if (*b == units_.get())
      if (auto from_files = files_->usage(w)) return from_files;
    return (*b)->usage(w);
  }
  Status manages(const std::string& w) const override {
    auto b = of(w);
    return b ? (*b)->manages(w) : tl::unexpected(b.error());
  }
  Result<nlohmann::json> snapshot(const std::string& w) override { return via(w, &Backend::snapshot, w); }
  Status restore(const std::string& w, const nlohmann::json& snap) override {
    return via(w, &Backend::restore, w, snap);
  }

 private:
  // Cgroups another manager sizes from its own spec, where a limit written behind it is neither in
  // that spec nor safe from its next change. Naming a cgroup backend still reaches them.
  // - A pod's (kubepods/... with cgroupfs, kubepods.slice/... with the systemd driver) is kubelet's:
  //   pods are sized through the API (`foresight recommend`, or the kubernetes backend).
  // - A libvirt domain's (machine-qemu\x2d1\x2dvm.scope registered with machined, or
  //   qemu-1-vm.libvirt-qemu without it; lxc and ch domains alike) is libvirt's: a memory limit
  //   below the guest's RAM plus QEMU's own gets QEMU OOM-killed, the whole guest with it. Guests
  //   are sized through libvirt (the libvirt backend: balloon and vCPUs).
  static Status ownedElsewhere(const std::string& w) {
    for (const auto& part : std::filesystem::path(w)) {
      const std::string p = part.string();
      if (p == "kubepods" || p.starts_with("kubepods.") || p.starts_with("kubepods-"))
        return fail(ErrorCode::kInvalidArgument,
                    "auto: {} is a Kubernetes pod's cgroup, which kubelet owns; size pods through the API "
                    "(foresight recommend, or --backend kubernetes)",
                    w);
      for (const char* driver : {"qemu", "lxc", "ch"})
        if ((p.starts_with(fmt::format("machine-{}\\x2d", driver)) && p.ends_with(".scope")) ||
            p.ends_with(fmt::format(".libvirt-{}", driver)))
          return fail(ErrorCode::kInvalidArgument,
                      "auto: {} is a libvirt domain's cgroup, which libvirt owns (a memory limit below the "
                      "guest's would kill it); size guests through libvirt (foresight allocate --backend libvirt)",
                      w);
    }
    return ok();
  }

  // The backend a workload goes to, or why none.
  Result<Backend*> of(const std::string& w) const {
    if (auto st = ownedElsewhere(w); !st) return tl::unexpected(st.error());
    return units_ && systemdUnitOf(w) ? units_.get() : files_.get();
  }

  // Calls `call` on the workload's backend, or returns why there is none.
  template <typename R, typename... Params, typename... Args>
  R via(const std::string& w, R (Backend::*call)(Params...), Args&&... args) {
    auto b = of(w);
    if (!b) return tl::unexpected(b.error());
    return ((*b)->*call)(std::forward<Args>(args)...);
  }

  std::string cgroup_;
  bool systemd_;
  std::unique_ptr<Backend> files_, units_;
};

}  // namespace

std::unique_ptr<Backend> makeHostBackend(const BackendOptions& options) {
  const std::filesystem::path root = options.get("root", defaultCgroupRoot().string());
  std::string cgroup = options.get("cgroup");
  if (cgroup.empty()) {
    // As the kernel mounted it: v2 alone has cgroup.controllers at the root; v1 and hybrid
    // (v2 beside v1 controllers) have a directory per controller there.
    std::error_code ec;
    if (std::filesystem::exists(root / "cgroup.controllers", ec)) cgroup = "v2";
    else if (std::filesystem::is_directory(root / "cpu", ec)) cgroup = "v1";
    else
      return makeMisconfiguredBackend(
          "auto", Error{ErrorCode::kUnavailable,
                        fmt::format("auto: no cgroup hierarchy at {} (neither cgroup.controllers nor a cpu "
                                    "directory); give -o root= or choose a backend",
                                    root.string())});
  }
  if (cgroup != "v1" && cgroup != "v2")
    return makeMisconfiguredBackend(
        "auto", Error{ErrorCode::kInvalidArgument, fmt::format("auto option cgroup='{}': expected v1 or v2", cgroup)});
  // sd_booted(): whether PID 1 is systemd, as systemd's own tools decide it.
  const std::string systemd = options.get("systemd", sd_booted() > 0 ? "yes" : "no");
  if (systemd != "yes" && systemd != "no")
    return makeMisconfiguredBackend(
        "auto", Error{ErrorCode::kInvalidArgument, fmt::format("auto option systemd='{}': expected yes or no", systemd)});

  BackendOptions files_options, units_options;
  for (const char* key : {"root", "io_device", "memory_high_ratio"})
    if (auto it = options.values.find(key); it != options.values.end()) files_options.values.insert(*it);
  for (const char* key : {"bus", "timeout", "max_age", "memory_high_ratio", "io_device"})
    if (auto it = options.values.find(key); it != options.values.end()) units_options.values.insert(*it);
  auto files = cgroup == "v1" ? makeCgroupV1Backend(files_options) : makeCgroupV2Backend(files_options);
  auto units = systemd == "yes" ? makeSystemdBackend(units_options) : nullptr;
  return std::make_unique<HostBackend>(cgroup, systemd == "yes", std::move(files), std::move(units));
}

}  // namespace foresight::allocate
