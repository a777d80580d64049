#pragma once
// What the matcher learns from: an environment catalog (hardware, software, prices) and a run
// history of (workload, environment, outcome) records, with optional workload fingerprints.
// Formats: MATCHING.md's generic folder, environments as YAML, an ec2instances.info-style instance
// catalog CSV joined on instance type, and the SQLite run store (store.h).
//
// Thread-safety: plain values; const access from many threads is safe.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "foresight/core/result.h"

namespace foresight::match {

struct Environment {
  std::string id;
  std::map<std::string, double> numbers;      // numeric features: vCPUs, memory, clock, nodes ...
  std::map<std::string, std::string> labels;  // text features: processor, OS, framework version ...
  std::map<std::string, double> prices;       // whole environment, $/hour, by purchase option
};

// The purchase option that `price_per_hour` in environments.csv stands for.
inline constexpr const char* kOnDemand = "on_demand";

struct EnvironmentCatalog {
  std::vector<Environment> environments;

  const Environment* find(const std::string& id) const;
  std::optional<double> price(const Environment& env, const std::string& option) const;
};

// environments.csv: `env`, then feature columns; `price_per_hour` is the on-demand price and
// `price_per_hour_<option>` the price of another purchase option.
Result<EnvironmentCatalog> readEnvironmentsCsv(const std::filesystem::path& file);

// environments.yaml:
//   environments:
//     - id: 4xc4.large
//       hardware: {nodes: 4, vcpus: 2, memory_gib: 3.75, processor: Xeon E5-2666 v3}
//       software: {os: linux, framework: spark-2.1}
//       prices: {on_demand: 0.4, reserved_1yr: 0.25}
// Keys under hardware/software (and other scalar keys) become features.
Result<EnvironmentCatalog> readEnvironmentsYaml(const std::filesystem::path& file);

// Adds an instance catalog's columns to every environment with a `key` label (instance_type).
// Catalog columns ending in `_usd_per_hour` are per-instance prices: they become the environment's
// price for that purchase option (times its `nodes`, when it has that feature) unless it already
// has one. Environments whose instance type the catalog lacks are an error naming them.
Status joinInstanceCatalog(EnvironmentCatalog& catalog, const std::filesystem::path& file,
                           const std::string& key = "instance_type");

struct Run {
  std::string workload, env;
  bool completed = false;
  double runtime_s = 0;                    // NaN: a failed run whose runtime was not recorded
  std::optional<double> cost;              // when absent: runtime × the environment's price
  std::optional<double> throughput;        // items/s, when the workload reports one
  std::map<std::string, double> usage;     // resource usage seen during the run (profiler)
  std::size_t line = 0;                    // where it was read (runs.csv), for error messages
};

struct RunHistory {
  std::vector<Run> runs;
  // Extra text columns of runs.csv per workload (e.g. `app`, used by --group-by).
  std::map<std::string, std::map<std::string, std::string>> workload_info;
  std::map<std::string, std::map<std::string, double>> fingerprints;
};

// runs.csv: workload, env, completed, runtime_s[, cost], extra columns.
Result<RunHistory> readRunsCsv(const std::filesystem::path& file);
// fingerprints.csv: workload, numeric feature columns (empty cell = unknown).
Status readFingerprintsCsv(const std::filesystem::path& file, RunHistory& history);
// fingerprints.jsonl as `foresight record` writes it (one fingerprint per line, with `workload`
// and named `features`): each workload's latest line, null features left out.
Status readFingerprintsJsonl(const std::filesystem::path& file, RunHistory& history);

struct MatchData {
  EnvironmentCatalog catalog;
  RunHistory history;
};

struct LoadOptions {
  std::filesystem::path instance_catalog;  // optional CSV joined on instance_type
  std::filesystem::path history_db;        // optional SQLite store, merged with runs.csv
};

// A generic folder: environments.csv or environments.yaml, runs.csv and/or history.sqlite,
// optional fingerprints.csv and/or fingerprints.jsonl (a recording's; the CSV wins per column). Runs naming an unknown environment fail with file and line.
Result<MatchData> loadMatchFolder(const std::filesystem::path& dir, const LoadOptions& options = {});

}  // namespace foresight::match
