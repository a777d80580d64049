// record's CSV output reads back through the project's generic CSV trace reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

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
  EXPECT_TRUE(fs::exists(dir / "system.slice_a.service.csv"));
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
  EXPECT_EQ(CsvTraceWriter::fileName("/system.slice/a b.service"), "system.slice_a_b.service.csv");
  EXPECT_EQ(CsvTraceWriter::fileName("/"), "root.csv");
}
