#pragma once
// cgroup backends. A workload is a cgroup path relative to the hierarchy, e.g. "foresight/web".
// cgroup v1 looks under <root>/cpu, <root>/memory and <root>/blkio; cgroup v2 under <root>.
// The root is injected so that tests run against a fixture tree; cgroup_paths.h holds the only
// default. All file access goes through CgroupFiles so that tests can inject a failing write.
//
// Thread-safety: none; one backend per thread.

#include <filesystem>
#include <memory>
#include <string>

#include "foresight/allocate/backend.h"

namespace foresight::allocate {

// Reads and writes one cgroup control file. Errors name the file.
class CgroupFiles {
 public:
  virtual ~CgroupFiles() = default;
  virtual Result<std::string> read(const std::filesystem::path& file) = 0;
  // One write() call: cgroup files take a whole value per write.
  virtual Status write(const std::filesystem::path& file, const std::string& value) = 0;
  virtual bool exists(const std::filesystem::path& path) = 0;
};
std::unique_ptr<CgroupFiles> makeRealCgroupFiles();

struct CgroupConfig {
  std::filesystem::path root;       // the hierarchy's mount point (v1: parent of cpu/, memory/)
  std::string io_device;            // "MAJ:MIN" for disk_io limits; empty: disk_io is not managed
  double memory_high_ratio = 1.0;   // v2: memory.high = ratio * memory.max (1 = same value)
};

std::unique_ptr<Backend> makeCgroupV1Backend(CgroupConfig config,
                                             std::unique_ptr<CgroupFiles> files);
std::unique_ptr<Backend> makeCgroupV2Backend(CgroupConfig config,
                                             std::unique_ptr<CgroupFiles> files);

}  // namespace foresight::allocate
