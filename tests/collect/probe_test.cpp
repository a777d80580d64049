// libforesight-probe.so loaded into a program with known I/O (probe_target.c): counts, bytes,
// errors and histogram totals per call class, across fork and exec, and read back by the agent's
// probe collector.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>

#include "foresight/collect/collector.h"
#include "foresight/collect/probe_reader.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {

// Runs probe_target with the probe preloaded; returns its pid and exit status.
std::pair<pid_t, int> runTarget(const std::string& probe_dir, const std::string& data_file) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("LD_PRELOAD", FORESIGHT_PROBE_LIB, 1);
    ::setenv("FORESIGHT_PROBE_DIR", probe_dir.c_str(), 1);
    ::setenv("FORESIGHT_PROBE_KEEP", "1", 1);
    ::execl(FORESIGHT_PROBE_TARGET, FORESIGHT_PROBE_TARGET, data_file.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

std::uint64_t histTotal(const fs_probe_counters& c) {
  return std::accumulate(std::begin(c.hist), std::end(c.hist), std::uint64_t{0});
}

}  // namespace

TEST(Probe, CountsKnownIoAcrossForkAndExec) {
  const fs::path dir = fs::path(testing::TempDir()) / ("probe-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string data = (dir / "data").string();
  auto [pid, rc] = runTarget(dir.string(), data);
  ASSERT_EQ(rc, 0);
  std::string child_text;
  std::ifstream(data + ".child") >> child_text;
  ASSERT_FALSE(child_text.empty());
  const pid_t child = std::stoi(child_text);

  auto seg = readProbeSegment(probeSegmentPath(dir, pid));
  ASSERT_TRUE(seg) << seg.error().message;
  EXPECT_EQ(seg->pid, pid);
  EXPECT_EQ(seg->execs, 2u);  // the first image and the one after exec
  const auto& c = seg->c;
  EXPECT_EQ(c[FS_PROBE_READ].calls, 50u);
  EXPECT_EQ(c[FS_PROBE_READ].bytes, 50u * 1000);
  // 100 x 4096 to the data file, the child's pid to the .child file, 7 x 10 after exec.
  EXPECT_EQ(c[FS_PROBE_WRITE].calls, 100u + 1 + 7);
  EXPECT_EQ(c[FS_PROBE_WRITE].bytes, 100u * 4096 + child_text.size() + 70);
  EXPECT_EQ(c[FS_PROBE_FSYNC].calls, 10u);
  EXPECT_EQ(c[FS_PROBE_SEND].calls, 20u);
  EXPECT_EQ(c[FS_PROBE_SEND].bytes, 20u * 64);
  EXPECT_EQ(c[FS_PROBE_RECV].bytes, 20u * 64);
  EXPECT_EQ(c[FS_PROBE_CONNECT].calls, 1u);
  EXPECT_EQ(c[FS_PROBE_CONNECT].errors, 1u);  // refused
  EXPECT_EQ(c[FS_PROBE_PIPE].calls, 1u);
  EXPECT_EQ(c[FS_PROBE_SOCKET].calls, 2u);  // socketpair + socket
  EXPECT_EQ(c[FS_PROBE_ACCEPT].calls, 0u);
  for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
    EXPECT_EQ(histTotal(c[k]), c[k].calls) << fs_probe_class_name(k);
  }
  EXPECT_GT(c[FS_PROBE_FSYNC].total_ns, 0u);

  auto cs = readProbeSegment(probeSegmentPath(dir, child));
  ASSERT_TRUE(cs) << cs.error().message;
  EXPECT_EQ(cs->c[FS_PROBE_WRITE].calls, 5u);  // its own segment, not the parent's
  EXPECT_EQ(cs->c[FS_PROBE_WRITE].bytes, 15u);
  EXPECT_EQ(cs->c[FS_PROBE_READ].calls, 0u);

  // The agent side sums the workload's processes.
  CollectorContext ctx;
  ctx.probe_dir = dir;
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto probe = reg.create("probe", ctx);
  ASSERT_TRUE(probe);
  Sample s;
  ASSERT_TRUE((*probe)->collect({Workload::Kind::kProcessTree, "t", "", pid}, {pid, child, 999999}, s));
  EXPECT_DOUBLE_EQ(s.get("probe_processes"), 2);
  EXPECT_DOUBLE_EQ(s.get("probe_write_calls_total"), 113);
  EXPECT_DOUBLE_EQ(s.get("probe_connect_errors_total"), 1);
  // p99 of the 10 fsyncs: the upper edge 2^b ns of the bucket holding the 10th (= last) one.
  int top = 0;
  for (int b = 0; b < FS_PROBE_BUCKETS; ++b) if (c[FS_PROBE_FSYNC].hist[b] > 0) top = b;
  EXPECT_DOUBLE_EQ(s.get("probe_fsync_p99_seconds"), std::ldexp(1.0, top) / 1e9);
  EXPECT_FALSE(s.has("probe_accept_p99_seconds"));  // no accept call
  // A second collect with no new calls reports no p99 (window is empty) but the same totals.
  Sample again;
  ASSERT_TRUE((*probe)->collect({Workload::Kind::kProcessTree, "t", "", pid}, {pid, child}, again));
  EXPECT_FALSE(again.has("probe_fsync_p99_seconds"));
  EXPECT_DOUBLE_EQ(again.get("probe_write_calls_total"), 113);
  fs::remove_all(dir);
}

TEST(Probe, ProgramRunsWhenTheSegmentCannotBeCreated) {
  const fs::path dir = fs::path(testing::TempDir()) / ("probe-nodir-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto [pid, rc] = runTarget("/nonexistent/foresight", (dir / "data").string());
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(readProbeSegment(probeSegmentPath("/nonexistent/foresight", pid)).error().code,
            ErrorCode::kNotFound);
  fs::remove_all(dir);
}

TEST(Probe, ReaderRejectsForeignFiles) {
  const fs::path f = fs::path(testing::TempDir()) / "not-a-segment";
  std::ofstream(f) << "hello";
  EXPECT_EQ(readProbeSegment(f).error().code, ErrorCode::kParse);
  fs::remove(f);
}
