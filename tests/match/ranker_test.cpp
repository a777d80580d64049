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

// History where a fingerprint decides the machine type: cpu-bound workloads are cheapest on c.x,
// memory-bound ones fail there and run on r.x.
MatchData twoKinds() {
  MatchData d;
  auto env = [&](std::string id, std::string type, double nodes, double mem_gb, double price) {
    Environment e;
    e.id = std::move(id);
    e.labels = {{"instance_type", std::move(type)}};
    e.numbers = {{"nodes", nodes}, {"memory_gb", mem_gb}};
    e.prices = {{kOnDemand, price}};
    d.catalog.environments.push_back(std::move(e));
  };
  env("1xc", "c.x", 1, 8, 0.2);
  env("2xc", "c.x", 2, 8, 0.4);
  env("1xr", "r.x", 1, 64, 0.3);
  env("2xr", "r.x", 2, 64, 0.6);
  for (int w = 0; w < 12; ++w) {
    const bool memory_bound = w % 2 == 1;
    const std::string id = std::string("w").append(std::to_string(w));
    const double work = 1000 + 150 * w;
    d.history.fingerprints[id] = {{"cpu.mean", memory_bound ? 0.4 + 0.02 * w : 3.0 + 0.05 * w},
                                  {"memory.p95", memory_bound ? 3e10 + 1e9 * w : 1e9 + 1e8 * w}};
    d.history.workload_info[id] = {{"app", id}};
    for (const auto& e : d.catalog.environments) {
      const bool c = e.labels.at("instance_type") == "c.x";
      const double nodes = e.numbers.at("nodes");
      Run r;
      r.workload = id;
      r.env = e.id;
      r.completed = !(memory_bound && c);
      r.runtime_s = r.completed ? work * (c ? 1.0 : 1.6) / (0.6 + 0.4 * nodes) : 0;
      d.history.runs.push_back(r);
    }
  }
  return d;
}

TEST(LiveMatcherRanker, RanksALiveWorkloadFromItsLatestFingerprint) {
  LiveMatcherRanker ranker(twoKinds());
  allocate::PriceCatalog cat;
  cat.machines = {{"c.x", 4, 8e9, 0.2, std::nullopt}, {"r.x", 2, 64e9, 0.3, std::nullopt}};
  allocate::CapacityRequest req;
  req.workload = "db";
  // No fingerprint yet: the catalog's own order (cheapest first).
  EXPECT_EQ(ranker.rank(req, cat), (std::vector<std::string>{"c.x", "r.x"}));
  // Features the history has no column for are not evidence.
  ranker.observe("db", {{"disk.mean", 5e6}});
  EXPECT_EQ(ranker.rank(req, cat), (std::vector<std::string>{"c.x", "r.x"}));
  ranker.observe("db", {{"cpu.mean", 0.5}, {"memory.p95", 3.4e10}, {"disk.mean", 5e6}});
  EXPECT_EQ(ranker.rank(req, cat), (std::vector<std::string>{"r.x", "c.x"}));
  req.workload = "web";
  ranker.observe("web", {{"cpu.mean", 3.3}, {"memory.p95", 1.4e9}});
  EXPECT_EQ(ranker.rank(req, cat), (std::vector<std::string>{"c.x", "r.x"}));
  // None of the matcher's types sold here: the catalog's order rather than nothing.
  allocate::PriceCatalog other;
  other.machines = {{"m.x", 4, 16e9, 0.3, std::nullopt}, {"t.x", 2, 4e9, 0.1, std::nullopt}};
  EXPECT_EQ(ranker.rank(req, other), (std::vector<std::string>{"t.x", "m.x"}));
  ranker.forget("web");
  req.workload = "db";
  EXPECT_EQ(ranker.rank(req, cat), (std::vector<std::string>{"r.x", "c.x"}));
}

}  // namespace
}  // namespace foresight::match
