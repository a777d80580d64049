#pragma once
// Resource fingerprints from psrecord traces, and a converter from Flora's original files
// (gcp_dataproc.csv + psrecord profiles) to MATCHING.md's generic folder.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "foresight/core/result.h"

namespace foresight::match {

struct ResourceTrace {
  std::vector<double> elapsed_s, cpu_percent, memory_mb, virtual_mb;
};

// psrecord's text output: a `#` header, then `elapsed cpu% real_MB virtual_MB` per line.
Result<ResourceTrace> readPsrecord(const std::filesystem::path& file);

// Summary statistics of one trace: duration, CPU in cores (mean, p50, p90, peak, burstiness =
// sd/mean), resident memory (mean, p90, peak), virtual memory peak, memory growth (share of the
// peak reached in the first half).
std::map<std::string, double> fingerprintOf(const ResourceTrace& trace);

struct FloraPrices {
  std::optional<double> vcpu_hour, gb_hour;  // both or neither; per worker vCPU / GB of memory
};

// Writes environments.csv, runs.csv (with an `app` column = the algorithm) and fingerprints.csv
// into out_dir. A workload's fingerprint is its algorithm's profile at the largest local input,
// how duration and peak memory scale over the local inputs, and log10 of its own input bytes.
Status convertFlora(const std::filesystem::path& flora_dir, const std::filesystem::path& out_dir,
                    const FloraPrices& prices = {});

}  // namespace foresight::match
