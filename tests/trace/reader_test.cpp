// Trace readers on small files written by the tests themselves.
#include "foresight/trace/reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <random>

#include "support/mutate.h"

namespace foresight::trace {
namespace {
namespace fs = std::filesystem;

constexpr const char* kBitbrainsHeader =
    "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage "
    "[%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput "
    "[KB/s];\tDisk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork "
    "transmitted throughput [KB/s]";

class TraceReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("foresight-trace-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  fs::path writeGz(const std::string& name, const std::string& text) {
    gzFile f = gzopen((dir_ / name).c_str(), "wb");
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
    return dir_ / name;
  }
  // A bitbrains row: 2 cores of 2000 MHz, usage in MHz, memory KB, disk r/w, net rx/tx KB/s.
  static std::string row(long t, double cores, double cpu_mhz, double mem_kb, double io = 1,
                         double net = 2) {
    return fmt::format("{};\t{};\t{};\t{};\t0;\t8000000;\t{};\t{};\t{};\t{};\t{}\n", t, cores,
                       cores * 2000, cpu_mhz, mem_kb, io, io, net, net);
  }
  // A generic CSV of `steps` rows every 300 s with cpu = i % 7.
  static std::string generic(int steps, long t0 = 1000000) {
    std::string s = "timestamp,cpu,memory\n";
    for (int i = 0; i < steps; ++i) s += fmt::format("{},{},{}\n", t0 + 300L * i, i % 7, 1e9);
    return s;
  }

  fs::path dir_;
};

TEST_F(TraceReaderTest, BitbrainsUnitsAndQuirks) {
  std::string text = std::string(kBitbrainsHeader) + "\n";
  const long t0 = 1372629804;
  // 3 days at 300 s; rows written out of order, one duplicated, plus a ghost copy (cores 0).
  std::vector<std::string> rows;
  for (int i = 0; i < 3 * 288; ++i) rows.push_back(row(t0 + 300L * i, 2, 1000, i == 5 ? 0 : 4096));
  std::swap(rows[10], rows[11]);
  rows.push_back(row(t0 + 300L * 20, 2, 9999, 4096));  // duplicate timestamp: dropped (first kept)
  rows.push_back(row(t0 + 300L * 3 + 7, 0, 5000, 0));  // ghost copy
  for (auto& r : rows) text += r;
  writeGz("7.csv.gz", text);

  ReadOptions o;
  o.format = Format::kBitbrains;
  auto tr = readTraceDir(dir_, o);
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 1u);
  const Series& s = tr->series[0];
  EXPECT_EQ(s.id, "7");
  EXPECT_EQ(s.step_seconds, 300);
  EXPECT_EQ(s.start, t0);
  ASSERT_EQ(s.size(), 3u * 288);
  // cpu cores = MHz / (capacity / cores) = 1000 / 2000
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kCpu)][0], 0.5);
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kCpu)][20], 0.5);  // not the duplicate's 9999
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kCpu)][3], 0.5);   // not averaged with the ghost
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kMemory)][0], 4096.0 * 1024);
  EXPECT_TRUE(std::isnan(s.usage[index(Resource::kMemory)][5]));  // memory 0 is missing
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kDiskIo)][0], 2 * 1024.0);
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kNetwork)][0], 4 * 1024.0);
  EXPECT_DOUBLE_EQ(s.metadata.at("cpu_cores"), 2);
  EXPECT_DOUBLE_EQ(s.metadata.at("cpu_capacity_mhz"), 4000);
}

TEST_F(TraceReaderTest, BitbrainsWrongHeaderNamesFileAndLine) {
  write("1.csv", "Timestamp;CPU\n1;2\n");
  auto raw = parseFile(dir_ / "1.csv", Format::kBitbrains);
  ASSERT_FALSE(raw);
  EXPECT_EQ(raw.error().code, ErrorCode::kParse);
  EXPECT_NE(raw.error().message.find("1.csv:1: not a GWA-T-12"), std::string::npos)
      << raw.error().message;
}

TEST_F(TraceReaderTest, UnparseableNumberNamesFileLineAndColumn) {
  write("bad.csv", generic(3) + "1000900,abc,5\n");
  auto raw = parseFile(dir_ / "bad.csv", Format::kCsv);
  ASSERT_FALSE(raw);
  EXPECT_NE(raw.error().message.find("bad.csv:5: 'abc' is not a number (column 'cpu')"),
            std::string::npos)
      << raw.error().message;
}

TEST_F(TraceReaderTest, NegativeUsageIsAnError) {
  write("neg.csv", "timestamp,cpu\n1,0.5\n301,-1\n");
  auto raw = parseFile(dir_ / "neg.csv", Format::kCsv);
  ASSERT_FALSE(raw);
  EXPECT_NE(raw.error().message.find("neg.csv:3: negative usage"), std::string::npos)
      << raw.error().message;
}

TEST_F(TraceReaderTest, GenericHeaderErrors) {
  write("a.csv", "time,cpu\n");
  write("b.csv", "timestamp,cpu,gpu\n");
  write("c.csv", "timestamp,cpu,cpu\n");
  write("d.csv", "");
  write("e.csv", "timestamp,cpu\n1,2,3\n");
  for (const char* f : {"a.csv", "b.csv", "c.csv", "d.csv", "e.csv"}) {
    auto raw = parseFile(dir_ / f, Format::kCsv);
    ASSERT_FALSE(raw) << f;
    EXPECT_NE(raw.error().message.find(f), std::string::npos) << raw.error().message;
  }
}

TEST_F(TraceReaderTest, GenericUnitsInTheHeaderAreConvertedToCoresBytesAndBytesPerSecond) {
  std::string s = "timestamp,cpu[millicores],memory[GiB],disk_io[KiB/s],network[Mbit/s]\n";
  for (int i = 0; i < 3 * 288; ++i) s += fmt::format("{},250,1.5,2,8\n", 300L * i);
  write("u.csv", s);
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  const Series& ser = tr->series.at(0);
  EXPECT_DOUBLE_EQ(ser.usage[index(Resource::kCpu)][0], 0.25);
  EXPECT_DOUBLE_EQ(ser.usage[index(Resource::kMemory)][0], 1.5 * 1024 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(ser.usage[index(Resource::kDiskIo)][0], 2048);
  EXPECT_DOUBLE_EQ(ser.usage[index(Resource::kNetwork)][0], 1e6);
  EXPECT_TRUE(unitWarnings(*tr).empty());

  write("p.csv", "timestamp[ms],cpu[%]\n1500,50\n");
  auto pct = parseFile(dir_ / "p.csv", Format::kCsv);
  ASSERT_TRUE(pct) << pct.error().message;
  EXPECT_DOUBLE_EQ(pct->front().value[index(Resource::kCpu)][0], 0.5);
  EXPECT_EQ(pct->front().time[0], 2);  // 1.5 s, rounded
  write("us.csv", "timestamp[us],cpu\n600000000,1\n");
  EXPECT_EQ(parseFile(dir_ / "us.csv", Format::kCsv)->front().time[0], 600);
  write("h.csv", "timestamp[h],cpu\n1,1\n");
  auto hours = parseFile(dir_ / "h.csv", Format::kCsv);
  ASSERT_FALSE(hours);
  EXPECT_NE(hours.error().message.find("h.csv:1: unknown unit 'h' for timestamp (known: s, ms, us, ns)"),
            std::string::npos) << hours.error().message;
  // A unit of another resource, or none known: refused with the file, line and the known units.
  for (const char* h : {"memory[cores]", "cpu[GHz]", "memory[]"}) {
    write("bad.csv", fmt::format("timestamp,{}\n0,1\n", h));
    auto raw = parseFile(dir_ / "bad.csv", Format::kCsv);
    ASSERT_FALSE(raw) << h;
    EXPECT_NE(raw.error().message.find("bad.csv:1: unknown unit"), std::string::npos) << raw.error().message;
    EXPECT_NE(raw.error().message.find("known:"), std::string::npos) << raw.error().message;
  }
}

TEST_F(TraceReaderTest, ValuesThatAreNotInForesightsUnitsAreWarnedAbout) {
  // Memory as a fraction of a machine and cpu in MHz, as some public traces give them.
  std::string s = "timestamp,cpu,memory\n";
  for (int i = 0; i < 3 * 288; ++i) s += fmt::format("{},{},0.3\n", 300L * i, 2000 + i % 7);
  write("n.csv", s);
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  auto w = unitWarnings(*tr);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_TRUE(w[0].starts_with("memory: the median series uses 0.3")) << w[0];
  EXPECT_TRUE(w[1].starts_with("cpu: the median series peaks at 2006")) << w[1];
  // Relative millisecond timestamps read as seconds: a step of 300,000 s.
  std::string ms = "timestamp,cpu,memory\n";
  for (int i = 0; i < 3 * 288; ++i) ms += fmt::format("{},1,1e9\n", 300'000L * i);
  write("n.csv", ms);
  auto slow = readTraceDir(dir_, {});
  ASSERT_TRUE(slow) << slow.error().message;
  auto ws = unitWarnings(*slow);
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_TRUE(ws[0].starts_with("timestamp: the trace's step is 300000 s")) << ws[0];
  // Unix milliseconds read as seconds lie past the year 5000: refused, with the line.
  write("n.csv", "timestamp,cpu,memory\n1000000000,1,1e9\n1000000000000,1,1e9\n");
  auto far = readTraceDir(dir_, {.strict = true});
  ASSERT_FALSE(far);
  EXPECT_NE(far.error().message.find("n.csv:3: timestamp '1000000000000'"), std::string::npos)
      << far.error().message;
  EXPECT_NE(far.error().message.find("timestamp[ms]"), std::string::npos);
  // generic() is in cores and bytes: no warning.
  write("n.csv", generic(3 * 288));
  auto ok = readTraceDir(dir_, {});
  ASSERT_TRUE(ok);
  EXPECT_TRUE(unitWarnings(*ok).empty());
}

TEST_F(TraceReaderTest, BadFileIsSkippedAndCountedOrFailsWhenStrict) {
  write("good.csv", generic(3 * 288));
  write("bad.csv", generic(3 * 288) + "oops,1,1\n");
  ReadOptions o;
  auto tr = readTraceDir(dir_, o);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->series.size(), 1u);
  ASSERT_EQ(tr->skipped.size(), 1u);
  EXPECT_NE(tr->skipped[0].reason.find("bad.csv:"), std::string::npos);
  o.strict = true;
  auto strict = readTraceDir(dir_, o);
  ASSERT_FALSE(strict);
  EXPECT_NE(strict.error().message.find("bad.csv:"), std::string::npos);
}

TEST_F(TraceReaderTest, GenericSubsetOfColumnsAndEmptyCells) {
  std::string s = "timestamp,network,cpu\n";
  for (int i = 0; i < 3 * 288; ++i) s += fmt::format("{},{},{}\n", 300L * i, i == 4 ? "" : "10", 1);
  write("x.csv", s);
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  const Series& ser = tr->series.at(0);
  EXPECT_TRUE(ser.has(Resource::kCpu));
  EXPECT_TRUE(ser.has(Resource::kNetwork));
  EXPECT_FALSE(ser.has(Resource::kMemory));
  EXPECT_FALSE(tr->resources[index(Resource::kMemory)]);
  EXPECT_TRUE(std::isnan(ser.usage[index(Resource::kNetwork)][4]));
  EXPECT_DOUBLE_EQ(ser.usage[index(Resource::kNetwork)][5], 10);
}

TEST_F(TraceReaderTest, ResamplesToTheMedianStepByMean) {
  // Samples every 60 s with values 1..5 repeating: each 300 s step averages to 3.
  std::string s = "timestamp,cpu\n";
  for (int i = 0; i < 5 * 3 * 288; ++i) s += fmt::format("{},{}\n", 60L * i, 1 + i % 5);
  write("fast.csv", s);
  write("slow.csv", generic(3 * 288));
  write("slow2.csv", generic(3 * 288));
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  EXPECT_EQ(tr->step_seconds, 300);  // median of 60, 300, 300
  const Series* fast = nullptr;
  for (const auto& ser : tr->series)
    if (ser.id == "fast") fast = &ser;
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->size(), 3u * 288);
  for (double v : fast->usage[index(Resource::kCpu)]) EXPECT_DOUBLE_EQ(v, 3.0);
}

TEST_F(TraceReaderTest, ShortGapsAreCarriedForwardLongGapsSplit) {
  std::string s = "timestamp,cpu\n";
  long t = 0;
  auto add = [&](int steps, double v) {
    for (int i = 0; i < steps; ++i, t += 300) s += fmt::format("{},{}\n", t, v);
  };
  add(3 * 288, 1);
  t += 300 * 3;  // a gap of 3 missing steps: filled with the last value
  add(10, 2);
  t += 300 * 4;  // a gap of 4 missing steps: the series splits
  add(2 * 288 + 5, 3);
  t += 300 * 20;
  add(100, 4);  // too short on its own: skipped and counted
  write("gappy.csv", s);
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 2u);
  EXPECT_EQ(tr->series[0].id, "gappy#1");
  EXPECT_EQ(tr->series[1].id, "gappy#2");
  const auto& u = tr->series[0].usage[index(Resource::kCpu)];
  ASSERT_EQ(u.size(), 3u * 288 + 3 + 10);
  EXPECT_DOUBLE_EQ(u[3 * 288], 1.0);  // carried forward
  EXPECT_DOUBLE_EQ(u[3 * 288 + 2], 1.0);
  EXPECT_DOUBLE_EQ(u[3 * 288 + 3], 2.0);
  EXPECT_EQ(tr->series[1].size(), 2u * 288 + 5);
  EXPECT_EQ(tr->series[1].start, 300L * (3 * 288 + 3 + 10 + 4));
  ASSERT_EQ(tr->skipped.size(), 1u);
  EXPECT_NE(tr->skipped[0].reason.find("gappy#3"), std::string::npos);

  ReadOptions strict;
  strict.strict = true;
  EXPECT_FALSE(readTraceDir(dir_, strict));
}

TEST_F(TraceReaderTest, AStrayTimestampMakesAShortPieceNotAnArrayOverTheGap) {
  // One row a century after the rest (inside the accepted range): the series keeps its 3 days and
  // the stray row is a piece of its own, skipped as too short, without 10^7 buckets in between.
  std::string s = generic(3 * 288);
  s += fmt::format("{},1,1e9\n", 1000000L + 3'155'760'000L);
  write("a.csv", s);
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 1u);
  EXPECT_EQ(tr->series[0].id, "a#1");
  EXPECT_EQ(tr->series[0].size(), 3u * 288);
  ASSERT_EQ(tr->skipped.size(), 1u);
  EXPECT_NE(tr->skipped[0].reason.find("a#2: 0.00 days"), std::string::npos) << tr->skipped[0].reason;
}

TEST_F(TraceReaderTest, ACutOffGzipFileIsRefusedNotReadInPart) {
  const std::string text = generic(3 * 288);
  z_stream z{};
  ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string gz(compressBound(static_cast<uLong>(text.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(gz.data());
  z.avail_out = static_cast<uInt>(gz.size());
  ASSERT_EQ(deflate(&z, Z_FULL_FLUSH), Z_OK);  // all of it, but no end of stream or CRC
  gz.resize(z.total_out);
  deflateEnd(&z);
  write("cut.csv.gz", gz);
  auto strict = readTraceDir(dir_, {.strict = true});
  ASSERT_FALSE(strict);
  EXPECT_NE(strict.error().message.find("cut.csv.gz: truncated gzip file"), std::string::npos)
      << strict.error().message;
  write("whole.csv", generic(3 * 288));
  auto lenient = readTraceDir(dir_, {});
  ASSERT_TRUE(lenient) << lenient.error().message;
  EXPECT_EQ(lenient->series.size(), 1u);
  EXPECT_EQ(lenient->skipped.size(), 1u);
}

TEST_F(TraceReaderTest, AStepFinerThanTheSamplesIsRefusedWithTheStepToUse) {
  write("a.csv", generic(3 * 288));
  auto tr = readTraceDir(dir_, {.step_seconds = 60});
  ASSERT_FALSE(tr);
  EXPECT_NE(tr.error().message.find("median 300 s apart"), std::string::npos) << tr.error().message;
  EXPECT_NE(tr.error().message.find("at least 75 s"), std::string::npos) << tr.error().message;
  EXPECT_TRUE(readTraceDir(dir_, {.step_seconds = 75}));
}

TEST_F(TraceReaderTest, WhenEveryFileIsRefusedTheErrorGivesTheFirstReason) {
  write("a.csv", "cpu,memory\n1,2\n");
  write("b.csv", "cpu,memory\n1,2\n");
  auto tr = readTraceDir(dir_, {});
  ASSERT_FALSE(tr);
  EXPECT_NE(tr.error().message.find("2 file(s) refused"), std::string::npos) << tr.error().message;
  EXPECT_NE(tr.error().message.find(".csv:1: header must start with 'timestamp'"), std::string::npos)
      << tr.error().message;
}

TEST_F(TraceReaderTest, GenericFileWithAnIdColumnHoldsManySeries) {
  // Rows of two workloads interleaved, as public traces list them; b has a missing memory cell.
  std::string s = "id,timestamp,cpu[m],memory[MiB]\n";
  for (int i = 0; i < 3 * 288; ++i) {
    s += fmt::format("b,{},{},{}\n", 300L * i, 2000, i == 7 ? "" : "64");
    s += fmt::format("a,{},{},{}\n", 300L * i, 500, 32);
  }
  write("all.csv", s);
  auto raws = parseFile(dir_ / "all.csv", Format::kCsv);
  ASSERT_TRUE(raws) << raws.error().message;
  ASSERT_EQ(raws->size(), 2u);
  EXPECT_EQ((*raws)[0].id, "b");  // order of first appearance
  EXPECT_EQ((*raws)[1].id, "a");
  EXPECT_TRUE(std::isnan((*raws)[0].value[index(Resource::kMemory)][7]));

  // The file itself may be given instead of its folder.
  auto tr = readTraceDir(dir_ / "all.csv", {});
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 2u);
  const Series& b = tr->series[0];
  EXPECT_EQ(b.id, "b");
  EXPECT_EQ(tr->step_seconds, 300);
  EXPECT_EQ(b.size(), 3u * 288);
  EXPECT_DOUBLE_EQ(b.usage[index(Resource::kCpu)][0], 2.0);
  EXPECT_DOUBLE_EQ(b.usage[index(Resource::kMemory)][0], 64.0 * 1024 * 1024);
  EXPECT_EQ(tr->series[1].id, "a");
  EXPECT_DOUBLE_EQ(tr->series[1].usage[index(Resource::kCpu)][5], 0.5);
}

// Files are read in 1 MiB chunks: lines that straddle a chunk, CRLF line ends and a last line
// without a newline are all read, plain or gzip'd.
TEST_F(TraceReaderTest, ReadsLargeFilesInChunksWholly) {
  std::string s = "id,timestamp,cpu\r\n";
  const int rows = 60000;  // about 1.6 MB
  for (int i = 0; i < rows; ++i) s += fmt::format("workload-{:03},{},{}\r\n", i % 100, 300L * (i / 100), i);
  s.resize(s.size() - 2);  // no final line end
  write("big.csv", s);
  writeGz("big2.csv.gz", s);
  for (const char* f : {"big.csv", "big2.csv.gz"}) {
    auto raws = parseFile(dir_ / f, Format::kCsv);
    ASSERT_TRUE(raws) << raws.error().message;
    ASSERT_EQ(raws->size(), 100u) << f;
    std::size_t n = 0;
    double sum = 0;
    for (const auto& r : *raws) {
      n += r.time.size();
      for (double v : r.value[index(Resource::kCpu)]) sum += v;
    }
    EXPECT_EQ(n, static_cast<std::size_t>(rows)) << f;
    EXPECT_DOUBLE_EQ(sum, 0.5 * rows * (rows - 1.0)) << f;  // every value read whole
    EXPECT_DOUBLE_EQ(raws->back().value[index(Resource::kCpu)].back(), rows - 1) << f;
  }
}

TEST_F(TraceReaderTest, AnIdInSeveralFilesIsOneSeries) {
  // A trace sharded by time: day 1 in one file, days 2-3 in the next; only the second has memory.
  std::string day1 = "id,timestamp,cpu\n", rest = "id,timestamp,cpu,memory\n";
  for (int i = 0; i < 288; ++i) day1 += fmt::format("vm1,{},1\n", 300L * i);
  for (int i = 288; i < 3 * 288; ++i) rest += fmt::format("vm1,{},2,{}\n", 300L * i, 1e9);
  write("part-0.csv", day1);
  write("part-1.csv", rest);
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 1u);
  const Series& s = tr->series[0];
  EXPECT_EQ(s.id, "vm1");
  ASSERT_EQ(s.size(), 3u * 288);
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kCpu)][0], 1);
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kCpu)][288], 2);
  EXPECT_TRUE(std::isnan(s.usage[index(Resource::kMemory)][0]));
  EXPECT_DOUBLE_EQ(s.usage[index(Resource::kMemory)][300], 1e9);
}

TEST_F(TraceReaderTest, IdColumnErrorsNameFileAndLine) {
  write("a.csv", "id,cpu\nx,1\n");
  write("b.csv", "id,timestamp,cpu\nx,0,1\n,300,1\n");
  write("d.csv", "id,timestamp,cpu\n");
  const std::pair<const char*, const char*> cases[] = {
      {"a.csv", "a.csv:1: header must start with 'timestamp'"},
      {"b.csv", "b.csv:3: empty id"},
      {"d.csv", "d.csv: no rows after the header"}};
  for (auto [f, want] : cases) {
    auto raw = parseFile(dir_ / f, Format::kCsv);
    ASSERT_FALSE(raw) << f;
    EXPECT_NE(raw.error().message.find(want), std::string::npos) << raw.error().message;
  }
  // A bad row of one series refuses that series, not the file.
  write("c.csv", "id,timestamp,cpu\nx,0\ny,0,1\n");
  auto raws = parseFile(dir_ / "c.csv", Format::kCsv);
  ASSERT_TRUE(raws) << raws.error().message;
  ASSERT_EQ(raws->size(), 2u);
  EXPECT_NE((*raws)[0].error.find("c.csv:2: expected 3 fields, found 2"), std::string::npos)
      << (*raws)[0].error;
  EXPECT_TRUE((*raws)[1].error.empty());
}

// A trace sharded by time with one bad cell of one workload in the middle file: that workload is
// skipped whole (in every file) and counted once; the others keep all three days. Before, the
// whole middle file was refused: every workload got a day-long hole and fell into two pieces.
TEST_F(TraceReaderTest, ABadRowInAShardedTraceRefusesItsSeriesEverywhereAndOnlyIt) {
  for (int day = 0; day < 3; ++day) {
    std::string s = "id,timestamp,cpu\n";
    for (int i = 288 * day; i < 288 * (day + 1); ++i)
      for (const char* id : {"w1", "w2", "w3"})
        s += fmt::format("{},{},{}\n", id, 300L * i, day == 1 && i == 400 && id[1] == '2' ? "-1" : "1");
    write(fmt::format("part{}.csv", day), s);
  }
  auto tr = readTraceDir(dir_, {});
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 2u);
  for (const Series& s : tr->series) {
    EXPECT_NE(s.id, "w2");
    EXPECT_EQ(s.size(), 3u * 288) << s.id;
  }
  ASSERT_EQ(tr->skipped.size(), 1u);
  EXPECT_NE(tr->skipped[0].reason.find("series 'w2'"), std::string::npos) << tr->skipped[0].reason;
  EXPECT_NE(tr->skipped[0].reason.find("part1.csv:"), std::string::npos) << tr->skipped[0].reason;
  EXPECT_NE(tr->skipped[0].reason.find("negative usage -1"), std::string::npos);

  ReadOptions strict;
  strict.strict = true;
  auto refused = readTraceDir(dir_, strict);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("negative usage -1"), std::string::npos);
}

// A header after blank lines or behind a UTF-8 byte order mark (as spreadsheets save CSV) is the
// header; before, a blank first line made the header a data row, and a BOM an unknown column.
TEST_F(TraceReaderTest, TheHeaderIsTheFirstLineThatIsNotBlankWithoutAByteOrderMark) {
  const std::string rows = generic(3 * 288);
  write("blank.csv", "\n\n" + rows);
  write("bom.csv", "\xEF\xBB\xBF" + rows);
  for (const char* f : {"blank.csv", "bom.csv"}) {
    auto raw = parseFile(dir_ / f, Format::kCsv);
    ASSERT_TRUE(raw) << f << ": " << raw.error().message;
    EXPECT_EQ(raw->front().time.size(), 3u * 288) << f;
  }
  write("bad.csv", "\n\ntimestamp,cpus\n0,1\n");
  auto bad = parseFile(dir_ / "bad.csv", Format::kCsv);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad.csv:3: unknown column 'cpus'"), std::string::npos)
      << bad.error().message;
}

// Damaged files of both formats are read or refused with the file named; none crashes or throws
// (the sanitizer build checks the reads stay in bounds).
TEST_F(TraceReaderTest, DamagedFilesAreReadOrRefusedWithTheirFileNamed) {
  std::string bitbrains = std::string(kBitbrainsHeader) + "\n";
  for (int i = 0; i < 6; ++i) bitbrains += row(1372629804 + 300L * i, 2, 100.5 * i, 1e6 + i, 1.5, 2e-3);
  std::string with_id = "id,timestamp,cpu,memory[GiB],disk_io,network\n";
  for (int i = 0; i < 6; ++i) with_id += fmt::format("vm-{},{},{},{},1e3,\n", i % 2, 1000000 + 300 * i, 0.5 * i, 1.25);
  struct Case {
    std::string seed;
    Format format;
  };
  std::size_t read = 0, refused = 0;
  for (const auto& [seed, format] : {Case{bitbrains, Format::kBitbrains}, Case{with_id, Format::kCsv},
                                     Case{generic(6), Format::kCsv}}) {
    int n = 0;
    for (const auto& text : test_support::mutations(seed, 400)) {
      const auto file = write(fmt::format("damaged-{}.csv", n++), text);
      Result<std::vector<RawSeries>> r = fail(ErrorCode::kInternal, "not read");
      ASSERT_NO_THROW(r = parseFile(file, format)) << text;
      if (r) {
        ++read;
        for (const auto& series : *r) {
          for (const auto& values : series.value)
            EXPECT_TRUE(values.empty() || values.size() == series.time.size()) << series.id << ": " << text;
          if (!series.error.empty()) {
            EXPECT_NE(series.error.find(file.filename().string()), std::string::npos) << series.error;
          }
        }
      } else {
        ++refused;
        EXPECT_NE(r.error().message.find(file.filename().string()), std::string::npos) << r.error().message;
      }
    }
  }
  // Both outcomes occur, so the mutations reach the parsers' checks and also leave files they read.
  EXPECT_GT(read, 100u);
  EXPECT_GT(refused, 100u);
  // An empty file, plain or named .gz (zlib reads a stream that is not gzip as it is): no header.
  for (const char* name : {"empty.csv", "empty.csv.gz"}) {
    auto r = parseFile(write(name, ""), Format::kBitbrains);
    ASSERT_FALSE(r) << name;
    EXPECT_NE(r.error().message.find(std::string(name) + ": empty file (no header)"), std::string::npos) << r.error().message;
  }
  // A damaged gzip stream: refused with the file named (its CRC or its inflate fails), never read in part.
  std::ifstream gz(writeGz("seed.csv.gz", bitbrains), std::ios::binary);
  const std::string packed((std::istreambuf_iterator<char>(gz)), {});
  int n = 0;
  for (const auto& bytes : test_support::mutations(packed, 200)) {
    const auto file = write(fmt::format("damaged-{}.csv.gz", n++), bytes);
    Result<std::vector<RawSeries>> r = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(r = parseFile(file, Format::kBitbrains));
    if (!r) {
      EXPECT_NE(r.error().message.find(file.filename().string()), std::string::npos) << r.error().message;
    } else {  // an edit the stream does not cover (its header's name or time fields, say)
      ASSERT_EQ(r->size(), 1u);
      EXPECT_EQ((*r)[0].time.size(), 6u);
    }
  }
}

TEST_F(TraceReaderTest, EmptyFolderIsAnError) {
  auto tr = readTraceDir(dir_, {});
  ASSERT_FALSE(tr);
  EXPECT_NE(tr.error().message.find("no trace files"), std::string::npos);
  auto missing = readTraceDir(dir_ / "missing", {});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("missing: no such file or folder"), std::string::npos)
      << missing.error().message;
}

TEST_F(TraceReaderTest, FileThatVanishesMidRunIsSkipped) {
  write("a.csv", generic(3 * 288));
  write("b.csv", generic(3 * 288));
  auto files = listTraceFiles(dir_);
  ASSERT_TRUE(files);
  ASSERT_EQ(files->size(), 2u);
  fs::remove(dir_ / "b.csv");  // after listing, before reading
  auto tr = readTrace(*files, {});
  ASSERT_TRUE(tr) << tr.error().message;
  EXPECT_EQ(tr->series.size(), 1u);
  ASSERT_EQ(tr->skipped.size(), 1u);
  EXPECT_NE(tr->skipped[0].reason.find("b.csv: cannot open"), std::string::npos)
      << tr->skipped[0].reason;
  ReadOptions strict;
  strict.strict = true;
  EXPECT_FALSE(readTrace(*files, strict));
}

}  // namespace
}  // namespace foresight::trace
