// `foresight profile`: a live, top-like view of workloads: rates, memory, throttling, pressure
// and the fingerprint anomaly score.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

#include "commands.h"
#include "foresight/core/log.h"
#include "foresight/fingerprint/fingerprint.h"
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
  std::map<std::string, collect::Sample> last;
  std::map<std::string, fingerprint::Pipeline> pipelines;
  std::map<std::string, double> anomaly;
  const bool tty = ::isatty(STDOUT_FILENO);
  std::size_t n = 0;
  installStopHandler();
  runEvery(std::chrono::duration<double>(a.period), {}, stopFlag(), [&] {
    const bool ending = (*source)->commandExited();
    auto round = (*source)->sampler().sample((*source)->current());
    struct Row { std::string id; std::array<double, kResourceCount> u; double thr, psi, an; };
    std::vector<Row> rows;
    for (auto& s : round.samples) {
      auto it = last.find(s.workload);
      if (it != last.end()) {
        auto u = collect::resourceUsage(it->second, s);
        auto p = pipelines.try_emplace(s.workload, a.fp, fingerprint::resourceMetrics()).first;
        if (auto f = p->second.push(s.time_ns / 1000000, u)) anomaly[s.workload] = f->anomaly;
        const double periods = collect::counterRate(it->second, s, "cpu_periods_total");
        const double thr = periods > 0 ? collect::counterRate(it->second, s, "cpu_throttled_periods_total") / periods : NAN;
        const double psi = collect::counterRate(it->second, s, "psi_cpu_some_seconds_total");
        auto an = anomaly.find(s.workload);
        rows.push_back({s.workload, u, thr, psi, an == anomaly.end() ? NAN : an->second});
      }
      collect::carryForward(last[s.workload], s);
    }
    for (const auto& g : round.gone) last.erase(g);
    std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
      return (std::isnan(x.u[0]) ? -1 : x.u[0]) > (std::isnan(y.u[0]) ? -1 : y.u[0]);
    });
    std::string out = tty ? "\x1b[H\x1b[2J" : "";
    out += fmt::format("foresight profile  round {}  workloads {}  gone {}  errors {}\n", n,
                       round.samples.size(), round.gone.size(), round.errors);
    out += fmt::format("{:<40} {:>7} {:>9} {:>10} {:>10} {:>6} {:>6} {:>8}\n", "WORKLOAD", "CPU",
                       "MEM", "DISK/s", "NET/s", "THR%", "PSI%", "ANOMALY");
    for (std::size_t i = 0; i < rows.size() && i < a.top; ++i) {
      const Row& r = rows[i];
      std::string id = r.id.size() > 40 ? "…" + r.id.substr(r.id.size() - 39) : r.id;
      out += fmt::format("{:<40} {:>7.3f} {:>9} {:>10} {:>10} {:>6} {:>6} {:>8}\n", id, r.u[0],
                         human(r.u[1], "B"), human(r.u[2], "B"), human(r.u[3], "B"),
                         std::isnan(r.thr) ? "-" : fmt::format("{:.1f}", 100 * r.thr),
                         std::isnan(r.psi) ? "-" : fmt::format("{:.1f}", 100 * r.psi),
                         std::isnan(r.an) ? "-" : fmt::format("{:.2f}", r.an));
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
