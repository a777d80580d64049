// `foresight backtest`: EVALUATION.md's protocol on a trace folder.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <set>

#include <fmt/ranges.h>

#include "commands.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/core/progress.h"
#include "foresight/predict/lstm/model.h"
#include "foresight/sim/report.h"
#include "foresight/trace/reader.h"

namespace foresight::app {
namespace {

struct BacktestArgs {
  std::string trace_dir;
  std::string format = "bitbrains";
  std::string policies = "lstm,seasonal,vpa,autopilot,reactive,static,oracle";
  std::vector<std::string> policy_options;
  std::size_t lead = 1;
  double train_fraction = 0.5;
  double target_violation = 0.01;
  std::string json_path, plot_dir, validation_of, per_series_path, series;
  bool strict = false, no_progress = false;
  std::int64_t step = 0;
  unsigned threads = 0;
  std::size_t max_series = 0, examples = 3;
};

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t next = s.find(',', pos);
    if (next == std::string::npos) next = s.size();
    if (next > pos) out.push_back(s.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}

int runBacktestCommand(const BacktestArgs& a, const Builtins& builtins) {
  auto format = trace::parseFormat(a.format);
  if (!format) {
    spdlog::error("{}", format.error().message);
    return 2;
  }
  // --policy-opt lstm.model=FILE → options["lstm"]["model"] = FILE
  std::map<std::string, predict::PolicyOptions> options;
  for (const auto& opt : a.policy_options) {
    auto dot = opt.find('.'), eq = opt.find('=');
    if (dot == std::string::npos || eq == std::string::npos || dot > eq) {
      spdlog::error("--policy-opt '{}': expected POLICY.KEY=VALUE", opt);
      return 2;
    }
    options[opt.substr(0, dot)][opt.substr(dot + 1, eq - dot - 1)] = opt.substr(eq + 1);
  }
  const std::vector<std::string> policy_names = splitList(a.policies);
  // The JSON and the table key results by name: a policy named twice would be replayed twice and
  // reported once.
  std::set<std::string> named_once;
  for (const auto& name : policy_names)
    if (!named_once.insert(name).second) {
      spdlog::error("--policies: '{}' named twice", name);
      return 2;
    }
  for (const auto& [policy, opts] : options)
    if (std::find(policy_names.begin(), policy_names.end(), policy) == policy_names.end()) {
      spdlog::error("--policy-opt {}.{}: '{}' is not among --policies ({})", policy, opts.begin()->first,
                    policy, a.policies);
      return 2;
    }
  // On a model's own held-back workloads, the policies that load a model load that one.
  if (!a.validation_of.empty())
    for (const char* p : {"lstm", "auto"}) options[p].try_emplace("model", a.validation_of);
  std::vector<std::unique_ptr<predict::PolicyFactory>> factories;
  std::vector<sim::NamedPolicy> named;
  for (const auto& name : policy_names) {
    auto f = builtins.policies.create(name, options[name]);
    if (!f) {
      spdlog::error("--policies: {}", f.error().message);
      return 2;
    }
    factories.push_back(std::move(*f));
    named.push_back({name, factories.back().get()});
  }
  if (named.empty()) {
    spdlog::error("--policies: no policy named");
    return 2;
  }

  // The --plot folder is checked before the replay whose results it would lose (--json by its
  // validator).
  if (std::error_code ec; !a.plot_dir.empty() && std::filesystem::exists(a.plot_dir, ec) &&
                          !std::filesystem::is_directory(a.plot_dir, ec)) {
    spdlog::error("--plot {}: exists and is not a directory", a.plot_dir);
    return 2;
  }
  trace::ReadOptions ro;
  ro.format = *format;
  ro.strict = a.strict;
  ro.step_seconds = a.step;
  ro.max_series = a.max_series;
  ro.threads = static_cast<int>(a.threads);
  auto tr = trace::readTraceDir(a.trace_dir, ro);
  if (!tr) {
    spdlog::error("{}", tr.error().message);
    return 1;
  }
  if (tr->series.empty()) {
    spdlog::error("{}: no usable series ({} skipped)", a.trace_dir, tr->skipped.size());
    return 1;
  }
  spdlog::info("{}: {} series, {} skipped, step {} s", a.trace_dir, tr->series.size(),
               tr->skipped.size(), tr->step_seconds);
  if (!a.validation_of.empty()) {
    auto model = predict::lstm::loadModel(a.validation_of);
    if (!model) {
      spdlog::error("{}", model.error().message);
      return 1;
    }
    auto held = predict::lstm::validationWorkloads(*model, tr->series, a.format);
    if (!held) {
      spdlog::error("--validation-of {}: {}", a.validation_of, held.error().message);
      return 1;
    }
    std::vector<const trace::Series*> val;
    for (auto i : held->validation) val.push_back(&tr->series[i]);
    const double part = held->train_fraction;
    trace::Trace parts = predict::lstm::trainingParts(val, part);
    spdlog::info("--validation-of {}: its {} held-back validation workloads, their first {:.0f}% (the part "
                 "training read); the rest of the trace is not used",
                 a.validation_of, parts.series.size(), 100 * part);
    tr->series = std::move(parts.series);
    tr->resources = parts.resources;
  }
  if (!a.series.empty()) {
    // An id names one series, or every piece of a series split at gaps ("76" for 76#1, 76#2).
    // Filtered after every file is read, so that the step and the pieces are the full run's.
    const auto wanted = splitList(a.series);
    std::vector<std::string> missing;
    std::vector<bool> keep(tr->series.size(), false);
    for (const auto& id : wanted) {
      bool found = false;
      for (std::size_t i = 0; i < tr->series.size(); ++i) {
        const std::string& sid = tr->series[i].id;
        if (sid == id || trace::isPieceOf(sid, id))
          keep[i] = found = true;
      }
      if (!found) missing.push_back(id);
    }
    if (!missing.empty()) {
      spdlog::error("--series: no series {} in {}{}", fmt::join(missing, ", "), a.trace_dir,
                    a.validation_of.empty() ? "" : " among --validation-of's held-back workloads");
      return 2;
    }
    std::vector<trace::Series> kept;
    for (std::size_t i = 0; i < tr->series.size(); ++i)
      if (keep[i]) kept.push_back(std::move(tr->series[i]));
    tr->series = std::move(kept);
    spdlog::info("--series: {} series", tr->series.size());
  }
  // On a model's held-back workloads the scored steps are not the trace's later parts.
  const predict::ReplayInfo replay{a.validation_of.empty() ? a.train_fraction : 0.0};
  for (std::size_t i = 0; i < named.size(); ++i) {
    if (auto s = factories[i]->prepare(*tr, replay); !s) {
      spdlog::error("policy {}: {}", named[i].name, s.error().message);
      return 1;
    }
  }

  ProgressBar bar("backtest", tr->series.size(), !a.no_progress);
  sim::RunOptions run;
  run.protocol = {a.lead, a.train_fraction, a.target_violation};
  run.threads = a.threads;
  run.examples = a.examples;
  run.per_series = !a.per_series_path.empty();
  run.on_progress = [&](std::size_t done, std::size_t) { bar.update(done); };
  sim::Report report = sim::runBacktest(*tr, named, run);
  bar.finish();
  for (std::size_t i = tr->warnings.size(); i < report.warnings.size(); ++i)
    spdlog::warn("{}", report.warnings[i]);
  if (report.evaluation_steps == 0) {
    spdlog::error("nothing to score: every series ends before its warm-up part ({:.0f}%) plus the "
                  "lead ({} steps)", 100 * a.train_fraction, a.lead);
    return 1;
  }

  std::cout << sim::toTable(report) << std::flush;
  for (const auto& p : report.policies) {
    spdlog::info(
        "{}: {:.0f} series-steps/s per thread ({} series-steps, {:.2f} thread-s)", p.name,
        p.thread_seconds > 0 ? static_cast<double>(p.series_steps) / p.thread_seconds : 0.0,
        p.series_steps, p.thread_seconds);
  }
  spdlog::info("replay took {:.2f} s wall", report.wall_seconds);
  if (!a.json_path.empty()) {
    if (auto s = writeFileAtomically(a.json_path, sim::toJson(report).dump(2) + "\n"); !s) {
      spdlog::error("{}", s.error().message);
      return 1;
    }
    spdlog::info("wrote {}", a.json_path);
  }
  if (!a.per_series_path.empty()) {
    if (auto s = writeFileAtomically(a.per_series_path, sim::perSeriesCsv(report)); !s) {
      spdlog::error("{}", s.error().message);
      return 1;
    }
    spdlog::info("wrote {}", a.per_series_path);
  }
  if (!a.plot_dir.empty()) {
    auto written = sim::writePlots(report, a.plot_dir);
    if (!written) {
      spdlog::error("{}", written.error().message);
      return 1;
    }
    spdlog::info("wrote {} plots to {}", written->size(), a.plot_dir);
  }
  return 0;
}

}  // namespace

void addBacktestCommand(CLI::App& app, Builtins& builtins) {
  auto args = std::make_shared<BacktestArgs>();
  std::string policy_help = "comma-separated policies; known:";
  for (const auto& n : builtins.policies.names()) {
    policy_help += "\n  " + n + ": " + builtins.policies.summary(n);
  }
  auto* cmd = app.add_subcommand(
      "backtest",
      "Replay a trace through allocation policies and score them at equal risk (EVALUATION.md)");
  cmd->add_option("--trace", args->trace_dir, "folder of trace files (*.csv, *.csv.gz), or one file")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--format", args->format, "bitbrains or csv")->capture_default_str();
  cmd->add_option("--policies", args->policies, policy_help)->capture_default_str();
  cmd->add_option("--policy-opt", args->policy_options, "POLICY.KEY=VALUE passed to a policy");
  cmd->add_option("--lead", args->lead, "actuation lead time in steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--train-fraction", args->train_fraction, "warm-up share of each series")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 0.95));
  cmd->add_option("--target-violation", args->target_violation,
                  "violation rate the calibrated knob aims for")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--json", args->json_path, "write the results as JSON to FILE")->check(outputFile());
  cmd->add_option("--plot", args->plot_dir, "write SVG plots into DIR");
  cmd->add_option("--per-series", args->per_series_path,
                  "write each series' scores at the calibrated knob as CSV to FILE: which workloads hold "
                  "the unused allocation and take the violations")
      ->check(outputFile());
  cmd->add_flag("--strict", args->strict,
                "fail on any bad file or short series instead of skipping");
  cmd->add_option("--step", args->step, "resampling step in seconds (default: the median step)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", args->threads, "worker threads (default: all cores)");
  cmd->add_option("--max-series", args->max_series, "use only the first N series");
  cmd->add_option("--series", args->series,
                  "replay only these series: comma-separated ids as --per-series names them; an id before "
                  "'#' takes every piece of a series split at gaps (76 for 76#1, 76#2)");
  cmd->add_option("--examples", args->examples, "series kept for example plots")
      ->capture_default_str();
  cmd->add_option("--validation-of", args->validation_of,
                  "score on MODEL's held-back validation workloads, the part of each that training read "
                  "(its model-selection data), instead of the whole trace: compare policies without "
                  "looking at the evaluation halves; the trace must be the one MODEL was trained on, "
                  "read as train read it; lstm and auto load MODEL unless --policy-opt names one")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->callback([args, &builtins] {
    if (int rc = runBacktestCommand(*args, builtins); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
