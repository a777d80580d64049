#pragma once
// Each subcommand adds itself to the app; main() only wires them.

#include <CLI/CLI.hpp>

#include <cmath>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "foresight/allocate/backend.h"
#include "foresight/core/files.h"
#include "foresight/predict/policy.h"

namespace foresight::app {

// Named factories shared by the subcommands, filled once by registerBuiltins().
struct Builtins {
  predict::PolicyRegistry policies{"policy"};
  allocate::BackendRegistry backends{"backend"};
  // The words after a bare "--" (a command for record/profile to launch); main() cuts them off
  // before CLI11 parses the rest.
  std::vector<std::string> command;
};
struct WorkloadOptions;
// Validators for numeric options. CLI::Range and CLI::PositiveNumber let "nan" through (every
// comparison with NaN is false), PositiveNumber's message prints DBL_MAX in full, and an unsigned
// option takes "-1" as a huge count.
// A finite number in [lo, hi].
inline CLI::Validator finiteIn(double lo, double hi = HUGE_VAL) {
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        double v = 0;
        if (CLI::detail::lexical_cast(in, v) && std::isfinite(v) && v >= lo && v <= hi) return {};
        return std::isinf(hi) ? fmt::format("{} is not a finite number >= {}", in, lo)
                              : fmt::format("{} is not a finite number in [{}, {}]", in, lo, hi);
      },
      std::isinf(hi) ? fmt::format("NUMBER>={}", lo) : fmt::format("NUMBER in [{}, {}]", lo, hi));
}
// A finite number above lo.
inline CLI::Validator finiteAbove(double lo) {
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        double v = 0;
        if (CLI::detail::lexical_cast(in, v) && std::isfinite(v) && v > lo) return {};
        return fmt::format("{} is not a finite number > {}", in, lo);
      },
      fmt::format("NUMBER>{}", lo));
}
// A whole number >= min.
inline CLI::Validator wholeNumber(long long min) {
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        long long v = 0;
        if (CLI::detail::lexical_cast(in, v) && v >= min) return {};
        return fmt::format("{} is not a whole number >= {}", in, min);
      },
      fmt::format("INT>={}", min));
}
// A file the command will write: refused at parse time (exit 2, naming the option) when it is a
// directory or its directory is missing or not writable, before any work whose result it would lose.
inline CLI::Validator outputFile() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        auto st = checkOutputFile(in);
        return st ? std::string() : st.error().message;
      },
      "FILE");
}
// A file that a default names, by its path in the source tree ("config/planner.yaml"): the
// installed copy beside this binary (BINDIR/../share/foresight/...), else the source tree's that it
// was built from, whichever exists first (the installed path when neither does, for the error).
std::string dataFile(std::string_view relative);
// The shipped forecaster: two models of one configuration that differ in their training seed,
// averaged (predict::lstm::Ensemble; docs/model.md says how each was made).
inline constexpr std::array<std::string_view, 2> kShippedModels = {"models/lstm-bitbrains.fsm",
                                                                   "models/lstm-bitbrains-2.fsm"};
std::vector<std::string> shippedModels();  // dataFile() of each
// --model of the commands that forecast: FILE, repeated or comma-separated; several are averaged.
void addModelOption(CLI::App& cmd, std::vector<std::string>& models);
inline constexpr std::string_view kShippedPlanner = "config/planner.yaml";
inline constexpr std::string_view kShippedCatalog = "config/prices.yaml";
void registerBuiltins(Builtins& builtins);
// Unix seconds as ISO 8601 UTC ("2026-12-05T18:48:31Z"): audit times, training and edit stamps.
inline std::string isoUtc(std::int64_t unix_seconds) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(unix_seconds)));
}
// The audit trail's file: $FORESIGHT_AUDIT_DB, else foresight-audit.db.
std::string defaultAuditDb();

void addBacktestCommand(CLI::App& app, Builtins& builtins);
void addBenchCommand(CLI::App& app);
void addAllocateCommand(CLI::App& app, Builtins& builtins);  // allocate and cost
void addHistoryCommand(CLI::App& app, Builtins& builtins);
void addMatchCommand(CLI::App& app);
void addRecordCommand(CLI::App& app, Builtins& builtins);
void addProfileCommand(CLI::App& app, Builtins& builtins);
void addRunCommand(CLI::App& app, Builtins& builtins);
void addRecommendCommand(CLI::App& app);
void addGuestsCommand(CLI::App& app);
void addWorkloadOptions(CLI::App& cmd, WorkloadOptions& w);
void addTrainCommand(CLI::App& app, int argc, char** argv);
void addPredictCommand(CLI::App& app);
void addModelCommand(CLI::App& app);
void addImportCommand(CLI::App& app);

}  // namespace foresight::app
