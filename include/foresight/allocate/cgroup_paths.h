#pragma once
// The one place that knows where the kernel mounts cgroups; everything else takes a root.

#include <filesystem>

namespace foresight::allocate {

// The default cgroup mount point (v1 controllers below it, or the v2 unified hierarchy).
std::filesystem::path defaultCgroupRoot();

}  // namespace foresight::allocate
