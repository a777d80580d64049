// The one module that names the kernel's mount points; the rest of the code takes HostPaths.
#include "foresight/collect/paths.h"

namespace foresight::collect {

namespace {
// Relative to the injected root, so "/" gives the live /sys/fs/cgroup and /proc.
constexpr const char* kCgroupMount = "sys/fs/cgroup";
constexpr const char* kProcMount = "proc";
constexpr const char* kSysMount = "sys";
}  // namespace

std::filesystem::path HostPaths::proc() const { return root_ / kProcMount; }
std::filesystem::path HostPaths::sys() const { return root_ / kSysMount; }
std::filesystem::path HostPaths::cgroupMount() const { return root_ / kCgroupMount; }
std::filesystem::path HostPaths::procPid(int pid) const {
  return root_ / kProcMount / std::to_string(pid);
}

}  // namespace foresight::collect
