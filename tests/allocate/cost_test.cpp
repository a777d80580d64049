// Cost model: the shipped catalog against its source CSV, the resource-price fit, and the
// capacity choice on a small catalog whose costs are worked out by hand.
#include "foresight/allocate/cost.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace foresight::allocate {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

TEST(PriceCatalog, ShippedCatalogMatchesItsSourceCsv) {
  auto cat = loadPriceCatalog(FORESIGHT_SOURCE_DIR "/config/prices.yaml");
  ASSERT_TRUE(cat) << cat.error().message;
  EXPECT_EQ(cat->prices_as_of, "2017-11-12");
  EXPECT_EQ(cat->region, "us-east-1");
  EXPECT_FALSE(cat->spot.discount);  // no spot prices are shipped
  EXPECT_GE(cat->machines.size(), 8u);

  std::ifstream csv(FORESIGHT_SHARED_DATA_DIR "/envmatch/catalog/ec2_2017-11-12_us-east-1_linux.csv");
  if (!csv) GTEST_SKIP() << "source CSV not available";
  std::string line;
  std::getline(csv, line);  // header: columns 0 name, 3 vCPU, 4 memory_gib, 18 od, 19 reserved
  std::size_t checked = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    const MachineType* m = cat->find(f.at(0));
    if (!m) continue;
    SCOPED_TRACE(f[0]);
    EXPECT_DOUBLE_EQ(m->vcpus, std::stod(f.at(3)));
    EXPECT_DOUBLE_EQ(m->memory_bytes, std::stod(f.at(4)) * kGiB);
    EXPECT_DOUBLE_EQ(*m->on_demand, std::stod(f.at(18)));
    EXPECT_DOUBLE_EQ(*m->reserved, std::stod(f.at(19)));
    ++checked;
  }
  EXPECT_EQ(checked, cat->machines.size());
}

// Two shapes, exact solution: 2a + 4b = 0.10 and 2a + 8b = 0.14 give a = 0.03, b = 0.01.
constexpr const char* kSmallCatalog = R"(
source: test
prices_as_of: "2024-01-01"
reserved_term_hours: 100
spot: {discount: null, interruption_probability_per_hour: null, interruption_cost: 0}
machines:
  - {name: small, vcpus: 2, memory_gib: 4, on_demand: 0.10, reserved: 0.06}
  - {name: big, vcpus: 2, memory_gib: 8, on_demand: 0.14, reserved: 0.08}
)";

TEST(PriceCatalog, FitsResourcePricesWhenAbsent) {
  auto cat = parsePriceCatalog(kSmallCatalog, "small.yaml");
  ASSERT_TRUE(cat) << cat.error().message;
  EXPECT_TRUE(cat->resource_prices_fitted);
  EXPECT_NEAR(cat->cpu_core_hour, 0.03, 1e-12);
  EXPECT_NEAR(cat->memory_gib_hour, 0.01, 1e-12);
}

TEST(PriceCatalog, ErrorsNameTheFileAndEntry) {
  auto bad = parsePriceCatalog("machines:\n  - {name: x, vcpus: 0, memory_gib: 1}\n", "bad.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad.yaml"), std::string::npos);
  EXPECT_NE(bad.error().message.find("'x'"), std::string::npos);
  EXPECT_FALSE(parsePriceCatalog("machines: [", "broken.yaml"));
  EXPECT_FALSE(loadPriceCatalog("/nonexistent/prices.yaml"));
}

// A present value that does not parse used to become the default (8760 h, cost 0).
TEST(PriceCatalog, UnparseableOrNegativeValuesNameTheirLine) {
  const std::string machines =
      "machines:\n  - {name: x, vcpus: 2, memory_gib: 4, on_demand: 0.1}\n";
  struct Case {
    std::string yaml, where, what;
  };
  for (const auto& c : std::vector<Case>{
           {"reserved_term_hours: one year\n" + machines, "p.yaml:1", "reserved_term_hours"},
           {"reserved_term_hours: 0\n" + machines, "p.yaml:1", "reserved_term_hours"},
           {"spot:\n  interruption_cost: abc\n" + machines, "p.yaml:2", "interruption_cost"},
           {"spot:\n  discount: [0.5]\n" + machines, "p.yaml:2", "discount"},
           {"machines:\n  - {name: x, vcpus: 2, memory_gib: 4, on_demand: -1}\n", "p.yaml:2",
            "on_demand"},
           {"machines:\n  - {name: x, vcpus: 2, memory_gib: 4, reserved: cheap}\n", "p.yaml:2",
            "reserved"},
           {"machines:\n  - {name: x, vcpus: two, memory_gib: 4}\n", "p.yaml:2", "vcpus"},
           {"machines:\n  - {name: [x], vcpus: 2, memory_gib: 4}\n", "p.yaml:2", "name"},
           {"region: {a: 1}\n" + machines, "p.yaml:1", "region"},
           {machines + "resource_prices: {cpu_core_hour: -0.1, memory_gib_hour: 0.01}\n",
            "p.yaml:3", "cpu_core_hour"},
           // One price alone, or a misspelt one, used to be ignored: both were fitted.
           {machines + "resource_prices: {cpu_core_hour: 1.0}\n", "p.yaml:3",
            "both cpu_core_hour and memory_gib_hour"},
           {machines + "resource_prices: {cpu_core_hour: 1.0, memory_gib_hour: 0.1, memory_gb_hour: 0.5}\n",
            "p.yaml:3", "unknown key `memory_gb_hour` in resource_prices"},
           {"spot:\n  discont: 0.6\n" + machines, "p.yaml:2", "unknown key `discont` in spot"},
       }) {
    auto cat = parsePriceCatalog(c.yaml, "p.yaml");
    ASSERT_FALSE(cat) << c.yaml;
    EXPECT_NE(cat.error().message.find(c.where), std::string::npos) << cat.error().message;
    EXPECT_NE(cat.error().message.find(c.what), std::string::npos) << cat.error().message;
  }
}

CapacityRequest memoryShortOnSmall() {
  CapacityRequest r;
  r.workload = "db";
  r.machine = "small";
  r.current[Resource::kCpu] = 1;
  r.current[Resource::kMemory] = 3 * kGiB;
  r.need[Resource::kCpu] = 1;
  r.need[Resource::kMemory] = 6 * kGiB;  // +3 GiB
  r.spare[Resource::kCpu] = 1;
  r.spare[Resource::kMemory] = 1 * kGiB;  // not enough to grow in place
  r.current_hourly = 0.10;
  r.hours = 10;
  r.can_scale_out = false;
  return r;
}

TEST(CostModel, MovesWhenGrowingInPlaceIsImpossible) {
  auto cat = parsePriceCatalog(kSmallCatalog, "small.yaml");
  ASSERT_TRUE(cat);
  const CostModel model(*cat);
  const auto choice = model.choose(memoryShortOnSmall());
  ASSERT_TRUE(choice.chosen) << choice.summary();
  const auto& best = choice.alternatives[*choice.chosen];
  // move to big on-demand: (0.14 - 0.10) * 10 h = 0.40
  EXPECT_EQ(best.kind, "move");
  EXPECT_EQ(best.machine, "big");
  EXPECT_EQ(best.option, PurchaseOption::kOnDemand);
  EXPECT_NEAR(best.expected_cost, 0.40, 1e-9);
  bool saw_reserved = false, saw_grow = false, saw_spot = false;
  for (const auto& a : choice.alternatives) {
    if (a.kind == "move" && a.option == PurchaseOption::kReserved) {
      saw_reserved = true;  // billed for the 100 h term: 0.08 * 100 - 0.10 * 10 = 7.0
      EXPECT_NEAR(a.expected_cost, 7.0, 1e-9);
    }
    if (a.kind == "grow-in-place") {
      saw_grow = true;
      EXPECT_FALSE(a.feasible);
      EXPECT_NEAR(a.expected_cost, 3 * 0.01 * 10, 1e-9);  // what it would have cost
    }
    if (a.option == PurchaseOption::kSpot) {
      saw_spot = true;
      EXPECT_FALSE(a.feasible);
      EXPECT_NE(a.note.find("spot discount not set"), std::string::npos);
    }
  }
  EXPECT_TRUE(saw_reserved && saw_grow && saw_spot) << choice.summary();
}

TEST(CostModel, GrowsInPlaceWhenThereIsRoom) {
  auto cat = parsePriceCatalog(kSmallCatalog, "small.yaml");
  ASSERT_TRUE(cat);
  auto req = memoryShortOnSmall();
  req.spare[Resource::kMemory] = 4 * kGiB;
  const auto choice = CostModel(*cat).choose(req);
  ASSERT_TRUE(choice.chosen);
  EXPECT_EQ(choice.alternatives[*choice.chosen].kind, "grow-in-place");
  EXPECT_NEAR(choice.alternatives[*choice.chosen].expected_cost, 0.30, 1e-9);
}

TEST(CostModel, SpotWithinTheRiskBudgetOnly) {
  std::string yaml = kSmallCatalog;
  yaml.replace(yaml.find("discount: null, interruption_probability_per_hour: null, "
                         "interruption_cost: 0"),
               std::string("discount: null, interruption_probability_per_hour: null, "
                           "interruption_cost: 0").size(),
               "discount: 0.7, interruption_probability_per_hour: 0.01, interruption_cost: 1.0");
  auto cat = parsePriceCatalog(yaml, "spot.yaml");
  ASSERT_TRUE(cat) << cat.error().message;
  auto req = memoryShortOnSmall();
  req.risk_budget = 0.05;  // risk over 10 h = 1 - 0.99^10 = 0.0956 > budget
  auto choice = CostModel(*cat).choose(req);
  ASSERT_TRUE(choice.chosen);
  EXPECT_NE(choice.alternatives[*choice.chosen].option, PurchaseOption::kSpot) << choice.summary();
  req.risk_budget = 0.2;
  choice = CostModel(*cat).choose(req);
  ASSERT_TRUE(choice.chosen);
  const auto& best = choice.alternatives[*choice.chosen];
  EXPECT_EQ(best.option, PurchaseOption::kSpot) << choice.summary();
  const double risk = 1 - std::pow(0.99, 10);
  // big at 0.14 * 0.3 = 0.042/h for 10 h, minus the released 0.10/h, plus risk * 1.0
  EXPECT_NEAR(best.risk, risk, 1e-12);
  EXPECT_NEAR(best.expected_cost, 0.042 * 10 - 1.0 + risk * 1.0, 1e-9);
}

TEST(CostModel, AddingAMachineWinsWhenMovingIsDear) {
  auto cat = parsePriceCatalog(kSmallCatalog, "small.yaml");
  ASSERT_TRUE(cat);
  auto req = memoryShortOnSmall();
  req.can_scale_out = true;  // extra 3 GiB fits on a "small" (4 GiB): 0.10 * 10 h = 1.00
  auto choice = CostModel(*cat).choose(req);
  ASSERT_TRUE(choice.chosen);
  EXPECT_EQ(choice.alternatives[*choice.chosen].kind, "move");  // 0.40 < 1.00
  req.migration_cost = 2.0;                                       // move: 2.40
  choice = CostModel(*cat).choose(req);
  ASSERT_TRUE(choice.chosen);
  const auto& best = choice.alternatives[*choice.chosen];
  EXPECT_EQ(best.kind, "add") << choice.summary();
  EXPECT_EQ(best.machine, "small");
  EXPECT_NEAR(best.expected_cost, 1.0, 1e-9);
  EXPECT_NE(choice.summary().find("-> "), std::string::npos);
}

// The environment matcher's hook: only the types it returns are considered.
class OnlySmall final : public MachineRanker {
 public:
  std::vector<std::string> rank(const CapacityRequest&, const PriceCatalog&) const override {
    return {"small"};
  }
};

TEST(CostModel, RankerHookLimitsTheCandidates) {
  auto cat = parsePriceCatalog(kSmallCatalog, "small.yaml");
  ASSERT_TRUE(cat);
  auto req = memoryShortOnSmall();
  req.machine = "other";
  req.need[Resource::kMemory] = 3.5 * kGiB;
  req.spare[Resource::kMemory] = 0;
  OnlySmall ranker;
  const auto choice = CostModel(*cat, &ranker).choose(req);
  for (const auto& a : choice.alternatives) EXPECT_NE(a.machine, "big") << choice.summary();
  ASSERT_TRUE(choice.chosen);
  EXPECT_EQ(choice.alternatives[*choice.chosen].machine, "small");
}

}  // namespace
}  // namespace foresight::allocate
