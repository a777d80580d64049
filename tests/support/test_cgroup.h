#pragma once
// A cgroup of a test's own: /<name> in every hierarchy the collectors read (v2: the unified
// one; hybrid: the v1 ones and the unified one, where PSI is), removed on destruction. Needs root.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "foresight/collect/workload.h"

namespace foresight::test_support {

// Creates /<name> in every hierarchy the collectors read; removes it on destruction.
class TestCgroup {
 public:
  TestCgroup(const collect::CgroupLayout& layout, const std::string& name) : name_(name) {
    if (layout.version == collect::CgroupVersion::kV2) {
      dirs_.push_back(layout.unified / name);
    } else {
      for (const char* c : {"cpu", "cpuacct", "memory", "blkio"}) {
        if (auto d = layout.v1(c)) dirs_.push_back(*d / name);
      }
      if (layout.version == collect::CgroupVersion::kHybrid) dirs_.push_back(layout.unified / name);
    }
    create();
  }
  ~TestCgroup() { remove(); }
  // Again after remove(), for tests of a cgroup re-created under the same path.
  void create() {
    for (auto& d : dirs_) {
      std::error_code ec;
      std::filesystem::create_directory(d, ec);
      if (ec) { error_ = d.string() + ": " + ec.message(); return; }
    }
  }
  void remove() {
    for (auto& d : dirs_) ::rmdir(d.c_str());
  }
  const std::string& error() const { return error_; }
  void join(pid_t pid) {
    for (auto& d : dirs_) std::ofstream(d / "cgroup.procs") << pid << '\n';
  }

 private:
  std::string name_, error_;
  std::vector<std::filesystem::path> dirs_;
};

}  // namespace foresight::test_support
