// `foresight match` end to end on a small synthetic folder: inputs it cannot use and out-of-range
// options are refused with a message, never a crash, a silent default or a changed file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "support/shell.h"

namespace {
namespace fs = std::filesystem;

using foresight::test_support::Ran;

Ran run(const std::string& args) {
  return foresight::test_support::runShell(fmt::format("{} {}", FORESIGHT_BIN, args));
}

class MatchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("foresight-match-cli-{}-{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "data");
    write("data/environments.csv",
          "env,vcpus,memory_gib,price_per_hour\ns,2,4,0.1\nm,4,8,0.2\nl,8,16,0.4\n");
    std::string runs = "workload,env,completed,runtime_s,app\n";
    std::string fps = "workload,cpu_mean,mem_peak\n";
    for (int w = 0; w < 8; ++w) {
      const double base = 600 * (1 + w), cpu = 0.5 + w % 4;
      for (const auto& [env, speed] : {std::pair{"s", 1.0}, {"m", 1.8}, {"l", 3.0}})
        runs += fmt::format("w{},{},1,{:.0f},app{}\n", w, env, base / std::pow(speed, cpu / 3),
                            w % 4);
      fps += fmt::format("w{},{},{}\n", w, cpu, 100 * (w + 1));
    }
    write("data/runs.csv", runs);
    write("data/fingerprints.csv", fps);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  std::string data() const { return (dir_ / "data").string(); }
  // Fast settings: this is about argument handling, not ranking quality.
  Ran match(const std::string& args) {
    return run(fmt::format("match --data {} --ensemble 2 {}", data(), args));
  }

  fs::path dir_;
};

// Fails unless the command was refused with `needle` in its message (and did not crash).
void expectRefused(const Ran& r, const std::string& needle, int code = -2) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_GT(r.exit_code, 0) << "killed by a signal: " << r.err;
  if (code != -2) {
    EXPECT_EQ(r.exit_code, code) << r.err;
  }
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("rank "), std::string::npos) << "ranked anyway:\n" << r.out;
}

TEST_F(MatchCli, RanksAWorkloadAndANewFingerprint) {  // the fixture is usable
  auto r = match("--workload w3 --group-by app --probes 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("rank"), std::string::npos);
  EXPECT_NE(r.out.find("ranked by expected cost"), std::string::npos) << r.out;
  auto fp = write("fp.csv", "workload,cpu_mean,mem_peak\nnew,2,300\n");
  r = match("--fingerprint " + fp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ranked from the fingerprint alone"), std::string::npos) << r.out;
}

TEST_F(MatchCli, NonScalarYamlIdIsAnErrorNotACrash) {
  fs::remove(dir_ / "data/environments.csv");
  write("data/environments.yaml", "environments:\n  - id: [a, b]\n");
  expectRefused(match("--workload w0"), "environments.yaml:2", 1);
  auto r = run(fmt::format("cost --catalog {}/config/prices.yaml --need-cpu 2 --need-memory 4G "
                           "--match-data {} --match-workload w0",
                           FORESIGHT_SOURCE_DIR, data()));
  expectRefused(r, "environments.yaml:2", 2);
}

TEST_F(MatchCli, HistoryDbMustExistAndIsNotCreated) {
  const auto db = dir_ / "typo.sqlite";
  expectRefused(match("--workload w0 --history " + db.string()), "typo.sqlite", 1);
  EXPECT_FALSE(fs::exists(db));
}

TEST_F(MatchCli, FingerprintWithoutAnyKnownFeatureIsRefused) {
  auto csv = write("fp.csv", "workload,foo\nx,1\n");
  expectRefused(match("--fingerprint " + csv), "cpu_mean", 1);
  auto jsonl = write("fp.jsonl", R"({"workload":"x","features":{}})" "\n");
  expectRefused(match("--fingerprint " + jsonl), "cpu_mean", 1);
  auto r = match("--fingerprint " + csv + " --probe s=600");  // probes alone are enough
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("probes alone"), std::string::npos) << r.err;
}

TEST_F(MatchCli, UnknownGroupByColumnIsRefused) {
  expectRefused(match("--workload w0 --group-by nosuchcol"), "nosuchcol", 2);
  expectRefused(match("--evaluate --group-by nosuchcol"), "nosuchcol", 2);
}

TEST_F(MatchCli, OutOfRangeNumbersAreRefused) {
  for (const char* args : {"--workload w0 --probes -1", "--workload w0 --top -1",
                           "--workload w0 --top 0", "--workload w0 --ensemble 0",
                           "--workload w0 --deadline -5", "--workload w0 --deadline nan",
                           "--evaluate --threads 0"}) {
    SCOPED_TRACE(args);
    const std::string flag = std::string(args).substr(std::string(args).rfind("--"));
    expectRefused(match(args), flag.substr(0, flag.find(' ')));
  }
  for (const char* probe : {"s=inf", "s=nan", "s=-3", "s=10x"})
    expectRefused(match(fmt::format("--workload w0 --probe {}", probe)), probe, 2);
}

TEST_F(MatchCli, ConvertFloraRefusesANegativePrice) {
  for (const char* flag : {"--vcpu-hour-price", "--gb-hour-price"}) {
    auto r = run(fmt::format("match convert-flora --flora {}/tests/match/fixtures/flora --out {} "
                             "{} -1",
                             FORESIGHT_SOURCE_DIR, (dir_ / "out").string(), flag));
    EXPECT_GT(r.exit_code, 0);
    EXPECT_NE(r.err.find(flag), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out" / "runs.csv"));
  }
}

}  // namespace

// The evaluation takes minutes on a real dataset: an output it could not write is refused first.
TEST_F(MatchCli, JsonIntoAMissingFolderIsRefusedBeforeEvaluating) {
  const auto json = dir_ / "no-such-folder" / "eval.json";
  auto r = match("--evaluate --group-by app --json " + json.string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--json: " + json.string() + ": no such directory"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("regret"), std::string::npos) << "evaluated anyway:\n" << r.out;
  fs::create_directories(dir_ / "eval.json");
  r = match("--workload w0 --json " + (dir_ / "eval.json").string());
  expectRefused(r, "eval.json: is a directory", 2);
}
