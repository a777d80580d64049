#include "foresight/allocate/allocation.h"

#include <gtest/gtest.h>

#include <cmath>

namespace foresight::allocate {
namespace {

TEST(ParseBytes, UnitsAreBinaryMultiples) {
  EXPECT_EQ(*parseBytes("1048576"), 1048576.0);
  EXPECT_EQ(*parseBytes("512M"), 536870912.0);
  EXPECT_EQ(*parseBytes("2G"), 2147483648.0);
  EXPECT_EQ(*parseBytes("1.5GiB"), 1610612736.0);
  EXPECT_EQ(*parseBytes("4k"), 4096.0);
  EXPECT_EQ(*parseBytes("100B"), 100.0);
  EXPECT_FALSE(parseBytes("two gigs"));
  EXPECT_FALSE(parseBytes("2X"));
  EXPECT_FALSE(parseBytes("-1G"));
}

// 2^62 bytes, the most the backends write: 4194304T.
TEST(ParseBytes, RefusesSizesFromTwoToTheSixtyTwo) {
  EXPECT_EQ(*parseBytes("4194303T"), 4194303.0 * 1024 * 1024 * 1024 * 1024);  // just below
  for (const char* s : {"1e30", "16777216T", "8388608T", "4194304T", "1e19"}) {
    auto v = parseBytes(s);
    ASSERT_FALSE(v) << s;
    EXPECT_NE(v.error().message.find("too large"), std::string::npos) << v.error().message;
  }
}

TEST(AllocationJson, RoundTripsIncludingUnlimited) {
  Allocation a;
  a[Resource::kCpu] = 1.5;
  a[Resource::kMemory] = INFINITY;
  const auto j = toJson(a);
  EXPECT_EQ(j.dump(), R"({"cpu":1.5,"memory":"unlimited"})");
  auto back = allocationFromJson(j);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, a);
  EXPECT_FALSE(allocationFromJson(nlohmann::json::parse(R"({"gpu": 1})")));
  EXPECT_EQ(format(a), "cpu=1.5 memory=unlimited");
}

}  // namespace
}  // namespace foresight::allocate
