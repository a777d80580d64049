#include <gtest/gtest.h>

#include "foresight/core/log.h"

namespace foresight {
namespace {

using namespace std::chrono_literals;

TEST(RepeatedLog, SaysARecurringProblemOnceAMinuteAndAChangeAtOnce) {
  RepeatedLog log;
  const auto t0 = RepeatedLog::Clock::time_point{} + 1000s;
  std::size_t held = 99;
  EXPECT_TRUE(log.due("/a", "cannot connect", t0, held));
  EXPECT_EQ(held, 0u);
  for (int round = 1; round < 60; ++round) EXPECT_FALSE(log.due("/a", "cannot connect", t0 + round * 1s, held));
  EXPECT_TRUE(log.due("/b", "cannot connect", t0 + 30s, held));  // another key is its own
  EXPECT_TRUE(log.due("/a", "cannot connect", t0 + 60s, held));
  EXPECT_EQ(held, 59u);
  EXPECT_TRUE(log.due("/a", "no such unit", t0 + 61s, held));  // a different message: at once
  EXPECT_EQ(held, 0u);
  log.forget("/a");  // recovered: its next failure is news
  EXPECT_TRUE(log.due("/a", "no such unit", t0 + 62s, held));
}

}  // namespace
}  // namespace foresight
