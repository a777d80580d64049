// record's CSV output reads back through the project's generic CSV trace reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "foresight/collect/sampler.h"
#include "foresight/trace/reader.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {
fs::path tempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("foresight-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}
Sample sampleAt(const std::string& id, int k) {
  Sample s{id, (1'700'000'000LL + k) * 1'000'000'000LL, {}};
  s.add("cpu_usage_seconds_total", 0.25 * k);            // 0.25 cores
  s.add("memory_working_set_bytes", 1e6 + 1000.0 * k);   // growing
  s.add("io_read_bytes_total", 4096.0 * k);              // 4096 B/s
  s.add("io_write_bytes_total", 0);
  s.add("net_rx_bytes_total", 100.0 * k);
  s.add("net_tx_bytes_total", 50.0 * k);                 // 150 B/s
  return s;
}
}  // namespace

TEST(Record, CsvRoundTripsThroughTraceReader) {
  const fs::path dir = tempDir("record");
  {
    CsvTraceWriter w(dir);
    for (int k = 0; k <= 10; ++k) {
      ASSERT_TRUE(w.add(sampleAt("/system.slice/a.service", k)));
      ASSERT_TRUE(w.add(sampleAt("pid-42", k)));
    }
    ASSERT_TRUE(w.finish());
  }
  EXPECT_TRUE(fs::exists(dir / "_system.slice_a.service.csv"));
  trace::ReadOptions opt{.format = trace::Format::kCsv, .min_days = 0};
  auto t = trace::readTraceDir(dir, opt);
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t->series.size(), 2u);
  EXPECT_EQ(t->step_seconds, 1);
  for (const auto& s : t->series) {
    ASSERT_EQ(s.size(), 10u) << s.id;
    EXPECT_EQ(s.start, 1'700'000'001);
    for (std::size_t k = 0; k < 10; ++k) {
      EXPECT_NEAR(s.usage[0][k], 0.25, 1e-9);
      EXPECT_NEAR(s.usage[1][k], 1e6 + 1000.0 * (k + 1), 1e-3);
      EXPECT_NEAR(s.usage[2][k], 4096, 1e-6);
      EXPECT_NEAR(s.usage[3][k], 150, 1e-6);
    }
  }
  fs::remove_all(dir);
}

TEST(Record, TimestampsKeepMillisecondsAndReadBack) {
  const fs::path dir = tempDir("record-ms");
  {
    CsvTraceWriter w(dir);
    for (int k = 0; k <= 3; ++k) {
      Sample s = sampleAt("x", k);
      s.time_ns += 250'000'000;  // sampled at .25 s past the second
      ASSERT_TRUE(w.add(s));
    }
    ASSERT_TRUE(w.finish());
  }
  std::ifstream in(dir / "x.csv");
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  EXPECT_EQ(row.substr(0, row.find(',')), "1700000001.250");
  trace::ReadOptions opt{.format = trace::Format::kCsv, .min_days = 0};
  auto t = trace::readTraceDir(dir, opt);
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t->series.size(), 1u);
  EXPECT_EQ(t->series[0].start, 1'700'000'001);  // the reader keeps whole seconds
  EXPECT_EQ(t->series[0].size(), 3u);
  fs::remove_all(dir);
}

TEST(Record, UnfinishedRecordingLeavesNoFile) {
  const fs::path dir = tempDir("record-abort");
  {
    CsvTraceWriter w(dir);
    ASSERT_TRUE(w.add(sampleAt("x", 0)));
    ASSERT_TRUE(w.add(sampleAt("x", 1)));
  }  // destroyed without finish(): as after an error
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST(Record, FileNamesAreSafe) {
  EXPECT_EQ(CsvTraceWriter::fileName("/system.slice/a b.service"), "_system.slice_a%20b.service.csv");
  EXPECT_EQ(CsvTraceWriter::fileName("/"), "_.csv");
}

// A nested container's cgroup path can exceed a file name's 255 bytes (the recording failed to
// open its file): long ids get a short name of their own, short ones keep theirs.
TEST(Record, LongWorkloadIdsGetShortDistinctNames) {
  std::string deep;
  for (int i = 0; i < 8; ++i) deep += "/kubepods-burstable-pod0123456789abcdef.slice";
  const std::string a = deep + "/cri-containerd-a.scope", b = deep + "/cri-containerd-b.scope";
  const std::string na = workloadFileName(a), nb = workloadFileName(b);
  EXPECT_LE(na.size(), 200u);
  EXPECT_NE(na, nb);
  EXPECT_EQ(na.substr(0, 20), workloadFileName(deep).substr(0, 20));
  EXPECT_EQ(workloadFileName(a), na) << "not stable";
  const fs::path dir = tempDir("record-long");
  {
    CsvTraceWriter w(dir);
    for (int k = 0; k <= 2; ++k) {
      ASSERT_TRUE(w.add(sampleAt(a, k)));
      ASSERT_TRUE(w.add(sampleAt(b, k)));
    }
    auto st = w.finish();
    ASSERT_TRUE(st) << st.error().message;
  }
  EXPECT_TRUE(fs::exists(dir / (na + ".csv")));
  EXPECT_TRUE(fs::exists(dir / (nb + ".csv")));
  fs::remove_all(dir);
}

// Two workloads never share a file (/revx/y and /revx_y both wrote revx_y.csv, one workload's
// rows in the other's file).
TEST(Record, DifferentWorkloadsGetDifferentFiles) {
  const std::vector<std::string> ids = {"/revx/y", "/revx_y", "/revx y", "/revx%5Fy", "/revx__y",
                                        "/revx//y", "/", "/root", "pid-5", "/pid-5", "/a/", "/a"};
  std::set<std::string> names;
  for (const auto& id : ids) names.insert(workloadFileName(id));
  EXPECT_EQ(names.size(), ids.size());
  const fs::path dir = tempDir("record-distinct");
  {
    CsvTraceWriter w(dir);
    for (int k = 0; k <= 2; ++k) {
      ASSERT_TRUE(w.add(sampleAt("/revx/y", k)));
      ASSERT_TRUE(w.add(sampleAt("/revx_y", k)));
    }
    ASSERT_TRUE(w.finish());
  }
  trace::ReadOptions opt{.format = trace::Format::kCsv, .min_days = 0};
  auto t = trace::readTraceDir(dir, opt);
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t->series.size(), 2u);
  for (const auto& s : t->series) EXPECT_EQ(s.size(), 2u) << s.id;
  fs::remove_all(dir);
}

// finish() renames all the files or none: one that cannot be renamed (here a folder is in its way)
// takes back those already renamed, so a failed recording does not pass for a smaller whole one.
TEST(Record, AFailedFinishLeavesNoFile) {
  const fs::path dir = tempDir("record-finish");
  fs::create_directories(dir / CsvTraceWriter::fileName("/b") / "in-the-way");
  {
    CsvTraceWriter w(dir);
    for (int k = 0; k <= 2; ++k)
      for (const char* id : {"/a", "/b", "/c"}) ASSERT_TRUE(w.add(sampleAt(id, k)));
    auto st = w.finish();
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find(CsvTraceWriter::fileName("/b")), std::string::npos) << st.error().message;
  }
  fs::remove_all(dir / CsvTraceWriter::fileName("/b"));
  EXPECT_TRUE(fs::is_empty(dir));
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
  fs::remove_all(dir);
}

namespace {
std::size_t openFds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}
std::vector<std::string> lines(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
}  // namespace

// A gone workload's file gives back its descriptor and keeps its rows; the same id seen again
// appends after the gap without a row across it (its counters may have restarted).
TEST(Record, AGoneWorkloadsFileIsClosedAndAppendedToIfItReturns) {
  const fs::path dir = tempDir("record-pause");
  {
    CsvTraceWriter w(dir);
    for (int k = 0; k <= 3; ++k) ASSERT_TRUE(w.add(sampleAt("x", k)));
    const std::size_t open = openFds();
    ASSERT_TRUE(w.pause("x"));
    EXPECT_EQ(openFds(), open - 1);
    ASSERT_TRUE(w.pause("x"));        // gone again: nothing to do
    ASSERT_TRUE(w.pause("never"));    // never seen: nothing to do
    Sample restarted = sampleAt("x", 0);  // counters from zero again, ten seconds later
    restarted.time_ns += 10'000'000'000LL;
    ASSERT_TRUE(w.add(restarted));
    EXPECT_EQ(openFds(), open);
    Sample next = sampleAt("x", 1);
    next.time_ns += 10'000'000'000LL;
    ASSERT_TRUE(w.add(next));
    EXPECT_EQ(w.workloads(), 1u);
    ASSERT_TRUE(w.finish());
  }
  const auto rows = lines(dir / "x.csv");
  ASSERT_EQ(rows.size(), 5u);  // the header, three rows before the gap, one after
  EXPECT_EQ(rows[3].substr(0, rows[3].find(',')), "1700000003.000");
  EXPECT_EQ(rows[4].substr(0, rows[4].find(',')), "1700000011.000");
  EXPECT_EQ(rows[4].substr(rows[4].find(',') + 1, 4), "0.25");  // a rate within the new stretch
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "x.csv");
  fs::remove_all(dir);
}
