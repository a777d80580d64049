// `cmake --install` as a packager runs it (DESTDIR): the installed binary finds the shipped model,
// planner policies and price catalog beside it, wherever it is started from, and the systemd unit
// it installs passes systemd-analyze (its syntax and its sandboxing's score) and starts the agent
// with the command line it holds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "support/cleanup.h"
#include "support/shell.h"

namespace {
namespace fs = std::filesystem;
using foresight::test_support::runShell;

std::string slurp(const fs::path& p) {
  std::stringstream ss;
  ss << std::ifstream(p).rdbuf();
  return ss.str();
}

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t i = 0; (i = s.find(from, i)) != std::string::npos; i += to.size()) s.replace(i, from.size(), to);
  return s;
}

// An installed unit: its ExecStart is the installed binary running `verb`; pointed at this DESTDIR
// copy, systemd accepts it, and its sandboxing's exposure is at most `threshold` tenths
// (systemd-analyze security shows 0.0-10.0, lower is safer, 9.6 without any; 60 = 6.0, "MEDIUM";
// scored offline, as this test cannot start it under systemd).
// Returns its command line with the DESTDIR binary; "" after a failure.
std::string checkedUnit(const fs::path& dest, const fs::path& bin, const fs::path& unit, const std::string& verb,
                        int threshold) {
  const std::string text = slurp(unit);
  const std::string exec = std::string("\nExecStart=") + FORESIGHT_INSTALL_BINDIR + "/foresight " + verb + " ";
  const auto at = text.find(exec);
  if (at == std::string::npos) {
    ADD_FAILURE() << unit << ":\n" << text;
    return "";
  }
  const fs::path copy = dest / "verify" / unit.filename();
  fs::create_directories(copy.parent_path());
  std::ofstream(copy) << replaceAll(text, std::string(FORESIGHT_INSTALL_BINDIR) + "/foresight", bin.string());
  if (runShell("command -v systemd-analyze").exit_code != 0) {
    ADD_FAILURE() << "systemd-analyze is missing (Debian package systemd, in scripts/deps.sh)";
    return "";
  }
  const auto verify = runShell(fmt::format("systemd-analyze verify '{}'", copy.string()));
  EXPECT_EQ(verify.exit_code, 0) << verify.all();
  EXPECT_EQ(verify.all().find(unit.stem().string()), std::string::npos) << verify.all();
  const auto security = runShell(
      fmt::format("systemd-analyze security --offline=true --threshold={} '{}'", threshold, copy.string()));
  EXPECT_EQ(security.exit_code, 0) << security.all();
  const std::size_t start = at + std::string("\nExecStart=").size();
  return replaceAll(text.substr(start, text.find('\n', start) - start),
                    std::string(FORESIGHT_INSTALL_BINDIR) + "/foresight", bin.string());
}

TEST(Install, TheInstalledBinaryFindsItsDataAndItsServiceStartsIt) {
  const fs::path dest = foresight::test_support::removedAtExit(
      fs::temp_directory_path() / ("foresight-install-" + std::to_string(::getpid())));
  const auto install = runShell(fmt::format("DESTDIR='{}' '{}' --install '{}'", dest.string(), CMAKE_COMMAND,
                                            FORESIGHT_BUILD_DIR));
  ASSERT_EQ(install.exit_code, 0) << install.all();
  const fs::path bin = dest.string() + FORESIGHT_INSTALL_BINDIR + "/foresight";
  const fs::path data = dest.string() + FORESIGHT_INSTALL_DATADIR + "/foresight";
  ASSERT_TRUE(fs::exists(bin)) << install.out;

  // From another folder, the installed copy is found, not the source tree's.
  const auto show = runShell(fmt::format("cd / && '{}' model show", bin.string()));
  ASSERT_EQ(show.exit_code, 0) << show.all();
  EXPECT_EQ(show.out.rfind((data / "models" / "lstm-bitbrains.fsm").string() + ": format version", 0), 0u)
      << show.out;
  // And the second member of the shipped forecaster, on a line of its own.
  std::string second = "\n";
  second += (data / "models" / "lstm-bitbrains-2.fsm").string();
  second += ": format version";
  EXPECT_NE(show.out.find(second), std::string::npos) << show.out;

  const fs::path units = dest.string() + FORESIGHT_INSTALL_PREFIX + "/lib/systemd/system";
  const std::string command = checkedUnit(dest, bin, units / "foresight-agent.service", "run", 60);
  ASSERT_FALSE(command.empty());

  // Its command line, run for two seconds from / with its state folder here, in dry-run as it is:
  // it starts, reads the installed planner policies and catalog, and stops cleanly.
  fs::create_directories(dest / "state");
  const auto ran = runShell(fmt::format("cd / && {} --duration 2 --listen 127.0.0.1:0",
                                        replaceAll(command, "/var/lib/foresight", (dest / "state").string())));
  ASSERT_EQ(ran.exit_code, 0) << ran.all();
  EXPECT_NE(ran.err.find("planner policies from " + (data / "config" / "planner.yaml").string()), std::string::npos)
      << ran.err;
  EXPECT_EQ(ran.err.find("built-in ones apply"), std::string::npos) << ran.err;
  EXPECT_TRUE(fs::exists(dest / "state" / "history.db"));

  // The guests' unit, the same way; its command run against libvirt's test driver, as no
  // qemu:///system runs here: it starts, reads a round of guests, and stops cleanly.
  const std::string guests = checkedUnit(dest, bin, units / "foresight-guests.service", "guests", 25);
  ASSERT_FALSE(guests.empty());
  ASSERT_NE(guests.find("-c qemu:///system "), std::string::npos) << guests;
  const auto sized = runShell(fmt::format(
      "cd / && {} --duration 2 --listen 127.0.0.1:0",
      replaceAll(replaceAll(guests, "qemu:///system", "test:///default"), "/var/lib/foresight", (dest / "state").string())));
  ASSERT_EQ(sized.exit_code, 0) << sized.all();
  EXPECT_NE(sized.err.find("guests: the running guests of test:///default"), std::string::npos) << sized.err;
}

}  // namespace
