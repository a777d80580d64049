#pragma once
// Each subcommand adds itself to the app; main() only wires them.

#include <CLI/CLI.hpp>

#include "foresight/predict/policy.h"

namespace foresight::app {

// Named factories shared by the subcommands, filled once by registerBuiltins().
struct Builtins {
  predict::PolicyRegistry policies{"policy"};
};
void registerBuiltins(Builtins& builtins);

void addBacktestCommand(CLI::App& app, Builtins& builtins);
void addTrainCommand(CLI::App& app, int argc, char** argv);
void addPredictCommand(CLI::App& app);

}  // namespace foresight::app
