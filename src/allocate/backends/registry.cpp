#include "foresight/allocate/backend.h"

#include <cstdlib>

namespace foresight::allocate {

Status BackendOptions::set(const std::string& key_value) {
  const auto eq = key_value.find('=');
  if (eq == std::string::npos || eq == 0)
    return fail(ErrorCode::kInvalidArgument, "backend option '{}': expected key=value", key_value);
  values[key_value.substr(0, eq)] = key_value.substr(eq + 1);
  return ok();
}

std::optional<double> optionSeconds(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(v >= 0 && v <= 3600)) return std::nullopt;
  return v;
}

namespace {
class MisconfiguredBackend final : public Backend {
 public:
  MisconfiguredBackend(std::string name, Error e) : name_(std::move(name)), e_(std::move(e)) {}
  std::string name() const override { return name_; }
  Result<Allocation> current(const std::string&) override { return tl::unexpected(e_); }
  Status apply(const std::string&, const Allocation&) override { return tl::unexpected(e_); }
  Status configured() const override { return tl::unexpected(e_); }

 private:
  std::string name_;
  Error e_;
};
}  // namespace

std::unique_ptr<Backend> makeMisconfiguredBackend(std::string name, Error error) {
  return std::make_unique<MisconfiguredBackend>(std::move(name), std::move(error));
}

void registerBackends(BackendRegistry& registry) {
  registry.add("cgroup-v1",
               "cgroup v1: cpu.cfs_quota_us, memory.limit_in_bytes, blkio.throttle.* "
               "(options: root, io_device=MAJ:MIN)",
               makeCgroupV1Backend, {"root", "io_device"});
  registry.add("cgroup-v2",
               "cgroup v2: cpu.max, memory.high/memory.max, io.max "
               "(options: root, io_device=MAJ:MIN, memory_high_ratio)",
               makeCgroupV2Backend, {"root", "io_device", "memory_high_ratio"});
  registry.add("systemd",
               "systemd unit: CPUQuota, MemoryMax, MemoryHigh and IO*BandwidthMax through systemd's D-Bus API, kept by systemd "
               "until reboot (options: bus=system|private|ADDRESS, root, timeout=SECONDS (5), "
               "max_age=SECONDS (10), memory_high_ratio, io_device=MAJ:MIN)",
               makeSystemdBackend, {"bus", "root", "timeout", "max_age", "memory_high_ratio", "io_device"});
  registry.add("auto",
               "this host: systemd units through systemd where PID 1 is systemd, other cgroups "
               "through the cgroup files, v1 or v2 as mounted (options: cgroup=v1|v2, "
               "systemd=yes|no (default: detected), root, io_device, memory_high_ratio, bus, timeout, max_age)",
               makeHostBackend,
               {"cgroup", "systemd", "root", "io_device", "memory_high_ratio", "bus", "timeout", "max_age"});
  registry.add("libvirt",
               "libvirt domain: live vCPUs, memory balloon and a disk's I/O limits (options: uri, balloon_wait, "
               "disk)",
               makeLibvirtBackend, {"uri", "balloon_wait", "disk"});
  registry.add("kubernetes",
               "Kubernetes in-place pod resize or VPA recommendation (options: mode=resize|vpa, "
               "kubeconfig, context, server (refuse another), resize_timeout, recommender, "
               "lower_ratio, upper_ratio, service_account_dir)",
               makeKubernetesBackend,
               {"mode", "kubeconfig", "context", "server", "resize_timeout", "recommender",
                "lower_ratio", "upper_ratio", "service_account_dir"});
  registry.add("dry-run", "logs what it would do; changes nothing",
               [](const BackendOptions&) { return makeDryRunBackend(nullptr); });
}

}  // namespace foresight::allocate
