#include <zlib.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <unordered_map>

#include "foresight/core/log.h"
#include "foresight/core/parallel.h"
#include "foresight/trace/reader.h"

namespace foresight::trace {
namespace fs = std::filesystem;

Result<Format> parseFormat(const std::string& s) {
  if (s == "bitbrains") return Format::kBitbrains;
  if (s == "csv") return Format::kCsv;
  return fail(ErrorCode::kInvalidArgument, "unknown trace format '{}' (known: bitbrains, csv)", s);
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Splits on `sep` into `out` (reused across lines to avoid allocations).
void split(std::string_view line, char sep, std::vector<std::string_view>& out) {
  out.clear();
  std::size_t pos = 0;
  for (;;) {
    std::size_t next = line.find(sep, pos);
    out.push_back(trim(line.substr(pos, next - pos)));
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
}

bool parseNumber(std::string_view s, double& out) {
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(out);
}

// Timestamps are kept as Unix seconds in an int64; one beyond ±1e11 s (year 5138) is a unit
// mistake (milliseconds read as seconds), refused with its line rather than converted.
constexpr double kMaxUnixSeconds = 1e11;
Status checkUnixSeconds(const fs::path& file, std::size_t line_no, std::string_view cell,
                        double seconds) {
  if (std::abs(seconds) <= kMaxUnixSeconds) return ok();
  return fail(ErrorCode::kParse,
              "{}:{}: timestamp '{}' is {:.3g} s from 1970, past the year 5000; timestamps are Unix "
              "seconds unless the header names the unit (timestamp[ms], timestamp[us], timestamp[ns])",
              file.string(), line_no, cell, seconds);
}

// Calls f(line number from 1, line) for each line of a file, read in chunks: one file may hold a
// whole public trace (a table with an id column), and its text held beside the parsed samples
// would double the memory a read needs. zlib's gz* functions read gzip'd and plain files alike,
// so one path serves both.
template <typename F>
Status forEachLine(const fs::path& file, F&& f) {
  gzFile in = gzopen(file.c_str(), "rb");
  if (in == nullptr) {
    return fail(ErrorCode::kIo, "{}: cannot open: {}", file.string(), std::strerror(errno));
  }
  const std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(in, gzclose);
  gzbuffer(in, 1 << 17);
  constexpr std::size_t kChunk = 1 << 20;
  std::string buf;
  std::size_t line_no = 0;
  auto each = [&](std::string_view line) -> Status {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // A UTF-8 byte order mark, as spreadsheet programs write one, is not part of the header.
    if (line_no == 0 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    return f(++line_no, line);
  };
  for (;;) {
    const std::size_t kept = buf.size();
    buf.resize(kept + kChunk);
    const int n = gzread(in, buf.data() + kept, kChunk);
    if (n < 0) {
      int err = 0;
      return fail(ErrorCode::kIo, "{}: read failed: {}", file.string(), gzerror(in, &err));
    }
    buf.resize(kept + static_cast<std::size_t>(n));
    if (n == 0) {
      // zlib reports a gzip stream cut short only here, after handing out what it had.
      int err = 0;
      gzerror(in, &err);
      if (err == Z_BUF_ERROR)
        return fail(ErrorCode::kIo, "{}: truncated gzip file (unexpected end after line {})",
                    file.string(), line_no);
      break;
    }
    std::size_t pos = 0;
    for (std::size_t end; (end = buf.find('\n', pos)) != std::string::npos; pos = end + 1)
      if (auto s = each(std::string_view(buf).substr(pos, end - pos)); !s) return s;
    buf.erase(0, pos);  // an unfinished last line waits for the next chunk
  }
  if (!buf.empty()) return each(buf);
  return ok();
}

// GWA-T-12 columns, in file order.
constexpr std::array<std::string_view, 11> kBitbrainsColumns = {
    "Timestamp [ms]",
    "CPU cores",
    "CPU capacity provisioned [MHZ]",
    "CPU usage [MHZ]",
    "CPU usage [%]",
    "Memory capacity provisioned [KB]",
    "Memory usage [KB]",
    "Disk read throughput [KB/s]",
    "Disk write throughput [KB/s]",
    "Network received throughput [KB/s]",
    "Network transmitted throughput [KB/s]"};

Result<RawSeries> parseBitbrains(const fs::path& file) {
  RawSeries raw;
  raw.id = seriesId(file);
  raw.file = file.string();
  auto& cores_md = raw.metadata["cpu_cores"];
  auto& cap_md = raw.metadata["cpu_capacity_mhz"];
  auto& mem_md = raw.metadata["memory_capacity_bytes"];
  std::vector<std::string_view> cols;
  std::array<double, 11> v{};
  bool header = false;  // the first line that is not blank
  auto status = forEachLine(file, [&](std::size_t line_no, std::string_view line) -> Status {
    if (trim(line).empty()) return ok();
    split(line, ';', cols);
    if (!std::exchange(header, true)) {
      bool good = cols.size() == kBitbrainsColumns.size();
      for (std::size_t i = 0; good && i < cols.size(); ++i) good = cols[i] == kBitbrainsColumns[i];
      if (!good) {
        return fail(ErrorCode::kParse, "{}:{}: not a GWA-T-12 (bitbrains) header: '{}'", raw.file,
                    line_no, line.substr(0, 120));
      }
      return ok();
    }
    if (cols.size() != kBitbrainsColumns.size()) {
      return fail(ErrorCode::kParse, "{}:{}: expected {} fields, found {}", raw.file, line_no,
                  kBitbrainsColumns.size(), cols.size());
    }
    for (std::size_t i = 0; i < cols.size(); ++i) {
      if (!parseNumber(cols[i], v[i])) {
        return fail(ErrorCode::kParse, "{}:{}: '{}' is not a number (column '{}')", raw.file,
                    line_no, cols[i], kBitbrainsColumns[i]);
      }
      if (v[i] < 0) {
        return fail(ErrorCode::kParse, "{}:{}: negative value {} (column '{}')", raw.file, line_no,
                    v[i], kBitbrainsColumns[i]);
      }
    }
    if (auto ts = checkUnixSeconds(raw.file, line_no, cols[0], v[0]); !ts) return ts;
    // Ghost copies of the series repeat it shifted by a few seconds with cores and memory zeroed.
    if (v[1] == 0) return ok();
    double mhz_per_core = v[2] / v[1];
    raw.time.push_back(static_cast<std::int64_t>(std::llround(v[0])));  // Unix seconds, not ms
    raw.value[index(Resource::kCpu)].push_back(mhz_per_core > 0 ? v[3] / mhz_per_core : NAN);
    // A memory usage of 0 is a missing sample in this trace.
    raw.value[index(Resource::kMemory)].push_back(v[6] > 0 ? v[6] * 1024.0 : NAN);
    raw.value[index(Resource::kDiskIo)].push_back((v[7] + v[8]) * 1024.0);
    raw.value[index(Resource::kNetwork)].push_back((v[9] + v[10]) * 1024.0);
    cores_md.push_back(v[1]);
    cap_md.push_back(v[2]);
    mem_md.push_back(v[5] * 1024.0);
    return ok();
  });
  if (!status) return tl::unexpected(status.error());
  if (!header) return fail(ErrorCode::kParse, "{}: empty file (no header)", raw.file);  // as the generic reader says
  return raw;
}

struct Unit {
  std::string_view name;
  double factor;  // to cores, bytes or bytes/s
};
constexpr Unit kCpuUnits[] = {{"cores", 1}, {"millicores", 1e-3}, {"m", 1e-3}, {"%", 1e-2}};
constexpr Unit kMemoryUnits[] = {{"bytes", 1},      {"B", 1},      {"KiB", 0x1p10}, {"MiB", 0x1p20},
                                 {"GiB", 0x1p30},   {"TiB", 0x1p40}, {"kB", 1e3},   {"KB", 1e3},
                                 {"MB", 1e6},       {"GB", 1e9},   {"TB", 1e12}};
constexpr Unit kRateUnits[] = {{"bytes/s", 1},  {"B/s", 1},     {"KiB/s", 0x1p10}, {"MiB/s", 0x1p20},
                               {"GiB/s", 0x1p30}, {"kB/s", 1e3}, {"KB/s", 1e3},     {"MB/s", 1e6},
                               {"GB/s", 1e9},   {"bit/s", 0.125}, {"kbit/s", 125}, {"Mbit/s", 125e3},
                               {"Gbit/s", 125e6}};

constexpr Unit kTimeUnits[] = {{"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}};  // to seconds

std::span<const Unit> unitsOf(Resource r) {
  switch (r) {
    case Resource::kCpu: return kCpuUnits;
    case Resource::kMemory: return kMemoryUnits;
    default: return kRateUnits;
  }
}

// A generic header column: "memory" (the canonical unit) or "memory[GiB]".
struct Column {
  std::string_view name, unit;
  bool has_unit = false;
};
Column splitColumn(std::string_view col) {
  if (auto open = col.find('['); open != std::string_view::npos && col.ends_with(']'))
    return {col.substr(0, open), col.substr(open + 1, col.size() - open - 2), true};
  return {col, {}, false};
}

// The factor from the column's unit to the canonical one (1 without a unit).
// `where` is "file:line" of the header.
Result<double> unitFactor(const Column& c, std::span<const Unit> units, const std::string& where) {
  if (!c.has_unit) return 1.0;
  std::string known;
  for (const Unit& u : units) {
    if (u.name == c.unit) return u.factor;
    known += (known.empty() ? "" : ", ") + std::string(u.name);
  }
  return fail(ErrorCode::kParse, "{}: unknown unit '{}' for {} (known: {})", where, c.unit, c.name,
              known);
}

// One series per file (header `timestamp,...`, the id is the file's name), or many (header
// `id,timestamp,...`, one id per row, rows of different ids in any order), as public traces
// that list every workload in one table come.
Result<std::vector<RawSeries>> parseGenericCsv(const fs::path& file) {
  const std::string path = file.string();
  std::vector<RawSeries> out;
  std::unordered_map<std::string, std::size_t> by_id;  // long format: id -> index in out
  bool long_format = false;
  std::vector<std::string_view> cols;
  std::vector<Resource> column_resource;  // for the columns after the timestamp
  std::vector<double> column_factor;      // to the canonical unit
  double time_factor = 1;                 // to seconds
  bool header = false;  // the first line that is not blank
  auto status = forEachLine(file, [&](std::size_t line_no, std::string_view line) -> Status {
    if (trim(line).empty()) return ok();
    split(line, ',', cols);
    if (!std::exchange(header, true)) {
      const std::string where = fmt::format("{}:{}", path, line_no);
      long_format = !cols.empty() && cols[0] == "id";
      const std::size_t first = long_format ? 1 : 0;
      const Column time = splitColumn(cols.size() > first ? cols[first] : std::string_view());
      if (time.name != "timestamp") {
        return fail(ErrorCode::kParse,
                    "{}: header must start with 'timestamp' (Unix seconds) or timestamp[ms|us|ns], "
                    "or with 'id,timestamp' for many series in one file; found '{}'",
                    where, line.substr(0, 120));
      }
      auto tf = unitFactor(time, kTimeUnits, where);
      if (!tf) return tl::unexpected(tf.error());
      time_factor = *tf;
      for (std::size_t i = first + 1; i < cols.size(); ++i) {
        const Column c = splitColumn(cols[i]);
        auto r = parseResource(c.name);
        if (!r) {
          return fail(ErrorCode::kParse,
                      "{}: unknown column '{}' (expected any of cpu, memory, disk_io, network)",
                      where, c.name);
        }
        auto factor = unitFactor(c, unitsOf(*r), where);
        if (!factor) return tl::unexpected(factor.error());
        if (std::find(column_resource.begin(), column_resource.end(), *r) != column_resource.end())
          return fail(ErrorCode::kParse, "{}: column '{}' appears twice", where, name(*r));
        column_resource.push_back(*r);
        column_factor.push_back(*factor);
      }
      if (column_resource.empty()) {
        return fail(ErrorCode::kParse, "{}: no resource columns after 'timestamp'", where);
      }
      if (!long_format) {
        out.emplace_back();
        out.back().id = seriesId(file);
        out.back().file = path;
      }
      return ok();
    }
    const std::size_t first = long_format ? 1 : 0;
    RawSeries* raw = long_format ? nullptr : &out.front();
    if (long_format) {
      // A row without an id cannot be tied to a series: the file is refused.
      if (cols[0].empty()) return fail(ErrorCode::kParse, "{}:{}: empty id", path, line_no);
      auto [it, added] = by_id.try_emplace(std::string(cols[0]), out.size());
      if (added) {
        out.emplace_back();
        out.back().id = it->first;
        out.back().file = path;
      }
      raw = &out[it->second];
      if (!raw->error.empty()) return ok();  // refused already
    }
    // In a file of many series a bad row refuses its own series only (EVALUATION.md: the series
    // is skipped and counted); the other series of the file, and of other files, stay.
    auto refuse = [&](Status failed) -> Status {
      if (!long_format) return failed;
      raw->error = failed.error().message;
      // Refused whole: what it read goes, so no half-read row is left behind.
      raw->time.clear();
      raw->value = {};
      raw->metadata.clear();
      return ok();
    };
    if (cols.size() != column_resource.size() + first + 1) {
      return refuse(fail(ErrorCode::kParse, "{}:{}: expected {} fields, found {}", path, line_no,
                         column_resource.size() + first + 1, cols.size()));
    }
    double t = 0;
    if (!parseNumber(cols[first], t)) {
      return refuse(fail(ErrorCode::kParse, "{}:{}: timestamp '{}' is not a number", path,
                         line_no, cols[first]));
    }
    if (auto ts = checkUnixSeconds(path, line_no, cols[first], t * time_factor); !ts)
      return refuse(ts);
    raw->time.push_back(static_cast<std::int64_t>(std::llround(t * time_factor)));
    for (std::size_t i = 0; i < column_resource.size(); ++i) {
      const std::string_view cell = cols[first + 1 + i];
      double v = NAN;
      // An empty cell is a missing value.
      if (!cell.empty()) {
        if (!parseNumber(cell, v)) {
          return refuse(fail(ErrorCode::kParse, "{}:{}: '{}' is not a number (column '{}')",
                             path, line_no, cell, name(column_resource[i])));
        }
        if (v < 0) {
          return refuse(fail(ErrorCode::kParse, "{}:{}: negative usage {} (column '{}')", path,
                             line_no, v, name(column_resource[i])));
        }
      }
      raw->value[index(column_resource[i])].push_back(v * column_factor[i]);
    }
    return ok();
  });
  if (!status) return tl::unexpected(status.error());
  if (column_resource.empty()) {
    return fail(ErrorCode::kParse, "{}: empty file (no header)", path);
  }
  if (long_format && out.empty()) return fail(ErrorCode::kParse, "{}: no rows after the header", path);
  return out;
}

// Appends b's samples to a (the same workload from another file, e.g. a trace sharded by time);
// a resource or metadata key only one of them has is missing (NaN) in the other's samples.
void appendSamples(RawSeries& a, RawSeries&& b) {
  const std::size_t na = a.time.size(), nb = b.time.size();
  for (std::size_t r = 0; r < kResourceCount; ++r) {
    if (a.value[r].empty() && b.value[r].empty()) continue;
    a.value[r].resize(na, NAN);
    b.value[r].resize(nb, NAN);
    a.value[r].insert(a.value[r].end(), b.value[r].begin(), b.value[r].end());
  }
  for (auto& [key, v] : b.metadata) a.metadata[key];  // keys of b only start empty
  for (auto& [key, v] : a.metadata) {
    v.resize(na, NAN);
    auto other = b.metadata.find(key);
    if (other == b.metadata.end()) v.resize(na + nb, NAN);
    else {
      other->second.resize(nb, NAN);
      v.insert(v.end(), other->second.begin(), other->second.end());
    }
  }
  a.time.insert(a.time.end(), b.time.begin(), b.time.end());
  a.file += ", " + b.file;
  if (a.error.empty()) a.error = std::move(b.error);
}

}  // namespace

std::string seriesId(const fs::path& file) {
  std::string name = file.filename().string();
  for (std::string_view ext : {".csv.gz", ".csv"}) {
    if (name.size() > ext.size() && name.ends_with(ext))
      return name.substr(0, name.size() - ext.size());
  }
  return name;
}

Result<std::vector<fs::path>> listTraceFiles(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) return std::vector<fs::path>{dir};
  if (!fs::is_directory(dir, ec)) {
    return fail(ErrorCode::kNotFound, "{}: no such file or folder", dir.string());
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && (name.ends_with(".csv") || name.ends_with(".csv.gz"))) {
      files.push_back(entry.path());
    }
  }
  if (ec) return fail(ErrorCode::kIo, "{}: cannot list: {}", dir.string(), ec.message());
  if (files.empty()) {
    return fail(ErrorCode::kNotFound, "{}: no trace files (*.csv, *.csv.gz)", dir.string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

Result<std::vector<RawSeries>> parseFile(const fs::path& file, Format format) {
  if (format == Format::kCsv) return parseGenericCsv(file);
  auto raw = parseBitbrains(file);
  if (!raw) return tl::unexpected(raw.error());
  std::vector<RawSeries> out;
  out.push_back(std::move(*raw));
  return out;
}

namespace {

// The first skips as warnings, the rest at debug level: a trace of thousands of files with one
// bad column should not bury the run's own output.
void logSkips(const std::vector<Skip>& skipped) {
  constexpr std::size_t kShown = 20;
  for (std::size_t i = 0; i < skipped.size(); ++i) {
    const Skip& skip = skipped[i];
    spdlog::log(i < kShown ? spdlog::level::warn : spdlog::level::debug, "skipped: {}{}",
                skip.file.empty() ? "" : skip.file + ": ", skip.reason);
  }
  if (skipped.size() > kShown)
    spdlog::warn("skipped: {} more (--log-level debug lists them)", skipped.size() - kShown);
}

}  // namespace

Result<Trace> readTrace(const std::vector<fs::path>& files, const ReadOptions& options) {
  std::vector<Result<std::vector<RawSeries>>> parsed(files.size(), fail(ErrorCode::kInternal, "not read"));
  parallelFor(files.size(), options.threads,
              [&](std::size_t i, unsigned) { parsed[i] = parseFile(files[i], options.format); });

  Trace trace;
  // One raw series per id, in the order of first appearance: an id seen in several files is one
  // workload whose samples those files share.
  std::vector<RawSeries> raws;
  std::unordered_map<std::string, std::size_t> by_id;
  for (auto& p : parsed) {
    if (!p) {
      if (options.strict) return tl::unexpected(p.error());
      // The message already carries file and line.
      trace.skipped.push_back(Skip{"", 0, p.error().message});
      continue;
    }
    for (auto& raw : *p) {
      auto [it, added] = by_id.try_emplace(raw.id, raws.size());
      if (added) raws.push_back(std::move(raw));
      else appendSamples(raws[it->second], std::move(raw));
    }
  }
  // A series with a bad row in any file is refused whole, in every file: one count per series.
  std::vector<RawSeries> good;
  good.reserve(raws.size());
  for (auto& raw : raws) {
    if (raw.error.empty()) {
      good.push_back(std::move(raw));
      continue;
    }
    if (options.strict) return fail(ErrorCode::kParse, "{}", raw.error);
    trace.skipped.push_back(Skip{"", 0, fmt::format("series '{}': {}", raw.id, raw.error)});
  }
  raws = std::move(good);

  // The trace's step: the median of the per-series median steps.
  std::vector<std::int64_t> steps;
  for (const auto& raw : raws)
    if (auto s = medianStep(raw); s > 0) steps.push_back(s);
  if (steps.empty()) {
    logSkips(trace.skipped);
    return fail(ErrorCode::kInvalidArgument, "no series with two or more samples{}",
                trace.skipped.empty()
                    ? std::string()
                    : fmt::format(" ({} file(s) refused; the first: {})", trace.skipped.size(),
                                  trace.skipped.front().reason));
  }
  std::nth_element(steps.begin(), steps.begin() + steps.size() / 2, steps.end());
  const std::int64_t sampled = steps[steps.size() / 2];
  trace.step_seconds = options.step_seconds > 0 ? options.step_seconds : sampled;
  // Finer than the samples, every gap between two of them is longer than the fill allows and each
  // sample would become a piece of its own, skipped as too short.
  if (trace.step_seconds * (options.max_fill_steps + 1) < sampled)
    return fail(ErrorCode::kInvalidArgument,
                "a step of {} s is finer than the trace's samples (median {} s apart): with gaps of "
                "up to {} missing steps filled, every series would fall apart; use a step of at "
                "least {} s",
                trace.step_seconds, sampled, options.max_fill_steps,
                (sampled + options.max_fill_steps) / (options.max_fill_steps + 1));

  std::vector<std::vector<Series>> pieces(raws.size());
  std::vector<std::vector<Skip>> skips(raws.size());
  parallelFor(raws.size(), options.threads, [&](std::size_t i, unsigned) {
    pieces[i] = resample(raws[i], trace.step_seconds, options, skips[i]);
  });
  for (std::size_t i = 0; i < raws.size(); ++i) {
    for (auto& skip : skips[i]) {
      if (options.strict) {
        return fail(ErrorCode::kInvalidArgument, "{}: {}", skip.file, skip.reason);
      }
      trace.skipped.push_back(std::move(skip));
    }
    for (auto& s : pieces[i]) {
      if (options.max_series && trace.series.size() >= options.max_series) break;
      for (Resource r : kAllResources) trace.resources[index(r)] |= s.has(r);
      trace.series.push_back(std::move(s));
    }
  }
  logSkips(trace.skipped);
  trace.warnings = unitWarnings(trace);
  for (const auto& w : trace.warnings) spdlog::warn("{}", w);
  return trace;
}

namespace {

// The median over series of a per-series statistic of resource r (NaN when no series has it).
template <typename Stat>
double medianOverSeries(const Trace& trace, Resource r, Stat stat) {
  std::vector<double> per;
  std::vector<double> v;
  for (const auto& s : trace.series) {
    if (!s.has(r)) continue;
    v.clear();
    for (double x : s.usage[index(r)])
      if (!std::isnan(x)) v.push_back(x);
    if (!v.empty()) per.push_back(stat(v));
  }
  if (per.empty()) return NAN;
  std::nth_element(per.begin(), per.begin() + per.size() / 2, per.end());
  return per[per.size() / 2];
}

}  // namespace

std::vector<std::string> unitWarnings(const Trace& trace) {
  std::vector<std::string> out;
  if (trace.step_seconds > 86400) {
    out.push_back(fmt::format(
        "timestamp: the trace's step is {} s, over a day; timestamps are read as Unix seconds. If "
        "they are milliseconds or microseconds, name the unit in the header (timestamp[ms], "
        "timestamp[us])",
        trace.step_seconds));
  }
  const double mem = medianOverSeries(trace, Resource::kMemory, [](std::vector<double>& v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  });
  if (mem < 0x1p20) {
    out.push_back(fmt::format(
        "memory: the median series uses {:.4g} (its median); memory is read in bytes, and no "
        "workload runs in under 1 MiB. If these are another unit, name it in the header "
        "(memory[GiB]); fractions of a machine need converting to bytes first, or the learned "
        "policies' scale floor (1 MiB) and vpa's first bucket (1e7 bytes) swamp them",
        mem));
  }
  const double cpu = medianOverSeries(trace, Resource::kCpu, [](std::vector<double>& v) {
    return *std::max_element(v.begin(), v.end());
  });
  if (cpu > 1024) {
    out.push_back(fmt::format(
        "cpu: the median series peaks at {:.4g}; cpu is read in cores. If these are millicores "
        "or percent of a core, name the unit in the header (cpu[millicores], cpu[%]); MHz need "
        "dividing by the clock per core first",
        cpu));
  }
  return out;
}

Result<Trace> readTraceDir(const fs::path& dir, const ReadOptions& options) {
  auto files = listTraceFiles(dir);
  if (!files) return tl::unexpected(files.error());
  return readTrace(*files, options);
}

}  // namespace foresight::trace
