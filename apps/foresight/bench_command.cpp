// `foresight bench closed-loop`: the allocator's proof on this host (a real cgroup, a real
// workload, three controllers in turn). `foresight bench workload` is the workload it starts.
#include <fstream>
#include <iostream>

#include "commands.h"
#include "profiler_common.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/loop/experiment.h"

namespace foresight::app {

void addBenchCommand(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "End-to-end experiments on this host");
  bench->require_subcommand(1);

  auto opts = std::make_shared<loop::ExperimentOptions>();
  auto json_path = std::make_shared<std::string>();
  auto part = std::make_shared<std::string>("both");
  auto* closed = bench->add_subcommand(
      "closed-loop",
      "Run a phased CPU workload and a growing-memory workload in real cgroups under the static, "
      "reactive and foresight controllers in turn; report throttled time, mean quota, p99 "
      "latency and OOM kills (needs root and the cpu, cpuacct and memory controllers)");
  closed->add_option("--json", *json_path, "write the results as JSON to FILE")->check(outputFile());
  closed->add_option("--cycle-seconds", opts->cycle_seconds, "period of the workload's demand")
      ->capture_default_str()
      ->check(CLI::Range(4.0, 3600.0));
  closed->add_option("--warmup-cycles", opts->warmup_cycles, "cycles run before scoring")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  closed->add_option("--cycles", opts->scored_cycles, "cycles scored")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  closed->add_option("--interval", opts->interval_seconds, "sampling and decision period (s)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 60.0));
  closed->add_option("--controllers", opts->controllers, "which controllers, in order")
      ->delimiter(',')
      ->check(CLI::IsMember({"static", "reactive", "foresight"}))
      ->capture_default_str();
  auto models = std::make_shared<std::vector<std::string>>(shippedModels());
  closed->add_option("--forecaster", opts->forecaster,
                     "the foresight controller's forecaster: auto (the better of lstm and "
                     "seasonal per workload), lstm (--model) or seasonal")
      ->check(CLI::IsMember({"auto", "lstm", "seasonal"}))
      ->capture_default_str();
  addModelOption(*closed, *models);
  closed->add_option("--part", *part, "cpu, memory or both")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "memory", "both"}));
  closed->add_option("--cgroup-root", opts->cgroup_root, "where the cgroup hierarchies are mounted")
      ->capture_default_str();
  closed->callback([opts, json_path, part, models] {
    opts->models.assign(models->begin(), models->end());
    opts->cpu = *part != "memory";
    opts->memory = *part != "cpu";
    opts->self_exe = std::filesystem::read_symlink("/proc/self/exe");
    for (std::size_t i = 0; i < opts->controllers.size(); ++i)
      for (std::size_t k = 0; k < i; ++k)
        if (opts->controllers[i] == opts->controllers[k]) {
          spdlog::error("--controllers: '{}' named twice", opts->controllers[i]);
          throw CLI::RuntimeError(2);
        }
    // At least two decisions a cycle, or the demand's phases fall between them (and the static
    // controller's warm-up would be zero intervals long).
    if (opts->interval_seconds > opts->cycle_seconds / 2) {
      spdlog::error("--interval {} s: at most half of --cycle-seconds ({} s)", opts->interval_seconds,
                    opts->cycle_seconds);
      throw CLI::RuntimeError(2);
    }
    // Ctrl-C or SIGTERM ends the running workload and removes its cgroup before exiting.
    installStopHandler();
    opts->stop = &stopFlag();
    auto r = loop::runClosedLoopExperiment(*opts);
    if (!r) {
      spdlog::error("{}", r.error().message);
      throw CLI::RuntimeError(1);
    }
    const auto j = r->toJson(*opts);
    std::cout << j.dump(2) << "\n";
    if (!json_path->empty()) {
      if (auto s = writeFileAtomically(*json_path, j.dump(2) + "\n"); !s) {
        spdlog::error("{}", s.error().message);
        throw CLI::RuntimeError(1);
      }
    }
  });

  auto w = std::make_shared<loop::WorkloadOptions>();
  auto* workload = bench->add_subcommand(
      "workload",
      "the closed-loop experiment's workload, also a demo for `foresight run`: cpu = requests of "
      "2 ms CPU arriving at a rate that follows a phased cycle (writes its p99 latency); memory = a "
      "working set that grows over each cycle");
  workload->add_option("--kind", w->kind, "cpu or memory")
      ->check(CLI::IsMember({"cpu", "memory"}))
      ->capture_default_str();
  workload->add_option("--cycle", w->cycle_seconds, "seconds per demand cycle")->capture_default_str()
      ->check(finiteAbove(0));
  workload->add_option("--duration", w->duration_seconds, "seconds to run")->capture_default_str()
      ->check(finiteAbove(0));
  workload->add_option("--start-epoch", w->start_epoch, "align phases to this Unix time (0: now)")
      ->check(finiteIn(0));
  workload->add_option("--score-after", w->score_after,
                       "seconds after the start from which latencies count")
      ->check(finiteIn(0));
  workload->add_option("--out", w->out, "JSON result file")->required()->check(outputFile());
  workload->callback([w] {
    if (int rc = loop::runWorkload(*w); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
