#pragma once
// A trace is a set of series, one per workload, each sampled on a regular step.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "foresight/core/resource.h"

namespace foresight::trace {

// One series on a regular grid: usage[r][k] is the mean usage in step k, starting at
// start + k * step_seconds. NaN is a missing value (never fed to policies, never scored); an
// empty vector means the trace does not have that resource.
struct Series {
  std::string id;
  std::int64_t start = 0;  // Unix seconds of step 0
  std::int64_t step_seconds = 0;
  std::array<std::vector<double>, kResourceCount> usage;
  // Environment metadata where the trace carries it (e.g. bitbrains: cpu_cores,
  // cpu_capacity_mhz, memory_capacity_bytes), median over the series.
  std::map<std::string, double> metadata;

  std::size_t size() const {
    for (const auto& u : usage)
      if (!u.empty()) return u.size();
    return 0;
  }
  bool has(Resource r) const { return !usage[index(r)].empty(); }
  // The training part of the time-ordered split: steps [0, trainSteps(fraction)) may be learnt
  // from, the backtest scores the rest.
  std::size_t trainSteps(double fraction) const {
    return static_cast<std::size_t>(std::floor(static_cast<double>(size()) * fraction));
  }
  // The series cut to its training part.
  Series trainPart(double fraction) const {
    Series part = *this;
    const std::size_t n = trainSteps(fraction);
    for (auto& u : part.usage)
      if (!u.empty()) u.resize(n);
    return part;
  }
  // The series as a trace that lacks the resources `drop` would have it.
  Series without(std::span<const Resource> drop) const {
    Series s{id, start, step_seconds, {}, metadata};
    for (Resource r : kAllResources)
      if (std::find(drop.begin(), drop.end(), r) == drop.end()) s.usage[index(r)] = usage[index(r)];
    return s;
  }
};

// A series (or file) that was not used, and why.
struct Skip {
  std::string file;
  std::size_t line = 0;  // 0 when the reason is not tied to a line
  std::string reason;
};

struct Trace {
  std::vector<Series> series;
  std::int64_t step_seconds = 0;
  std::vector<Skip> skipped;
  std::array<bool, kResourceCount> resources{};  // present in at least one series
  std::vector<std::string> warnings;             // unitWarnings, as readTrace logged them
};

}  // namespace foresight::trace
