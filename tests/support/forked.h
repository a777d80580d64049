#pragma once
// Runs a piece of a test in a forked child that cannot start a thread: how a test makes
// std::thread's start fail on demand.
#include <grp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <string>

namespace foresight::test_support {

// The child's exit status: body's return value, 10/11 when the limit could not be set, or -1 with
// `signal` set when the child was killed (e.g. by std::terminate's abort).
//
// The child may own no process (RLIMIT_NPROC 0, so every clone fails with EAGAIN); root is
// exempt from that limit, so as root the child first becomes nobody. An address-space limit
// alone was not enough: glibc keeps the stacks of threads that ended for reuse, so after earlier
// tests had run threads a new one could start without mapping anything.
inline int runWithoutRoomForThreads(const std::function<int()>& body, int* signal = nullptr) {
  const pid_t child = ::fork();
  if (child < 0) return -2;
  if (child == 0) {
    if (::geteuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
      _exit(10);
    const rlimit none{0, 0};
    if (::setrlimit(RLIMIT_NPROC, &none) != 0) _exit(11);
    _exit(body());
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return -2;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (signal) *signal = WTERMSIG(status);
  return -1;
}

}  // namespace foresight::test_support
