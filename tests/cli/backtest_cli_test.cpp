// `foresight backtest` end to end, as a user runs it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/shell.h"

namespace {
namespace fs = std::filesystem;

using foresight::test_support::Ran;

Ran run(const std::string& args) { return foresight::test_support::runShell(fmt::format("{} {}", FORESIGHT_BIN, args)); }

class BacktestCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("foresight-cli-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_ / "trace");
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> noise(0, 0.5);
    for (int s = 0; s < 3; ++s) {
      std::ofstream f(dir_ / "trace" / fmt::format("vm{}.csv", s));
      f << "timestamp,cpu,memory,disk_io,network\n";
      for (int i = 0; i < 4 * 288; ++i) {
        double day = std::sin(i * 2 * M_PI / 288);
        f << fmt::format("{},{},{},{},{}\n", 1600000000 + 300 * i, 1 + day + noise(rng),
                         2e9 + 1e8 * day, 1000 * noise(rng), i % 5 ? 0.0 : 5000.0);
      }
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(BacktestCli, WritesJsonTableAndPlotsForAllBaselines) {
  auto r = run(
      fmt::format("backtest --trace {} --format csv --json {} --plot {}", (dir_ / "trace").string(),
                  (dir_ / "out.json").string(), (dir_ / "plots").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cpu"), std::string::npos);
  EXPECT_NE(r.out.find("reactive"), std::string::npos);
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "progress bar drawn into a pipe";
  auto j = nlohmann::json::parse(std::ifstream(dir_ / "out.json"));
  EXPECT_EQ(j["trace"]["series"], 3);
  for (const char* p : {"vpa", "autopilot", "reactive", "static", "oracle"}) {
    for (const char* res : {"cpu", "memory", "disk_io", "network"}) {
      ASSERT_TRUE(j["policies"][p].contains(res)) << p << " " << res;
    }
  }
  EXPECT_EQ(j["policies"]["oracle"]["cpu"]["default"]["slack"], 0.0);
  EXPECT_EQ(j["policies"]["oracle"]["cpu"]["default"]["violation_rate"], 0.0);
  EXPECT_TRUE(fs::exists(dir_ / "plots" / "frontier-cpu.svg"));
  EXPECT_TRUE(fs::exists(dir_ / "plots" / "example-vm0-cpu.svg"));
}

// --per-series: one row per policy, resource and series at the calibrated knob; its share of the
// unused allocation sums to 1 per policy and resource. A path that cannot be written is refused
// before the replay, as --json's is.
TEST_F(BacktestCli, PerSeriesWritesARowPerPolicyResourceAndSeries) {
  auto r = run(fmt::format("backtest --trace {} --format csv --policies reactive,static --per-series {}",
                           (dir_ / "trace").string(), (dir_ / "series.csv").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(dir_ / "series.csv");
  std::string line;
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line.rfind("policy,resource,series,knob,steps,", 0), 0u) << line;
  std::map<std::string, double> share;
  std::set<std::string> series;
  int rows = 0;
  while (std::getline(f, line)) {
    std::vector<std::string> c;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) c.push_back(x);
    ASSERT_EQ(c.size(), 14u) << line;
    share[c[0] + "/" + c[1]] += std::stod(c[8]);
    series.insert(c[2]);
    ++rows;
  }
  EXPECT_EQ(rows, 2 * 4 * 3);
  EXPECT_EQ(series, (std::set<std::string>{"vm0", "vm1", "vm2"}));
  for (const auto& [key, sum] : share) EXPECT_NEAR(sum, 1.0, 1e-5) << key;
  auto bad = run(fmt::format("backtest --trace {} --format csv --policies reactive --per-series {}",
                             (dir_ / "trace").string(), (dir_ / "no" / "x.csv").string()));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("no such directory"), std::string::npos) << bad.err;
}

// --series replays only the series named; an id before '#' takes every piece of a series split at
// a gap, and no other prefix; an unknown id is refused, named, before any replay.
TEST_F(BacktestCli, SeriesReplaysOnlyTheNamedOnes) {
  {  // vm9: three days, a day-long gap, three days: pieces vm9#1 and vm9#2
    std::ofstream f(dir_ / "trace" / "vm9.csv");
    f << "timestamp,cpu,memory,disk_io,network\n";
    for (int i = 0; i < 7 * 288; ++i)
      if (i < 3 * 288 || i >= 4 * 288) f << fmt::format("{},{},2e9,10,10\n", 1600000000 + 300 * i, 1 + i % 7);
  }
  auto pieces = run(fmt::format("backtest --trace {} --format csv --policies reactive --series vm9",
                                (dir_ / "trace").string()));
  ASSERT_EQ(pieces.exit_code, 0) << pieces.err;
  EXPECT_NE(pieces.out.find("trace: 2 series"), std::string::npos) << pieces.out;
  auto prefix = run(fmt::format("backtest --trace {} --format csv --policies reactive --series vm", (dir_ / "trace").string()));
  EXPECT_EQ(prefix.exit_code, 2) << prefix.out;
  auto r = run(fmt::format("backtest --trace {} --format csv --policies reactive --series vm2,vm0 --per-series {}",
                           (dir_ / "trace").string(), (dir_ / "two.csv").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(dir_ / "two.csv");
  std::set<std::string> series;
  std::string line;
  std::getline(f, line);
  while (std::getline(f, line)) {  // policy,resource,series,...
    std::stringstream ss(line);
    std::string c;
    for (int i = 0; i < 3; ++i) std::getline(ss, c, ',');
    series.insert(c);
  }
  EXPECT_EQ(series, (std::set<std::string>{"vm0", "vm2"}));
  auto bad = run(fmt::format("backtest --trace {} --format csv --policies reactive --series vm1,nope,gone",
                             (dir_ / "trace").string()));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--series: no series nope, gone in"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.out.find("reactive"), std::string::npos) << "replayed anyway: " << bad.out;
}

TEST_F(BacktestCli, StrictFailsOnABadFileAndNamesItsLine) {
  std::ofstream(dir_ / "trace" / "bad.csv") << "timestamp,cpu\n1,0.5\n301,x\n";
  auto lenient = run(fmt::format("backtest --trace {} --format csv --policies reactive",
                                 (dir_ / "trace").string()));
  EXPECT_EQ(lenient.exit_code, 0) << lenient.err;
  EXPECT_NE(lenient.err.find("bad.csv:3:"), std::string::npos) << lenient.err;
  auto strict = run(fmt::format("backtest --trace {} --format csv --strict --json {}",
                                (dir_ / "trace").string(), (dir_ / "strict.json").string()));
  EXPECT_NE(strict.exit_code, 0);
  EXPECT_NE(strict.err.find("bad.csv:3:"), std::string::npos) << strict.err;
  EXPECT_FALSE(fs::exists(dir_ / "strict.json"));  // nothing half-written
}

TEST_F(BacktestCli, UnknownPolicyListsTheKnownOnes) {
  auto r = run(fmt::format("backtest --trace {} --format csv --policies vpa,nope",
                           (dir_ / "trace").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown policy 'nope'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("reactive"), std::string::npos) << r.err;
}

// A policy named twice was replayed twice and reported once (results are keyed by name).
TEST_F(BacktestCli, APolicyNamedTwiceIsRefused) {
  auto r = run(fmt::format("backtest --trace {} --format csv --policies reactive,vpa,reactive",
                           (dir_ / "trace").string()));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--policies: 'reactive' named twice"), std::string::npos) << r.err;
}

// Policy `auto` (run's default forecaster) is scored with intervals and takes the lstm's options.
TEST_F(BacktestCli, AutoIsScoredAndTakesTheLstmsModelOption) {
  auto r = run(fmt::format("backtest --trace {} --format csv --policies auto --json {}",
                           (dir_ / "trace").string(), (dir_ / "auto.json").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(std::ifstream(dir_ / "auto.json"));
  for (const char* res : {"cpu", "memory", "disk_io", "network"}) {
    const auto& a = j["policies"]["auto"][res];
    ASSERT_TRUE(a.contains("coverage")) << res << ": " << a.dump();
    EXPECT_GT(a["coverage"]["0.9"].get<double>(), 0.5) << res;
  }
  // Beside lstm, on a step the shipped model was not trained on: its warning once, not per policy.
  auto both = run(fmt::format("backtest --trace {} --format csv --policies lstm,auto --step 600 --no-progress",
                              (dir_ / "trace").string()));
  ASSERT_EQ(both.exit_code, 0) << both.err;
  const std::string warning = "the model was trained on 300-s steps, this trace has 600-s steps";
  const auto first = both.err.find(warning);
  ASSERT_NE(first, std::string::npos) << both.err;
  EXPECT_EQ(both.err.find(warning, first + 1), std::string::npos) << both.err;

  auto missing = run(fmt::format("backtest --trace {} --format csv --policies auto --policy-opt auto.model={}",
                                 (dir_ / "trace").string(), (dir_ / "none.fsm").string()));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("none.fsm"), std::string::npos) << missing.err;
}

// The shipped model read the first 50% of each series of its training trace: a backtest that
// scores from earlier on would score steps it learnt from there. Warned about once (lstm and auto
// load the same model), naming the model file and both shares.
TEST_F(BacktestCli, ScoringBeforeTheModelsTrainingShareIsWarnedAbout) {
  auto early = run(fmt::format("backtest --trace {} --format csv --policies lstm,auto --train-fraction 0.3 --no-progress",
                               (dir_ / "trace").string()));
  ASSERT_EQ(early.exit_code, 0) << early.err;
  const std::string warning = "models/lstm-bitbrains.fsm was trained on the first 50% of each series of its training "
                              "trace";
  const auto first = early.err.find(warning);
  ASSERT_NE(first, std::string::npos) << early.err;
  EXPECT_EQ(early.err.find(warning, first + 1), std::string::npos) << early.err;
  EXPECT_NE(early.err.find("scores each series from 30% on (--train-fraction 0.3): if this is that trace, steps the "
                           "model learnt from are scored"), std::string::npos) << early.err;
  for (const char* fraction : {"0.5", "0.7"}) {
    auto later = run(fmt::format("backtest --trace {} --format csv --policies lstm --train-fraction {} --no-progress",
                                 (dir_ / "trace").string(), fraction));
    ASSERT_EQ(later.exit_code, 0) << later.err;
    EXPECT_EQ(later.err.find("learnt from"), std::string::npos) << fraction << ": " << later.err;
  }
}

// As train and predict: a step is a positive number of seconds; leaving it out takes the median.
TEST_F(BacktestCli, StepMustBePositive) {
  auto r = run(fmt::format("backtest --trace {} --format csv --policies reactive --step 0", (dir_ / "trace").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--step"), std::string::npos) << r.err;
}

TEST_F(BacktestCli, WrongFormatIsReportedWithTheHeaderLine) {
  auto r =
      run(fmt::format("backtest --trace {} --format bitbrains --strict", (dir_ / "trace").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(":1: not a GWA-T-12"), std::string::npos) << r.err;
}

TEST_F(BacktestCli, MisspeltPolicyOptionsAreRefusedNotIgnored) {
  const std::string trace = (dir_ / "trace").string();
  auto key = run(fmt::format("backtest --trace {} --format csv --policies lstm --policy-opt lstm.modle=x", trace));
  EXPECT_EQ(key.exit_code, 2);
  EXPECT_NE(key.err.find("policy 'lstm' has no option 'modle' (its options: model, eta, knob)"),
            std::string::npos) << key.err;
  auto none = run(fmt::format("backtest --trace {} --format csv --policies reactive --policy-opt reactive.m=1", trace));
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("(its options: none)"), std::string::npos) << none.err;
  auto absent = run(fmt::format("backtest --trace {} --format csv --policies reactive --policy-opt lstmx.model=f", trace));
  EXPECT_EQ(absent.exit_code, 2);
  EXPECT_NE(absent.err.find("'lstmx' is not among --policies"), std::string::npos) << absent.err;
}

TEST_F(BacktestCli, NothingScoredIsNotAPerfectScore) {
  // A column without values is no resource; a lead beyond every evaluation part scores nothing.
  fs::create_directories(dir_ / "empty");
  for (int s = 0; s < 3; ++s) {
    std::ofstream out(dir_ / "empty" / fmt::format("vm{}.csv", s));
    out << "timestamp,cpu,memory\n";
    for (int i = 0; i < 4 * 288; ++i) out << fmt::format("{},{},\n", 1600000000 + 300 * i, 1 + i % 3);
  }
  auto r = run(fmt::format("backtest --trace {} --format csv --policies reactive --json {}",
                           (dir_ / "empty").string(), (dir_ / "e.json").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(std::ifstream(dir_ / "e.json"));
  EXPECT_TRUE(j["policies"]["reactive"].contains("cpu"));
  EXPECT_FALSE(j["policies"]["reactive"].contains("memory")) << j["policies"]["reactive"].dump();
  auto lead = run(fmt::format("backtest --trace {} --format csv --policies reactive --lead 5000",
                              (dir_ / "trace").string()));
  EXPECT_EQ(lead.exit_code, 1);
  EXPECT_NE(lead.err.find("nothing to score"), std::string::npos) << lead.err;
}

TEST_F(BacktestCli, AnOutputPathThatCannotBeWrittenFailsBeforeTheReplay) {
  fs::create_directories(dir_ / "a-dir.json");
  auto r = run(fmt::format("backtest --trace {} --format csv --policies reactive --json {}",
                           (dir_ / "trace").string(), (dir_ / "a-dir.json").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("a-dir.json: is a directory"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("reactive"), std::string::npos) << "replayed before checking: " << r.out;
  auto missing = run(fmt::format("backtest --trace {} --format csv --policies reactive --json {}",
                                 (dir_ / "trace").string(), (dir_ / "no" / "x.json").string()));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("no such directory"), std::string::npos) << missing.err;
  std::ofstream(dir_ / "plots-file") << "x";
  auto plot = run(fmt::format("backtest --trace {} --format csv --policies reactive --plot {}",
                              (dir_ / "trace").string(), (dir_ / "plots-file").string()));
  EXPECT_EQ(plot.exit_code, 2);
  EXPECT_NE(plot.err.find("is not a directory"), std::string::npos) << plot.err;
}

TEST_F(BacktestCli, AnUnknownLogLevelIsRefusedNotSilent) {
  auto r = run(fmt::format("--log-level verbose backtest --trace {} --format csv --policies reactive",
                           (dir_ / "trace").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("verbose"), std::string::npos) << r.err;
}

}  // namespace
