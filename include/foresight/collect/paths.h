#pragma once
// Where the host's kernel interfaces live. Everything that reads /proc or the cgroup tree goes
// through HostPaths so that tests point it at a captured fixture tree instead of the live host.
//
// Thread-safety: immutable after construction; safe to share.

#include <filesystem>
#include <string>

namespace foresight::collect {

class HostPaths {
 public:
  // root "/" is the live host; a fixture folder mirrors its layout (proc/, sys/fs/cgroup/).
  explicit HostPaths(std::filesystem::path root = "/") : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path proc() const;
  std::filesystem::path sys() const;
  std::filesystem::path cgroupMount() const;
  std::filesystem::path procPid(int pid) const;

 private:
  std::filesystem::path root_;
};

}  // namespace foresight::collect
