#pragma once
// Sampler: runs the chosen collectors over workloads, one round at a time; CsvTraceWriter turns
// consecutive samples into the generic CSV trace format (trace/reader.h, Format::kCsv).
//
// Thread-safety: Sampler and CsvTraceWriter are used by one thread at a time.

#include <time.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "foresight/collect/collector.h"
#include "foresight/collect/kernel_files.h"
#include "foresight/core/files.h"

namespace foresight::collect {

class Sampler {
 public:
  struct Round {
    std::vector<Sample> samples;
    std::vector<std::string> gone;  // workloads that vanished (not an error)
    std::size_t errors = 0;         // collector failures other than a vanished workload
  };

  static Result<Sampler> create(const CollectorContext& ctx, const std::vector<std::string>& names,
                                const CollectorRegistry& registry);

  Round sample(const std::vector<Workload>& workloads);
  // One workload; kNotFound when it vanished.
  Result<Sample> sampleOne(const Workload& w);
  // The workload's limits were changed (by the allocator): its next sample reads them.
  void refreshLimits(const std::string& id);

  const CollectorContext& context() const { return ctx_; }
  std::vector<std::string> collectorNames() const;
  std::size_t errorCount() const { return errors_; }

 private:
  // The workload's pids: a process tree's from /proc every round (its procfs files are its CPU
  // and memory source); a cgroup's from cgroup.procs in its detail rounds only, the last list
  // kept between (only detail-tier collectors use a cgroup's pids).
  Result<const std::vector<pid_t>*> pidsOf(const Workload& w, bool detail);
  void forget(const std::string& id);

  CollectorContext ctx_;
  std::vector<std::unique_ptr<Collector>> collectors_;
  std::set<std::string> logged_;  // collector names whose failure was logged already
  std::set<std::string> previous_;  // workload ids of the last round, to forget the ones that left
  std::size_t errors_ = 0;
  std::map<std::string, std::size_t> workload_errors_;  // per workload, for its own gauge
  std::uint64_t round_ = 0;  // rounds sampled, for the staggered detail reads
  struct Procs {
    KeptFile file;  // cgroup.procs
    std::vector<pid_t> pids;  // as last read
  };
  std::unordered_map<std::string, Procs> procs_;  // by workload id
  std::vector<pid_t> tree_pids_;
  std::string buf_;
};

// Nanoseconds on `clock` (CLOCK_REALTIME: Unix time).
std::int64_t nowNs(clockid_t clock = CLOCK_REALTIME);

// Writes one `<dir>/<workloadFileName(id)>.csv` per workload: header `timestamp,cpu,memory,disk_io,network`
// (timestamp in Unix seconds with milliseconds), a row per sample after the first (rates need two).
// Each file is an AtomicFile put in place by finish(), so an interrupted recording leaves no half
// file under the final name, and two recordings into one folder do not share a temporary file.
class CsvTraceWriter {
 public:
  explicit CsvTraceWriter(std::filesystem::path dir) : dir_(std::move(dir)) {}
  Status add(const Sample& sample);
  // A gone workload: its file's descriptor is closed (kept for finish()), and a later sample of the
  // same id appends after a gap, with no row across it (a cgroup re-created under the same path
  // restarts its counters). Without it a day's recording of a busy node holds a descriptor for every
  // workload it ever saw.
  Status pause(const std::string& workload);
  // Renames every file into place, or on an error none (those already renamed are removed).
  Status finish();
  // The file name used for a workload id: workloadFileName() + ".csv".
  static std::string fileName(const std::string& workload_id);
  std::size_t workloads() const { return files_.size(); }  // until finish()

 private:
  struct File {
    AtomicFile file;
    Sample last;
    bool have_last = false;
  };
  std::filesystem::path dir_;
  std::map<std::string, File> files_;
};

}  // namespace foresight::collect
