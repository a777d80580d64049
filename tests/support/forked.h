#pragma once
// Runs a piece of a test in a forked child whose address space ends 4 MiB above what is mapped
// now, so no thread's 8 MiB stack fits: how a test makes std::thread's start fail on demand.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <string>

namespace foresight::test_support {

// The child's exit status: body's return value, 10/11 when the limit could not be set, or -1 with
// `signal` set when the child was killed (e.g. by std::terminate's abort).
inline int runWithoutRoomForThreads(const std::function<int()>& body, int* signal = nullptr) {
  const pid_t child = ::fork();
  if (child < 0) return -2;
  if (child == 0) {
    long vm_kib = 0;
    std::ifstream status("/proc/self/status");
    for (std::string key; status >> key;)
      if (key == "VmSize:") status >> vm_kib;
    if (vm_kib <= 0) _exit(10);
    const rlim_t limit = static_cast<rlim_t>(vm_kib + 4096) * 1024;
    const rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) _exit(11);
    _exit(body());
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return -2;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (signal) *signal = WTERMSIG(status);
  return -1;
}

}  // namespace foresight::test_support
