#include "foresight/core/parallel.h"

#include <gtest/gtest.h>

#include <numeric>
#include <string>

#include "support/forked.h"

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
  int signal = 0;
  const int rc = test_support::runWithoutRoomForThreads(
      [&] {
        unsigned max_worker = 0;
        try {
          parallelFor(hits.size(), 4, [&](std::size_t i, unsigned worker) {
            hits[i]++;
            max_worker = std::max(max_worker, worker);
          });
        } catch (...) {
          return 12;
        }
        for (char h : hits)
          if (h != 1) return 13;
        return max_worker == 0 ? 0 : 14;  // no other thread could start
      },
      &signal);
  EXPECT_EQ(rc, 0) << "killed by signal " << signal;
}

}  // namespace
}  // namespace foresight
