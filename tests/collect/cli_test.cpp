// End to end through the foresight binary: `record -- CMD` output reads back with the trace
// reader; `profile` shows the fixture host's workload.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "foresight/trace/reader.h"
#include "support/cleanup.h"
#include "support/shell.h"

using namespace foresight;
namespace fs = std::filesystem;

namespace {
std::pair<int, std::string> run(const std::string& cmd) {
  const auto r = foresight::test_support::runShell(cmd);
  return {r.exit_code, r.all()};
}
}  // namespace

TEST(Cli, RecordACommandAndReadTheTraceBack) {
  const fs::path dir = fs::path(testing::TempDir()) / ("cli-record-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // The command ends the recording; 3 s of busy loop give it CPU to show and the reader the two
  // rows it needs.
  auto [rc, out] = run(std::string(FORESIGHT_BIN) + " record --out " + dir.string() +
                       " --period 1 --window 4 --hop 1 -- sh -c 'timeout 3 sh -c \"while :; do :; done\"; true'");
  ASSERT_EQ(rc, 0) << out;
  trace::ReadOptions opt{.format = trace::Format::kCsv, .min_days = 0};
  auto t = trace::readTraceDir(dir, opt);
  ASSERT_TRUE(t) << t.error().message << "\n" << out;
  ASSERT_EQ(t->series.size(), 1u);
  const auto& s = t->series[0];
  ASSERT_GE(s.size(), 2u) << out;
  double cpu = 0;
  for (double v : s.usage[0]) if (!std::isnan(v)) cpu += v;
  EXPECT_GT(cpu, 0.05);  // the shell loop burnt CPU inside the workload
  EXPECT_TRUE(fs::exists(dir / "fingerprints.jsonl"));
  // Nothing but the finished files: no temporary file is left beside them.
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_TRUE(e.path().extension() == ".csv" || e.path().filename() == "fingerprints.jsonl") << e.path();
  fs::remove_all(dir);
}

// Exit status 3 is for a launched command that failed; one the recording stopped (--duration, a
// signal) did not fail.
TEST(Cli, RecordIsExitStatus3OnlyForACommandThatFailedOnItsOwn) {
  const fs::path dir = fs::path(testing::TempDir()) / ("cli-record-rc-" + std::to_string(::getpid()));
  const std::string record = std::string(FORESIGHT_BIN) + " record --out " + dir.string() + " --period 0.2 ";
  auto [rc1, out1] = run(record + "--duration 1 -- sleep 30");
  EXPECT_EQ(rc1, 0) << out1;
  // Ctrl-C as a terminal sends it, to the process group (setsid makes record its leader), once the
  // recording runs (its first CSV file exists): sent at a fixed time, it could come before the
  // binary (LibTorch's start-up) installed its handler, on a loaded machine.
  // bash: dash's kill cannot signal a process group.
  auto [rc2, out2] = run("bash -c 'setsid " + record + "-- sleep 30 & p=$!; for i in $(seq 600); do ls " +
                         dir.string() +
                         "/*.csv.?????? >/dev/null 2>&1 && break; sleep 0.05; done; kill -INT -- -$p; "
                         "wait $p'");
  EXPECT_EQ(rc2, 0) << out2;
  auto [rc3, out3] = run(record + "-- sh -c 'exit 5'");
  EXPECT_EQ(rc3, 3) << out3;
  EXPECT_NE(out3.find("exited with status 5"), std::string::npos) << out3;
  fs::remove_all(dir);
}

// A fingerprints.jsonl that could not be written whole (here the file size limit, 16 KiB, which
// the CSV stays under) is an error naming it, and nothing half-written is left in place.
TEST(Cli, RecordFailsOnAFingerprintsWriteErrorAndLeavesNoFile) {
  const fs::path dir = fs::path(testing::TempDir()) / ("cli-record-full-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto [rc, out] = run("trap '' XFSZ; ulimit -f 16; " + std::string(FORESIGHT_BIN) + " record --out " +
                       dir.string() + " --duration 2 --period 0.05 --window 4 --hop 1 -- sleep 10");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("fingerprints.jsonl."), std::string::npos) << out;
  EXPECT_NE(out.find(": write failed"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir / "fingerprints.jsonl"));
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
  fs::remove_all(dir);
}

TEST(Cli, RecordRejectsMissingDurationAndBadSelectors) {
  auto [rc1, out1] = run(std::string(FORESIGHT_BIN) + " record --out /tmp/x-unused");
  EXPECT_NE(rc1, 0);
  EXPECT_NE(out1.find("--duration"), std::string::npos) << out1;
  auto [rc2, out2] = run(std::string(FORESIGHT_BIN) + " record --out /tmp/x-unused --duration 1 bogus");
  EXPECT_NE(rc2, 0);
  EXPECT_NE(out2.find("selector 'bogus'"), std::string::npos) << out2;
}

// A cmd: selector matches the processes that run the text, not foresight itself nor the shell
// that started it, whose command lines carry the selector too (before, both were listed beside
// the real workload).
TEST(Cli, ACommandLineSelectorDoesNotMatchTheProfilerOrItsShell) {
  const std::string marker = "sleep 3" + std::to_string(::getpid() % 1000);  // a command line of its own
  auto [rc, out] = run("bash -c '" + marker + " & s=$!; sleep 0.2; " + FORESIGHT_BIN +
                       " --log-level error profile --iterations 2 \"cmd:" + marker + "\"; kill $s; echo sleeper=$s'");
  ASSERT_EQ(rc, 0) << out;
  const auto at = out.rfind("sleeper=");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string sleeper = "pid-" + out.substr(at + 8, out.find('\n', at) - at - 8);
  EXPECT_NE(out.find("workloads 1 "), std::string::npos) << out;
  EXPECT_NE(out.find(sleeper), std::string::npos) << out;
}

TEST(Cli, ProfileShowsTheFixtureWorkload) {
  auto [rc, out] = run(std::string(FORESIGHT_BIN) + " profile --period 0.05 --iterations 3 --collectors cgroup.v2 --root " +
                       FORESIGHT_SOURCE_DIR + "/tests/collect/fixtures/v2");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("WORKLOAD"), std::string::npos);
  EXPECT_NE(out.find("/system.slice/app.service"), std::string::npos) << out;
  EXPECT_NE(out.find("90.0MB"), std::string::npos) << out;  // working set 100 MiB - 10 MiB
}

// The agent's config refuses these; record and profile refuse them too instead of writing no
// fingerprints (window 0) or spinning (period 0).
TEST(Cli, RecordAndProfileRefuseFingerprintSettingsAndPeriodsTheAgentRefuses) {
  for (const char* bad : {"--window 0", "--window 3", "--hop 0", "--dim 0"}) {
    auto [rc, out] = run(std::string(FORESIGHT_BIN) + " record --out /tmp/x-unused --duration 1 " + bad);
    EXPECT_NE(rc, 0) << bad << "\n" << out;
  }
  for (const char* bad : {"--period 0", "--period -1", "--window 0", "--hop 0", "--max-depth -2", "--max-depth 0"}) {
    auto [rc, out] = run(std::string(FORESIGHT_BIN) + " profile --iterations 1 " + bad);
    EXPECT_NE(rc, 0) << bad << "\n" << out;
  }
}

// A recording of a node where workloads come and go holds descriptors for the live ones only: here
// 100 cgroups appear and vanish one after another under a limit of 64 descriptors, and the
// recording ends with a file for each. Until the files of gone workloads were closed, the 60th or
// so failed to open and the whole recording was lost (exit status 1, no file kept).
TEST(Cli, RecordOutlivesMoreWorkloadsThanItHasDescriptors) {
  const fs::path base = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                    ("cli-record-churn-" + std::to_string(::getpid())));
  const fs::path root = base / "host", dir = base / "out";
  fs::remove_all(base);
  fs::create_directories(base);
  fs::copy(FORESIGHT_SOURCE_DIR + std::string("/tests/collect/fixtures/v2"), root,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  const std::string slice = (root / "sys/fs/cgroup/system.slice").string();
  // Each cgroup is put in place and taken away whole (mv), so no round reads half a copy. The
  // recording starts first (its first file exists) and is ended by Ctrl-C after the last one.
  const std::string script =
      "ulimit -n 64; " + std::string(FORESIGHT_BIN) + " record --root " + root.string() +
      " --collectors cgroup.v2 --period 0.02 --duration 120 --window 4 --hop 1 --out " + dir.string() +
      " & p=$!; for i in $(seq 600); do ls " + dir.string() +
      "/*.csv.?????? >/dev/null 2>&1 && break; sleep 0.05; done; "
      "for i in $(seq 100); do cp -r " + slice + "/app.service " + base.string() + "/new; mv " + base.string() +
      "/new " + slice + "/c$i.service; sleep 0.04; if [ $i -gt 2 ]; then mv " + slice +
      "/c$((i-2)).service " + base.string() + "/old; rm -rf " + base.string() + "/old; fi; done; "
      "kill -INT $p; wait $p";
  auto [rc, out] = run("bash -c '" + script + "'");
  ASSERT_EQ(rc, 0) << out;
  std::size_t churned = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(e.path().extension() == ".csv" || name == "fingerprints.jsonl") << name;
    if (name.starts_with("_system.slice_c")) ++churned;
  }
  EXPECT_GT(churned, 64u) << out;  // more files than descriptors
}
