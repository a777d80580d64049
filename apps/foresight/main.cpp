// foresight: one CLI for the whole system; each subcommand lives in its own *_command.cpp.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <new>

#include <spdlog/spdlog.h>

#include "commands.h"
#include "foresight/core/log.h"
#include "foresight/predict/lstm/model.h"

namespace foresight::app {

std::string dataFile(std::string_view relative) {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path installed =
      (exe.parent_path() / FORESIGHT_BIN_TO_DATA / relative).lexically_normal();
  if (!ec && std::filesystem::exists(installed, ec)) return installed.string();
  const std::filesystem::path source = std::filesystem::path(FORESIGHT_SOURCE_DATA_DIR) / relative;
  if (std::filesystem::exists(source, ec)) return source.string();
  return installed.string();
}

std::vector<std::string> shippedModels() {
  std::vector<std::string> out;
  for (auto f : kShippedModels) out.push_back(dataFile(f));
  return out;
}

void addModelOption(CLI::App& cmd, std::vector<std::string>& models) {
  cmd.add_option("--model", models,
                 "LSTM model file (foresight train); several, repeated or comma-separated, are averaged "
                 "(default: the two shipped models)")
      ->delimiter(',')
      ->capture_default_str();
}

void registerBuiltins(Builtins& builtins) {
  predict::registerBaselines(builtins.policies);
  allocate::registerBackends(builtins.backends);
  const auto shipped = shippedModels();
  predict::lstm::registerLstm(builtins.policies, {shipped.begin(), shipped.end()});
}

}  // namespace foresight::app

int main(int argc, char** argv) {
  using namespace foresight;
  CLI::App app{
      "Foresight: forecasts what CPU, memory, disk I/O and network a workload will need and sizes "
      "its allocation before the bottleneck hits."};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.set_version_flag("--version", std::string("foresight ") + FORESIGHT_VERSION);

  app::Builtins builtins;
  app::registerBuiltins(builtins);
  app::addBacktestCommand(app, builtins);
  app::addBenchCommand(app);
  app::addAllocateCommand(app, builtins);
  app::addHistoryCommand(app, builtins);
  app::addMatchCommand(app);
  app::addRecordCommand(app, builtins);
  app::addProfileCommand(app, builtins);
  app::addRunCommand(app, builtins);
  app::addRecommendCommand(app);
  app::addGuestsCommand(app);

  // "foresight record ... -- CMD ARGS": everything after the first bare "--" is the command.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--") {
      builtins.command.assign(argv + i + 1, argv + argc);
      argc = i;
      break;
    }
  }
  app::addTrainCommand(app, argc, argv);
  app::addPredictCommand(app);
  app::addModelCommand(app);
  app::addImportCommand(app);

  app.parse_complete_callback([&] { setupLogging(log_level); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a command's own exit status
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Help and version exit 0; every refused argument is 2, as the commands' own checks are
    // (CLI11 would give each kind of refusal a code of its own, 105 to 115).
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::bad_alloc&) {
    // Out of memory: reported without allocating (spdlog's formatting would throw again, and a
    // throw from a handler ends in std::terminate's abort).
    static constexpr char kMessage[] = "foresight: internal error: out of memory (std::bad_alloc)\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    // _exit, not return: OpenBLAS's exit handler joins a thread of its own that may be retrying a
    // failed allocation forever (seen under `ulimit -v`).
    std::fflush(stdout);
    ::_exit(70);
  } catch (const std::exception& e) {
    // Every expected failure is a Result; this is a bug or an exhausted resource, reported as such
    // instead of std::terminate's abort.
    spdlog::critical("internal error: {}", e.what());
    return 70;  // EX_SOFTWARE
  }
  return 0;
}
