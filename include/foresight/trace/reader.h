#pragma once
// Readers for real trace formats (EVALUATION.md "Input"):
//   bitbrains  GWA-T-12 per-VM CSV files (plain or gzip'd)
//   csv        generic: header `timestamp` then any of cpu, memory, disk_io, network, each in
//              Foresight's unit (cores, bytes, bytes/s) or with its unit named: memory[GiB];
//              one series per file (named by the file), or many with a first column `id`
// Reading is two stages so that callers (and tests) can see the file list before it is read:
// listTraceFiles() then readTrace().

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "foresight/core/result.h"
#include "foresight/trace/series.h"

namespace foresight::trace {

enum class Format { kBitbrains, kCsv };
Result<Format> parseFormat(const std::string& s);

struct ReadOptions {
  Format format = Format::kCsv;
  bool strict = false;            // a skipped file or series fails the whole read
  std::int64_t step_seconds = 0;  // 0: the median step of the trace
  int max_fill_steps = 3;         // missing steps carried forward; longer gaps split a series
  double min_days = 2.0;          // shorter series are skipped and counted
  std::size_t max_series = 0;     // 0: all
  int threads = 0;                // 0: hardware concurrency
};

// Raw samples of one file, before resampling. Times are Unix seconds, in file order.
struct RawSeries {
  std::string id;
  std::string file;
  std::vector<std::int64_t> time;
  std::array<std::vector<double>, kResourceCount> value;  // same length as time when present
  std::map<std::string, std::vector<double>> metadata;    // per sample
  // A file of many series (an id column): the first bad row of this one, "file:line: what". The
  // series is refused; the file's other series are read.
  std::string error;
};

// The trace files of a folder (`*.csv`, `*.csv.gz`), sorted by name, or the one file named. An
// empty or missing folder is an error.
Result<std::vector<std::filesystem::path>> listTraceFiles(const std::filesystem::path& dir);

// A file's series id: its name without `.csv` or `.csv.gz` (pieces split at gaps add `#N`).
std::string seriesId(const std::filesystem::path& file);

// Whether `id` is a piece of series `base` split at gaps (`base#N`).
inline bool isPieceOf(std::string_view id, std::string_view base) {
  return id.size() > base.size() && id.starts_with(base) && id[base.size()] == '#';
}

// Parses one file: one series, or (generic CSV with an `id` column) one per id, in order of first
// appearance. Errors name the file and line.
Result<std::vector<RawSeries>> parseFile(const std::filesystem::path& file, Format format);

// Regularises raw samples on a step: sort by time, drop duplicate timestamps, mean per step, carry
// forward gaps of at most max_fill_steps, split at longer gaps. Pieces shorter than min_days are
// reported in `skipped`.
std::vector<Series> resample(const RawSeries& raw, std::int64_t step_seconds,
                             const ReadOptions& options, std::vector<Skip>& skipped);

// The median sampling interval of a raw series (0 when it has fewer than two samples).
std::int64_t medianStep(const RawSeries& raw);

// Reads the files (in parallel), joins the samples of an id found in several files (a trace
// sharded by time), chooses the trace step, resamples. With options.strict, any skip is an error;
// otherwise skips are counted in Trace::skipped and logged.
Result<Trace> readTrace(const std::vector<std::filesystem::path>& files,
                        const ReadOptions& options);

// Warnings when a trace's values do not look like Foresight's units (cores, bytes, bytes/s), which
// the learned policies' scale floors and vpa's buckets assume: memory with a median under 1 MiB,
// cpu peaks over 1024 cores (the median over series), a step of over a day (timestamps in ms or
// µs read as seconds). readTrace logs them.
std::vector<std::string> unitWarnings(const Trace& trace);

// listTraceFiles + readTrace.
Result<Trace> readTraceDir(const std::filesystem::path& dir, const ReadOptions& options);

}  // namespace foresight::trace
