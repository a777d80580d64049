#include "foresight/core/parallel.h"

#include <gtest/gtest.h>

#include <numeric>

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

}  // namespace
}  // namespace foresight
