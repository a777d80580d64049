#pragma once
// Each subcommand adds itself to the app; main() only wires them.

#include <CLI/CLI.hpp>

#include <cmath>

#include "foresight/allocate/backend.h"
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
// CLI::Range lets "nan" through (every comparison with NaN is false); numeric options that feed
// arithmetic combine it with this.
inline const CLI::Validator kFinite(
    [](std::string& s) {
      double v = 0;
      return CLI::detail::lexical_cast(s, v) && std::isfinite(v) ? std::string() : "not a finite number: " + s;
    },
    "FINITE");
void registerBuiltins(Builtins& builtins);
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
void addWorkloadOptions(CLI::App& cmd, WorkloadOptions& w);
void addTrainCommand(CLI::App& app, int argc, char** argv);
void addPredictCommand(CLI::App& app);
void addImportCommand(CLI::App& app);

}  // namespace foresight::app
