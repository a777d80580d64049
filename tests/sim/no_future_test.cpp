// No policy sees the future: poisoning every value after step t leaves every allocation committed
// up to t unchanged. Run for every registered policy except the oracle, at two lead times.
#include <gtest/gtest.h>

#include <random>

#include "foresight/sim/backtest.h"

namespace foresight::sim {
namespace {

trace::Series randomSeries(unsigned seed) {
  std::mt19937 rng(seed);
  std::lognormal_distribution<double> cpu(0, 1), mem(20, 0.3), io(8, 2);
  trace::Series s;
  s.id = std::string(1, 'r');  // not = "r": GCC 12's -Wrestrict false positive (GCC bug 105651)
  s.start = 1372629600;
  s.step_seconds = 300;
  const std::size_t n = 4 * 288;
  for (std::size_t t = 0; t < n; ++t) {
    const bool idle = (t / 50) % 3 == 0;
    s.usage[index(Resource::kCpu)].push_back(idle ? 0.0 : cpu(rng));
    s.usage[index(Resource::kMemory)].push_back(t % 17 == 0 ? NAN : mem(rng));
    s.usage[index(Resource::kDiskIo)].push_back(io(rng));
    s.usage[index(Resource::kNetwork)].push_back(idle ? 0.0 : io(rng));
  }
  s.metadata = {{"cpu_cores", 4}, {"cpu_capacity_mhz", 10000}, {"memory_capacity_bytes", 8e9}};
  return s;
}

void expectNoFuture(const std::string& name, predict::PolicyFactory& factory, std::size_t lead) {
  const trace::Series clean = randomSeries(7);
  Protocol p;
  p.lead_steps = lead;
  for (std::size_t cut : {std::size_t{100}, clean.size() / 2 + 3, clean.size() - 10}) {
    trace::Series poisoned = clean;
    for (auto& u : poisoned.usage)
      for (std::size_t t = cut + 1; t < u.size(); ++t) u[t] = (t % 2) ? 1e12 : NAN;
    for (Resource r : kAllResources) {
      auto a = replayAllocations(factory, clean, p, r);
      auto b = replayAllocations(factory, poisoned, p, r);
      // Allocations committed after observing steps 0..cut are those for steps up to cut + lead.
      for (std::size_t step = 0; step <= cut + lead && step < a.size(); ++step) {
        for (std::size_t k = 0; k < a[step].size(); ++k) {
          if (std::isnan(a[step][k]) && std::isnan(b[step][k])) continue;
          ASSERT_EQ(a[step][k], b[step][k])
              << name << " " << foresight::name(r) << " lead " << lead
              << ": the allocation for step " << step << " changed when values after step " << cut
              << " were poisoned";
        }
      }
      // And the poison does reach later allocations of at least some policies; not asserted.
    }
  }
}

TEST(NoFuture, NoPolicySeesPastItsCommitTime) {
  predict::PolicyRegistry registry("policy");
  predict::registerBaselines(registry);
  for (const auto& name : registry.names()) {
    if (name == "oracle") continue;
    auto factory = registry.create(name, {});
    ASSERT_TRUE(factory);
    for (std::size_t lead : {1, 3}) expectNoFuture(name, **factory, lead);
  }
}

TEST(NoFuture, TheCheckCatchesAPolicyThatPeeks) {
  // The oracle sees the future by construction: the same check must flag it, or it proves nothing.
  predict::PolicyRegistry registry("policy");
  predict::registerBaselines(registry);
  auto oracle = registry.create("oracle", {});
  ASSERT_TRUE(oracle);
  const trace::Series clean = randomSeries(7);
  trace::Series poisoned = clean;
  for (std::size_t t = 101; t < poisoned.size(); ++t)
    poisoned.usage[index(Resource::kCpu)][t] = 1e12;
  Protocol p;
  auto a = replayAllocations(**oracle, clean, p, Resource::kCpu);
  auto b = replayAllocations(**oracle, poisoned, p, Resource::kCpu);
  EXPECT_NE(a[101][0], b[101][0]);  // committed after step 100, for step 101
}

}  // namespace
}  // namespace foresight::sim
