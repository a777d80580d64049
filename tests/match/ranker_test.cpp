// MatcherRanker: the matcher's ranking of environments as the cost model's machine types.
#include "foresight/match/ranker.h"

#include <gtest/gtest.h>

namespace foresight::match {
namespace {

Result<MatchData> generic() { return loadMatchFolder(MATCH_FIXTURES "/generic"); }

allocate::PriceCatalog catalogOf(std::vector<std::string> names) {
  allocate::PriceCatalog c;
  for (auto& n : names) c.machines.push_back({n, 2, 8e9, 0.1, std::nullopt});
  return c;
}

// sortA completed on 2xsmall (3600 s at $0.2/h) and 4xsmall (2000 s at $0.4/h) and failed on
// 2xbig: its measured runs rank small.x (the instance type of both) before big.x.
TEST(MatcherRanker, OrdersInstanceTypesByTheWorkloadsRanking) {
  auto data = generic();
  ASSERT_TRUE(data) << data.error().message;
  auto r = MatcherRanker::forWorkload(*data, "sortA");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->order(), (std::vector<std::string>{"small.x", "big.x"}));
  // Only the catalog's types are offered to the cost model, in the matcher's order.
  EXPECT_EQ(r->rank({}, catalogOf({"big.x", "m4.large"})), std::vector<std::string>{"big.x"});
  EXPECT_EQ(r->rank({}, catalogOf({"big.x", "small.x"})),
            (std::vector<std::string>{"small.x", "big.x"}));
}

TEST(MatcherRanker, AWorkloadWithoutHistoryOrFingerprintIsAnError) {
  auto data = generic();
  ASSERT_TRUE(data);
  auto r = MatcherRanker::forWorkload(*data, "nobody");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nobody"), std::string::npos);
}

}  // namespace
}  // namespace foresight::match
