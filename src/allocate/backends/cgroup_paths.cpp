#include "foresight/allocate/cgroup_paths.h"

namespace foresight::allocate {

std::filesystem::path defaultCgroupRoot() { return "/sys/fs/cgroup"; }

}  // namespace foresight::allocate
