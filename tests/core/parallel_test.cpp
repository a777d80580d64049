#include "foresight/core/parallel.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <numeric>
#include <string>

namespace foresight {
namespace {

TEST(ParallelFor, VisitsEveryIndexOnce) {
  std::vector<std::atomic<int>> hits(1000);
  parallelFor(hits.size(), 4, [&](std::size_t i, unsigned worker) {
    EXPECT_LT(worker, 4u);
    hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ParallelFor, PropagatesTheFirstException) {
  EXPECT_THROW(parallelFor(100, 2,
                           [](std::size_t i, unsigned) {
                             if (i == 50) throw std::runtime_error("boom");
                           }),
               std::runtime_error);
}

TEST(ParallelFor, ZeroItemsIsFine) {
  int calls = 0;
  parallelFor(0, 2, [&](std::size_t, unsigned) { ++calls; });
  EXPECT_EQ(calls, 0);
}

// When no thread can be started (here: no address space left for a thread's stack), the caller's
// thread does all the work; before, the exception escaped with started threads unjoined, and
// std::terminate aborted the process (seen as `foresight backtest` under `ulimit -v`).
TEST(ParallelFor, WithoutThreadsToSpareTheCallerDoesTheWork) {
  std::vector<char> hits(1000, 0);  // allocated before the limit
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    long vm_kib = 0;
    std::ifstream status("/proc/self/status");
    for (std::string key; status >> key;)
      if (key == "VmSize:") status >> vm_kib;
    if (vm_kib <= 0) _exit(10);
    // 4 MiB above what is mapped now: a thread's 8 MiB stack cannot be mapped.
    const rlim_t limit = static_cast<rlim_t>(vm_kib + 4096) * 1024;
    const rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) _exit(11);
    unsigned max_worker = 0;
    try {
      parallelFor(hits.size(), 4, [&](std::size_t i, unsigned worker) {
        hits[i]++;
        max_worker = std::max(max_worker, worker);
      });
    } catch (...) {
      _exit(12);
    }
    for (char h : hits)
      if (h != 1) _exit(13);
    _exit(max_worker == 0 ? 0 : 14);  // no other thread could start
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace foresight
