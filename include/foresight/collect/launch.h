#pragma once
// Starts a command as a workload: in a fresh cgroup when the host allows it (root, a writable
// hierarchy), else as a process tree. The child is placed before it execs, so the cgroup sees all
// of its work.
//
// Thread-safety: a LaunchedWorkload is owned by one thread.

#include <sys/types.h>

#include <string>
#include <vector>

#include "foresight/collect/collector.h"

namespace foresight::collect {

class LaunchedWorkload {
 public:
  static Result<LaunchedWorkload> start(const CollectorContext& ctx,
                                        const std::vector<std::string>& argv);
  LaunchedWorkload(LaunchedWorkload&& other) noexcept;
  LaunchedWorkload& operator=(LaunchedWorkload&&) = delete;
  ~LaunchedWorkload();  // terminate(), then removes the cgroup

  const Workload& workload() const { return workload_; }
  pid_t pid() const { return pid_; }
  // Reaps the child without blocking; true once it has exited.
  bool exited();
  int exitCode() const { return exit_code_; }
  // SIGTERM to the command and every process in its cgroup (children it started, also after it
  // exited), SIGKILL (v2: cgroup.kill) to those left after a grace of 1 s; returns once the
  // cgroup is empty (at most about 2 s more; what is left is logged).
  void terminate();

 private:
  LaunchedWorkload() = default;
  Workload workload_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  std::vector<std::string> cgroup_dirs_;
};

}  // namespace foresight::collect
