#pragma once
// Workloads (a cgroup or a process tree), the cgroup layout of a host, and discovery.
//
// Thread-safety: plain values and free functions; CgroupLayout is immutable once detected.

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "foresight/collect/paths.h"
#include "foresight/core/result.h"

namespace foresight::collect {

enum class CgroupVersion { kNone, kV1, kV2, kHybrid };
const char* toString(CgroupVersion v);

// Where each controller's hierarchy is mounted. v2 (and the hybrid "unified" part) has one
// folder for all controllers; v1 has one per controller, possibly shared ("cpu,cpuacct").
struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kNone;
  std::filesystem::path unified;                              // v2 or hybrid: the v2 mount
  std::map<std::string, std::filesystem::path> controllers;  // v1: "cpu" -> its mount

  std::optional<std::filesystem::path> v1(const std::string& controller) const;
  // Folder of the hierarchy used to list cgroups and their processes.
  std::filesystem::path reference() const;
};

// Looks at the cgroup mount under paths. No cgroup at all is kNone, not an error (a process-tree
// workload still works).
CgroupLayout detectCgroupLayout(const HostPaths& paths);

struct Workload {
  enum class Kind { kCgroup, kProcessTree };
  Kind kind = Kind::kCgroup;
  std::string id;      // stable name: the cgroup path, or "pid-<root pid>"
  std::string cgroup;  // path inside the hierarchy, starting with '/' (kCgroup)
  pid_t root_pid = 0;  // kProcessTree
};

// Folder of a cgroup ("/a/b", or "/" for the root) under a hierarchy's mount.
std::filesystem::path cgroupPath(const std::filesystem::path& mount, const std::string& cgroup);

// A file name for a workload id, different for different ids: letters, digits, '.' and '-' stay,
// '/' becomes '_', any other byte ('_' too) %XX ("/system.slice/a_b.service" ->
// "_system.slice_a%5Fb.service"); a name longer than 200 bytes keeps its first 183 and ends in
// '~' and a 64-bit hash of the id. Names record's CSV files and the agent's state files.
std::string workloadFileName(std::string_view id);

// The pids of a cgroup.procs text, one a line.
std::vector<pid_t> parsePids(std::string_view text);

// Processes of a workload now: cgroup.procs, or the root pid and its descendants. A vanished
// workload is kNotFound.
Result<std::vector<pid_t>> workloadPids(const HostPaths& paths, const CgroupLayout& layout,
                                        const Workload& w);

// The cgroups a process is in, one per hierarchy (/proc/PID/cgroup), as workload cgroup paths;
// the root ("/") left out. Empty when the file cannot be read (a fixture root, a gone process).
std::set<std::string> cgroupsOfProcess(const HostPaths& paths, pid_t pid);

// The subfolders of a folder; discovery lists through one so tests can make a listing fail.
using SubdirLister = std::function<Result<std::vector<std::filesystem::path>>(const std::filesystem::path& dir)>;
SubdirLister systemSubdirLister();

// All cgroups under the reference hierarchy (root excluded) down to max_depth, sorted by path;
// with only_populated, those whose cgroup.procs is not empty. A cgroup that cannot be listed
// (removed during the walk) loses only what is below it; an unlistable root is an error.
Result<std::vector<Workload>> discoverCgroups(const HostPaths& paths, const CgroupLayout& layout,
                                              int max_depth, bool only_populated,
                                              const SubdirLister& list = systemSubdirLister());

// Selector: "pid:N" (process tree), "cgroup:/path", "cmd:REGEX" (process trees of every process
// whose command line matches, excluding descendants of another match).
Result<std::vector<Workload>> selectWorkloads(const HostPaths& paths, const CgroupLayout& layout,
                                              const std::string& selector);

// Parent of each live pid, from /proc/<pid>/stat; used for process trees.
std::map<pid_t, pid_t> readParents(const HostPaths& paths);

}  // namespace foresight::collect
