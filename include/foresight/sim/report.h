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
// Writes frontier-<resource>.svg and example-<series>-<resource>.svg into dir (created if needed).
Result<std::vector<std::filesystem::path>> writePlots(const Report& report,
                                                      const std::filesystem::path& dir);

}  // namespace foresight::sim
