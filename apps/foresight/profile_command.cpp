// `foresight profile`: a live, top-like view of workloads: rates, memory, throttling, pressure
// and the fingerprint anomaly score.
#include <unistd.h>

#include <cmath>
#include <iostream>

#include "commands.h"
#include "foresight/core/log.h"
#include "foresight/fingerprint/fingerprint.h"
#include "profile_table.h"
#include "profiler_common.h"

namespace foresight::app {
namespace {

struct ProfileArgs {
  WorkloadOptions workloads;
  double period = 1.0;
  std::size_t iterations = 0, top = 25;
  fingerprint::Config fp;
};

std::string human(double v, const char* unit) {
  if (std::isnan(v)) return "-";
  const char* prefixes[] = {"", "K", "M", "G", "T"};
  int k = 0;
  while (std::fabs(v) >= 1024 && k < 4) { v /= 1024; ++k; }
  return fmt::format("{:.1f}{}{}", v, prefixes[k], unit);
}

int runProfile(const ProfileArgs& a) {
  auto source = WorkloadSource::create(a.workloads);
  if (!source) {
    spdlog::error("profile: {}", source.error().message);
    return 1;
  }
  ProfileTable table(a.fp);
  const bool tty = ::isatty(STDOUT_FILENO);
  std::size_t n = 0;
  installStopHandler();
  runEvery(std::chrono::duration<double>(a.period), {}, stopFlag(), [&] {
    const bool ending = (*source)->commandExited();
    const auto round = (*source)->sampler().sample((*source)->current());
    const auto rows = table.update(round);
    std::string out = tty ? "\x1b[H\x1b[2J" : "";
    out += fmt::format("foresight profile  round {}  workloads {}  gone {}  errors {}\n", n,
                       round.samples.size(), round.gone.size(), round.errors);
    out += fmt::format("{:<40} {:>7} {:>9} {:>10} {:>10} {:>6} {:>6} {:>8}\n", "WORKLOAD", "CPU",
                       "MEM", "DISK/s", "NET/s", "THR%", "PSI%", "ANOMALY");
    for (std::size_t i = 0; i < rows.size() && i < a.top; ++i) {
      const ProfileTable::Row& r = rows[i];
      std::string id = r.id.size() > 40 ? "…" + r.id.substr(r.id.size() - 39) : r.id;
      out += fmt::format("{:<40} {:>7.3f} {:>9} {:>10} {:>10} {:>6} {:>6} {:>8}\n", id, r.usage[0],
                         human(r.usage[1], "B"), human(r.usage[2], "B"), human(r.usage[3], "B"),
                         std::isnan(r.throttled) ? "-" : fmt::format("{:.1f}", 100 * r.throttled),
                         std::isnan(r.psi) ? "-" : fmt::format("{:.1f}", 100 * r.psi),
                         std::isnan(r.anomaly) ? "-" : fmt::format("{:.2f}", r.anomaly));
    }
    std::cout << out << std::flush;
    ++n;
    return !ending && (a.iterations == 0 || n < a.iterations);
  });
  return 0;
}

}  // namespace

void addProfileCommand(CLI::App& app, Builtins& builtins) {
  auto a = std::make_shared<ProfileArgs>();
  auto* cmd = app.add_subcommand("profile", "Live top-like view of workloads and their fingerprints");
  cmd->add_option("--period", a->period, "seconds between samples")->capture_default_str()
      ->check(finiteAbove(0));
  cmd->add_option("--iterations", a->iterations, "rounds to show (0: until Ctrl-C)")->capture_default_str();
  cmd->add_option("--top", a->top, "rows to show")->capture_default_str();
  cmd->add_option("--window", a->fp.window, "fingerprint window (samples)")->capture_default_str()
      ->check(CLI::Range(fingerprint::kMinWindow, fingerprint::kMaxWindow));
  cmd->add_option("--hop", a->fp.hop, "samples between fingerprints")->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, fingerprint::kMaxHop));
  addWorkloadOptions(*cmd, a->workloads);
  cmd->callback([a, &builtins] {
    a->workloads.command = builtins.command;
    if (int rc = runProfile(*a); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
