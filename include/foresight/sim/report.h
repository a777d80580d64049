#pragma once
// Output of a backtest: the JSON of EVALUATION.md, a readable table, and SVG plots.

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "foresight/core/result.h"
#include "foresight/sim/backtest.h"

namespace foresight::sim {

nlohmann::json toJson(const Report& report);
std::string toTable(const Report& report);
// RunOptions::per_series as CSV, one row per policy, resource and series (header first): the
// calibrated knob; steps scored; mean usage and allocation; the series' slack (unused share of its
// allocation) and its share of the policy's pooled unused allocation; violations, their rate and
// the shortfall (unmet share of usage); allocation changes per day; the series' usage 99th
// percentile over its mean (NaN where its mean is 0), the same for every policy.
std::string perSeriesCsv(const Report& report);
// Writes frontier-<resource>.svg and example-<series>-<resource>.svg into dir (created if needed).
Result<std::vector<std::filesystem::path>> writePlots(const Report& report,
                                                      const std::filesystem::path& dir);

}  // namespace foresight::sim
