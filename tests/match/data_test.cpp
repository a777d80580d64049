#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "foresight/match/data.h"
#include "foresight/match/flora.h"
#include "foresight/match/outcomes.h"
#include "support/mutate.h"

namespace foresight::match {
namespace {

const std::string kDir = MATCH_FIXTURES;
namespace fs = std::filesystem;

// A scratch folder for files written by the test, removed at the end.
struct Scratch {
  fs::path dir = fs::temp_directory_path() /
                 ("foresight-data-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

TEST(EnvironmentsCsv, ReadsFeaturesAndPricesByPurchaseOption) {
  auto c = readEnvironmentsCsv(kDir + "/generic/environments.csv");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->environments.size(), 3u);
  const auto* big = c->find("2xbig");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->numbers.at("nodes"), 2);
  EXPECT_EQ(big->labels.at("network"), "High, 10G");  // quoted comma survives
  EXPECT_EQ(big->labels.at("instance_type"), "big.x");
  EXPECT_DOUBLE_EQ(*c->price(*big, kOnDemand), 0.8);
  EXPECT_DOUBLE_EQ(*c->price(*big, "spot"), 0.3);
  EXPECT_FALSE(c->price(*c->find("4xsmall"), "spot"));  // empty cell: no such price
  EXPECT_FALSE(big->numbers.contains("price_per_hour"));  // a price, not a feature
}

TEST(EnvironmentsCsv, BadNumberNamesFileLineAndColumn) {
  auto c = readEnvironmentsCsv(kDir + "/bad_number.csv");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("bad_number.csv:3"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("price_per_hour"), std::string::npos);
}

TEST(EnvironmentsYaml, FlattensHardwareSoftwareAndPrices) {
  auto c = readEnvironmentsYaml(kDir + "/environments.yaml");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->environments.size(), 2u);
  const auto& e = c->environments[0];
  EXPECT_EQ(e.id, "4xc4.large");
  EXPECT_EQ(e.numbers.at("nodes"), 4);
  EXPECT_DOUBLE_EQ(e.numbers.at("memory_gib"), 3.75);
  EXPECT_EQ(e.labels.at("processor"), "Xeon E5-2666 v3");
  EXPECT_EQ(e.labels.at("framework"), "spark-2.1");
  EXPECT_DOUBLE_EQ(e.prices.at("reserved_1yr"), 0.25);
  EXPECT_EQ(c->environments[1].numbers.at("vcpus"), 4);
}

TEST(EnvironmentsYaml, BadPriceNamesLineAndEnvironment) {
  auto c = readEnvironmentsYaml(kDir + "/bad_price.yaml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("bad_price.yaml:5"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("'b'"), std::string::npos);
}

// yaml-cpp's as<std::string>() throws on a list or a map: it used to end the program.
TEST(EnvironmentsYaml, NonScalarIdOrKeyNamesItsLine) {
  Scratch s;
  for (const auto& [yaml, line] : std::vector<std::pair<std::string, std::string>>{
           {"environments:\n  - id: [a, b]\n", ":2"},
           {"environments:\n  - id: a\n  - id: {x: 1}\n", ":3"},
           {"environments:\n  - {id: a, [k]: 1}\n", ":2"},
           {"environments:\n  - id: a\n    hardware: {[k]: 1}\n", ":3"}}) {
    auto c = readEnvironmentsYaml(s.write("environments.yaml", yaml));
    ASSERT_FALSE(c) << yaml;
    EXPECT_NE(c.error().message.find("environments.yaml" + line), std::string::npos)
        << c.error().message;
  }
}

TEST(EnvironmentsYamlAndCsv, NegativePriceNamesItsLine) {
  Scratch s;
  auto y = readEnvironmentsYaml(s.write(
      "environments.yaml", "environments:\n  - id: a\n    prices: {on_demand: -0.4}\n"));
  ASSERT_FALSE(y);
  EXPECT_NE(y.error().message.find("environments.yaml:3"), std::string::npos) << y.error().message;
  auto c = readEnvironmentsCsv(s.write("environments.csv", "env,price_per_hour\na,0.1\nb,-1\n"));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("environments.csv:3"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("negative"), std::string::npos) << c.error().message;
}

// A completed run with a runtime of 0 or less used to count silently as a failed run.
TEST(RunsCsv, CompletedRunNeedsAPositiveRuntime) {
  Scratch s;
  for (const char* runtime : {"-305", "0"}) {
    auto h = readRunsCsv(s.write("runs.csv", std::string("workload,env,completed,runtime_s\n"
                                                         "w,a,1,10\nw,b,1,") + runtime + "\n"));
    ASSERT_FALSE(h) << runtime;
    EXPECT_NE(h.error().message.find("runs.csv:3"), std::string::npos) << h.error().message;
  }
  EXPECT_FALSE(readRunsCsv(s.write("runs.csv", "workload,env,completed,runtime_s\nw,a,0,-5\n")));
  EXPECT_FALSE(
      readRunsCsv(s.write("runs.csv", "workload,env,completed,runtime_s,cost\nw,a,1,5,-2\n")));
  EXPECT_TRUE(readRunsCsv(s.write("runs.csv", "workload,env,completed,runtime_s\nw,a,0,0\n")));
}

TEST(OutcomeTable, CompletedRunWithoutARuntimeIsAnError) {
  MatchData d;
  d.catalog.environments = {{"a", {}, {}, {{kOnDemand, 1.0}}}};
  d.history.runs = {{"w", "a", true, 0, {}, {}, {}, 0}};
  auto t = buildOutcomeTable(d, Objective::kCost, std::nullopt);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("'w'"), std::string::npos) << t.error().message;
}

TEST(MatchFolder, MissingHistoryDbIsAnErrorAndIsNotCreated) {
  Scratch s;
  const auto db = s.dir / "typo.sqlite";
  auto d = loadMatchFolder(kDir + "/generic", {"", db});
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("typo.sqlite"), std::string::npos) << d.error().message;
  EXPECT_FALSE(fs::exists(db));
}

TEST(InstanceCatalog, JoinsOnInstanceTypeAndScalesPricesByNodes) {
  auto c = readEnvironmentsCsv(kDir + "/generic/environments.csv");
  ASSERT_TRUE(c);
  ASSERT_TRUE(joinInstanceCatalog(*c, kDir + "/generic/catalog.csv"));
  const auto* small4 = c->find("4xsmall");
  EXPECT_DOUBLE_EQ(small4->numbers.at("clock_speed_ghz"), 2.9);
  EXPECT_EQ(c->find("2xbig")->labels.at("physical_processor"), "AMD, EPYC");
  EXPECT_DOUBLE_EQ(small4->prices.at(kOnDemand), 0.4);  // its own price wins
  EXPECT_DOUBLE_EQ(small4->prices.at("reserved_1yr"), 4 * 0.07);
}

TEST(InstanceCatalog, UnknownInstanceTypeIsAnError) {
  EnvironmentCatalog c;
  c.environments.push_back({"x", {}, {{"instance_type", "nope.large"}}, {}});
  auto s = joinInstanceCatalog(c, kDir + "/generic/catalog.csv");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("nope.large"), std::string::npos);
}

TEST(MatchFolder, LoadsRunsFingerprintsAndWorkloadInfo) {
  auto d = loadMatchFolder(kDir + "/generic");
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_EQ(d->history.runs.size(), 6u);
  EXPECT_FALSE(d->history.runs[2].completed);
  EXPECT_EQ(d->history.runs[2].line, 5u);  // the blank line is counted
  EXPECT_EQ(d->history.workload_info.at("grepA").at("app"), "grep");
  EXPECT_DOUBLE_EQ(d->history.fingerprints.at("grepA").at("memory_peak_mb"), 800);
  EXPECT_FALSE(d->history.fingerprints.at("sortA").contains("memory_peak_mb"));
}

// `foresight record`'s fingerprints.jsonl: each workload's latest fingerprint, nulls left out.
TEST(FingerprintsJsonl, KeepsEachWorkloadsLatestFingerprint) {
  const auto file = std::filesystem::temp_directory_path() /
                    ("foresight-fp-" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream f(file);
    f << R"({"workload":"/a","time_ms":1000,"features":{"cpu.mean":1.0,"disk.mean":5.0}})" << "\n"
      << R"({"workload":"/b","time_ms":1000,"features":{"cpu.mean":0.2}})" << "\n"
      << R"({"workload":"/a","time_ms":2000,"features":{"cpu.mean":2.0,"disk.mean":null}})" << "\n";
  }
  RunHistory h;
  h.fingerprints["/b"]["cpu.mean"] = 0.7;  // already known (fingerprints.csv): kept
  ASSERT_TRUE(readFingerprintsJsonl(file, h));
  EXPECT_EQ(h.fingerprints.at("/a"), (std::map<std::string, double>{{"cpu.mean", 2.0}}));
  EXPECT_DOUBLE_EQ(h.fingerprints.at("/b").at("cpu.mean"), 0.7);
  {
    std::ofstream f(file, std::ios::app);
    f << R"({"workload":"/c","features":{"cpu.mean":"high"}})" << "\n";
  }
  auto bad = readFingerprintsJsonl(file, h);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find(".jsonl:4"), std::string::npos) << bad.error().message;
  std::filesystem::remove(file);
}

TEST(MatchFolder, UnknownEnvironmentNamesRunsLine) {
  auto d = loadMatchFolder(kDir + "/bad_runs");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("runs.csv:3"), std::string::npos) << d.error().message;
  EXPECT_NE(d.error().message.find("9xhuge"), std::string::npos);
}

TEST(OutcomeTable, CostIsRuntimeTimesHourlyPrice) {
  auto d = loadMatchFolder(kDir + "/generic");
  ASSERT_TRUE(d);
  auto t = buildOutcomeTable(*d, Objective::kCost, std::nullopt);
  ASSERT_TRUE(t) << t.error().message;
  const auto s = t->workloadIndex("sortA"), big = t->environmentIndex("2xbig"),
             small4 = t->environmentIndex("4xsmall");
  EXPECT_NEAR(t->outcomes[s][small4].cost, 2000.0 / 3600 * 0.4, 1e-12);
  EXPECT_FALSE(t->feasible(t->outcomes[s][big]));
  EXPECT_TRUE(t->feasible(t->outcomes[s][small4]));
}

TEST(OutcomeTable, MissingPriceForTheCostObjectiveNamesTheEnvironment) {
  auto d = loadMatchFolder(kDir + "/generic");
  ASSERT_TRUE(d);
  auto t = buildOutcomeTable(*d, Objective::kCost, std::nullopt, "spot");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("4xsmall"), std::string::npos) << t.error().message;
  EXPECT_TRUE(buildOutcomeTable(*d, Objective::kRuntime, std::nullopt, "spot"));
}

TEST(OutcomeTable, CostColumnGivesAnImpliedPrice) {
  MatchData d;
  d.catalog.environments = {{"a", {{"nodes", 1}}, {}, {}}, {"b", {{"nodes", 2}}, {}, {}}};
  d.history.runs = {{"w", "a", true, 3600, 2.0, {}, {}, 0}, {"w", "b", true, 1800, std::nullopt, {}, {}, 0},
                    {"v", "b", true, 7200, 6.0, {}, {}, 0}};
  auto t = buildOutcomeTable(d, Objective::kCost, std::nullopt);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_DOUBLE_EQ(t->price_per_hour[0], 2.0);
  EXPECT_DOUBLE_EQ(t->price_per_hour[1], 3.0);
  EXPECT_DOUBLE_EQ(t->outcomes[0][1].cost, 1.5);  // 1800 s at the implied $3/h
}

TEST(OutcomeTable, RepeatedRunsUseTheMajorityAndTheGeometricMeanRuntime) {
  MatchData d;
  d.catalog.environments = {{"a", {}, {}, {{kOnDemand, 1.0}}}};
  d.history.runs = {{"w", "a", true, 100, {}, {}, {}, 0}, {"w", "a", true, 400, {}, {}, {}, 0},
                    {"v", "a", false, 0, {}, {}, {}, 0}, {"v", "a", false, 0, {}, {}, {}, 0},
                    {"v", "a", true, 50, {}, {}, {}, 0}};
  auto t = buildOutcomeTable(d, Objective::kCost, std::nullopt);
  ASSERT_TRUE(t) << t.error().message;
  const auto& w = t->outcomes[t->workloadIndex("w")][0];
  EXPECT_TRUE(w.completed);
  EXPECT_NEAR(w.runtime_s, 200, 1e-9);
  EXPECT_NEAR(w.cost, 200.0 / 3600, 1e-12);
  EXPECT_FALSE(t->outcomes[t->workloadIndex("v")][0].completed);  // 1 of 3 completed
}

// A failed run without a runtime has an unknown cost, not a cost of 0 (which made the probes that
// hit Scout's time-outs free).
// The cost-objective table of a folder of the two files given.
Result<OutcomeTable> costTable(const Scratch& s, const std::string& environments, const std::string& runs) {
  s.write("environments.csv", environments);
  s.write("runs.csv", runs);
  auto d = loadMatchFolder(s.dir);
  if (!d) return tl::unexpected(d.error());
  return buildOutcomeTable(*d, Objective::kCost, std::nullopt);
}

TEST(OutcomeTable, AFailedRunWithoutARuntimeHasAnUnknownCost) {
  Scratch s;
  auto t = costTable(s, "env,price_per_hour\na,3600\nb,3600\n",
                     "workload,env,completed,runtime_s\nw,a,1,10\nw,b,0,\nv,a,0,30\nv,b,1,5\n");
  ASSERT_TRUE(t) << t.error().message;
  const auto& unknown = t->outcomes[t->workloadIndex("w")][t->environmentIndex("b")];
  EXPECT_TRUE(unknown.has_run);
  EXPECT_FALSE(unknown.completed);
  EXPECT_TRUE(std::isnan(t->value(unknown)));
  EXPECT_DOUBLE_EQ(t->value(t->outcomes[t->workloadIndex("v")][t->environmentIndex("a")]), 30);
}

TEST(OutcomeTable, AFreeEnvironmentOrRunIsRefusedForTheCostObjective) {
  Scratch s;
  auto t = costTable(s, "env,price_per_hour\na,0\nb,2\n", "workload,env,completed,runtime_s\nw,a,1,10\nw,b,1,5\n");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("environment 'a' costs 0 per hour"), std::string::npos) << t.error().message;
  auto d = loadMatchFolder(s.dir);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_TRUE(buildOutcomeTable(*d, Objective::kRuntime, std::nullopt));
  t = costTable(s, "env\na\nb\n", "workload,env,completed,runtime_s,cost\nw,a,1,10,0\nw,b,1,5,1\n");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("costs 0"), std::string::npos) << t.error().message;
}

// A workload's extra columns (its `app`, which --group-by holds out together) have one value; a
// second one would silently put the workload in the first line's group.
TEST(RunsCsv, AWorkloadWhoseExtraColumnsDisagreeIsRefused) {
  Scratch s;
  auto h = readRunsCsv(s.write("runs.csv", "workload,env,completed,runtime_s,app\nw,a,1,10,x\nw,b,1,5,y\n"));
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find("runs.csv:3: workload 'w' has app 'y' here and 'x'"), std::string::npos)
      << h.error().message;
}

// Spreadsheets save CSV with a UTF-8 byte-order mark before the header.
TEST(RunsCsv, AByteOrderMarkIsNotPartOfTheFirstColumnsName) {
  Scratch s;
  auto h = readRunsCsv(s.write("runs.csv", "\xEF\xBB\xBFworkload,env,completed,runtime_s\nw,a,1,10\n"));
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_EQ(h->runs.size(), 1u);
  EXPECT_EQ(h->runs[0].workload, "w");
}

// Each of the matcher's input files, damaged: read or refused with the file named, never a crash
// or an exception out of the reader.
TEST(DamagedInput, MatchFilesAreReadOrRefusedWithTheFileNamed) {
  Scratch scratch;
  auto slurp = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  struct Reader {
    std::string seed, name;
    std::function<Status(const std::string&)> read;
  };
  auto status = [](const auto& r) { return r ? ok() : Status(tl::unexpected(r.error())); };
  const std::vector<Reader> readers = {
      {kDir + "/generic/environments.csv", "environments.csv", [&](const std::string& f) { return status(readEnvironmentsCsv(f)); }},
      {kDir + "/generic/runs.csv", "runs.csv", [&](const std::string& f) { return status(readRunsCsv(f)); }},
      {kDir + "/environments.yaml", "environments.yaml", [&](const std::string& f) { return status(readEnvironmentsYaml(f)); }},
      {kDir + "/flora/profiling_data/psrecord_monitoring/Grep_100.txt", "Grep_100.txt",
       [&](const std::string& f) { return status(readPsrecord(f)); }},
  };
  for (const auto& reader : readers) {
    const std::string seed = slurp(reader.seed);
    ASSERT_FALSE(seed.empty()) << reader.seed;
    int read = 0, refused = 0;
    for (const auto& text : test_support::mutations(seed, 300)) {
      const std::string file = scratch.write(reader.name, text);
      Status st = fail(ErrorCode::kInternal, "not read");
      ASSERT_NO_THROW(st = reader.read(file)) << reader.name << ":\n" << text;
      if (st) {
        ++read;
      } else {
        ++refused;
        EXPECT_NE(st.error().message.find(reader.name), std::string::npos) << st.error().message;
      }
    }
    EXPECT_GT(read, 10) << reader.name;
    EXPECT_GT(refused, 10) << reader.name;
  }
}

}  // namespace
}  // namespace foresight::match
