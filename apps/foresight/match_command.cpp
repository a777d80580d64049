// `foresight match`: rank environments for a workload, evaluate the matcher (MATCHING.md), or
// convert Flora's files to the generic format.
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/match/evaluate.h"
#include "foresight/match/flora.h"

namespace foresight::app {
namespace {

struct MatchArgs {
  std::string data_dir, catalog, history, purchase_option = match::kOnDemand;
  std::string model = "factor", objective = "cost", group_by, workload, fingerprint, json_path;
  std::vector<std::string> probe_runs;
  double deadline = 0;
  bool evaluate = false, no_fingerprints = false, self_tune = false;
  std::size_t top = 10;
  unsigned threads = 1;
  match::MatcherOptions matcher;
  std::string flora_dir, flora_out;
  double vcpu_hour_price = 0, gb_hour_price = 0;
};

// FILE is a psrecord trace, a CSV whose first row holds fingerprint columns, or the
// fingerprints.jsonl of `foresight record`; the last two must hold one workload.
Result<std::map<std::string, double>> readFingerprint(const std::string& file) {
  match::RunHistory h;
  if (file.ends_with(".jsonl")) {
    if (auto s = match::readFingerprintsJsonl(file, h); !s) return tl::unexpected(s.error());
  } else if (file.ends_with(".csv")) {
    std::ifstream in(file);
    std::string header;
    std::getline(in, header);
    if (!header.starts_with("workload"))
      return fail(ErrorCode::kParse, "{}:1: expected a `workload` column first", file);
    if (auto s = match::readFingerprintsCsv(file, h); !s) return tl::unexpected(s.error());
  } else {
    auto trace = match::readPsrecord(file);
    if (!trace) return tl::unexpected(trace.error());
    return match::fingerprintOf(*trace);
  }
  if (h.fingerprints.size() != 1) {
    std::vector<std::string> names;
    for (const auto& [w, fp] : h.fingerprints) names.push_back(w);
    return fail(ErrorCode::kParse, "{}: expected the fingerprints of one workload, found {} ({})",
                file, names.size(), fmt::join(names, ", "));
  }
  return h.fingerprints.begin()->second;
}

// ENV=SECONDS, or ENV=failed for a run that did not complete.
Result<match::ProbeOutcome> parseProbe(const std::string& s) {
  const auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0)
    return fail(ErrorCode::kInvalidArgument, "--probe '{}': expected ENV=SECONDS or ENV=failed", s);
  match::ProbeOutcome p{s.substr(0, eq), true, 0};
  const auto v = s.substr(eq + 1);
  if (v == "failed") {
    p.completed = false;
    return p;
  }
  try {
    std::size_t used = 0;
    p.runtime_s = std::stod(v, &used);
    if (used != v.size() || !(p.runtime_s > 0) || !std::isfinite(p.runtime_s))
      throw std::invalid_argument(v);
  } catch (const std::exception&) {
    return fail(ErrorCode::kInvalidArgument, "--probe '{}': '{}' is not a finite runtime > 0",
                s, v);
  }
  return p;
}

// The runs.csv columns --group-by may name: an unknown one would silently group nothing.
Status checkGroupBy(const match::OutcomeTable& t, const std::string& group_by) {
  if (group_by.empty()) return ok();
  std::set<std::string> columns;
  for (const auto& info : t.info)
    for (const auto& [k, v] : info) columns.insert(k);
  if (!columns.contains(group_by))
    return fail(ErrorCode::kInvalidArgument, "--group-by '{}': no such column in the runs ({})",
                group_by,
                columns.empty() ? std::string("they have no extra columns")
                                : fmt::format("columns: {}", fmt::join(columns, ", ")));
  return ok();
}

// Without probe outcomes the ranking rests on the fingerprint alone, so it must share features
// with the history's; with probes an unusable fingerprint is only ignored (Scout has none).
Status checkFingerprint(const match::OutcomeTable& t, const std::map<std::string, double>& fp,
                        const std::string& file, bool has_probes) {
  std::set<std::string> expected;
  for (const auto& f : t.fingerprints)
    for (const auto& [k, v] : f) expected.insert(k);
  std::vector<std::string> unknown;
  for (const auto& [k, v] : fp)
    if (!expected.contains(k)) unknown.push_back(k);
  const bool unusable = unknown.size() == fp.size();
  std::string why;
  if (expected.empty())
    why = "the history has no fingerprints (fingerprints.csv) to compare it with";
  else if (unusable)
    why = fmt::format("none of its features ({}) is in the history's fingerprints; expected some "
                      "of: {}",
                      fp.empty() ? std::string("none")
                                 : fmt::format("{}", fmt::join(unknown, ", ")),
                      fmt::join(expected, ", "));
  if (unusable && !has_probes)
    return fail(ErrorCode::kInvalidArgument,
                "--fingerprint {}: {}; nothing to rank from (give --probe ENV=SECONDS for a few "
                "environments)",
                file, why);
  if (unusable)
    spdlog::warn("--fingerprint {}: {}; ranking from the probes alone", file, why);
  else if (!unknown.empty())
    spdlog::warn("--fingerprint {}: features the history lacks, ignored: {}", file,
                 fmt::join(unknown, ", "));
  return ok();
}

void printRanking(const match::Ranking& r, const match::OutcomeTable& t, std::size_t top,
                  std::size_t actual_of, match::Objective objective) {
  const bool with_actual = actual_of != std::string::npos;
  fmt::print("ranked by expected {}: P(done) × its mean + P(fails) × the worst (a wide band's mean "
             "lies above its median runtime)\n",
             objective == match::Objective::kCost ? "cost" : "runtime (s)");
  fmt::print("{:>4}  {:<22} {:>10} {:>10} {:>21} {:>11} {:>7}  {}\n", "rank", "environment", "expected",
             "runtime_s", "±1sd", "cost", "P(done)", with_actual ? "actual runtime_s / cost" : "");
  for (std::size_t i = 0; i < std::min(top, r.environments.size()); ++i) {
    const auto& e = r.environments[i];
    std::string actual;
    if (with_actual) {
      const auto& o = t.outcomes[actual_of][t.environmentIndex(e.env)];
      actual = !o.has_run ? "no run" : !o.completed ? "failed" : fmt::format("{:.0f} / {:.4f}", o.runtime_s, o.cost);
    }
    fmt::print("{:>4}  {:<22} {:>10} {:>10.0f} {:>21} {:>11} {:>7.2f}  {}{}\n", i + 1, e.env,
               objective == match::Objective::kCost ? fmt::format("{:.4f}", e.expected)
                                                    : fmt::format("{:.0f}", e.expected),
               e.runtime_s,
               e.observed ? "measured" : fmt::format("{:.0f}–{:.0f}", e.runtime_low_s, e.runtime_high_s),
               std::isfinite(e.cost) ? fmt::format("{:.4f}", e.cost) : "-", e.p_complete, actual, e.admissible ? "" : "  (predicted to fail or miss the deadline)");
  }
  fmt::print("\nWhy {}\n", r.explanation);
}

std::string rankingJson(const match::Ranking& r) {
  nlohmann::json j;
  for (const auto& e : r.environments)
    j["environments"].push_back({{"env", e.env}, {"runtime_s", e.runtime_s},
                                 {"runtime_low_s", e.runtime_low_s}, {"runtime_high_s", e.runtime_high_s},
                                 {"cost", e.cost}, {"cost_low", e.cost_low}, {"cost_high", e.cost_high},
                                 {"log_sd", e.log_sd}, {"p_complete", e.p_complete},
                                 {"observed", e.observed}, {"admissible", e.admissible},
                                 {"expected", e.expected}});
  for (const auto& d : r.drivers) j["drivers"].push_back({{"feature", d.feature}, {"effect_log_runtime", d.effect}});
  j["explanation"] = r.explanation;
  return j.dump(2) + "\n";
}

int runConvertFlora(const MatchArgs& a) {
  match::FloraPrices prices;
  if (a.vcpu_hour_price > 0 || a.gb_hour_price > 0) {
    prices.vcpu_hour = a.vcpu_hour_price;
    prices.gb_hour = a.gb_hour_price;
  }
  if (auto s = match::convertFlora(a.flora_dir, a.flora_out, prices); !s) {
    spdlog::error("{}", s.error().message);
    return 1;
  }
  fmt::print("wrote {}/environments.csv, runs.csv, fingerprints.csv\n", a.flora_out);
  return 0;
}

int runMatch(MatchArgs a) {
  if (a.data_dir.empty()) {
    spdlog::error("--data DIR is required");
    return 2;
  }
  const int modes = a.evaluate + !a.workload.empty() + !a.fingerprint.empty();
  if (modes != 1) {
    spdlog::error("give exactly one of --evaluate, --workload ID, --fingerprint FILE");
    return 2;
  }
  auto objective = match::parseObjective(a.objective);
  if (!objective) {
    spdlog::error("--objective: {}", objective.error().message);
    return 2;
  }
  auto model = match::parseRuntimeModel(a.model);
  if (!model) {
    spdlog::error("--model: {}", model.error().message);
    return 2;
  }
  a.matcher.model = *model;
  a.matcher.group_by = a.group_by;
  auto data = match::loadMatchFolder(a.data_dir, {a.catalog, a.history});
  if (!data) {
    spdlog::error("{}", data.error().message);
    return 1;
  }
  auto table = match::buildOutcomeTable(*data, *objective,
                                        a.deadline > 0 ? std::optional(a.deadline) : std::nullopt,
                                        a.purchase_option);
  if (!table) {
    spdlog::error("{}", table.error().message);
    return 1;
  }
  if (auto st = checkGroupBy(*table, a.group_by); !st) {
    spdlog::error("{}", st.error().message);
    return 2;
  }
  a.matcher.threads = 1;  // parallelism is across held-out groups

  if (a.evaluate) {
    match::EvaluationOptions opt{a.matcher, a.group_by, !a.no_fingerprints, a.threads, a.self_tune};
    auto report = match::evaluate(*table, opt);
    if (!report) {
      spdlog::error("{}", report.error().message);
      return 1;
    }
    const auto& s = report->summary;
    if (s.workloads == 0) {
      spdlog::error("{}: no workload could be scored ({} without a feasible environment{})",
                    a.data_dir, s.skipped, a.deadline > 0 ? " within the deadline" : "");
      return 1;
    }
    fmt::print("{:<28} {:<26} {:<26} {:>7} {:>8} {:>8}\n", "workload", "chosen", "best", "regret",
               "best-avg", "random");
    for (const auto& w : report->workloads)
      fmt::print("{:<28} {:<26} {:<26} {:>7.3f} {:>8.3f} {:>8.3f}\n", w.workload, w.chosen, w.best,
                 w.regret, w.baseline_regret, w.random_regret);
    fmt::print(
        "\nmatcher ({}, {} probes): median regret {:.3f}, mean {:.3f}, top-1 {}/{}, top-3 {}/{}, "
        "median probe cost {:.2f}× the best run\n",
        a.model, a.matcher.probes, s.median_regret, s.mean_regret, s.top1, s.workloads, s.top3,
        s.workloads, s.median_probe_cost_vs_best);
    fmt::print("best-on-average: median regret {:.3f}, mean {:.3f}, top-1 {}/{}\n", s.baseline_median,
               s.baseline_mean, s.baseline_top1, s.workloads);
    fmt::print("random pick:     median regret {:.3f}, mean {:.3f}\n", s.random_median, s.random_mean);
    if (s.probes_unknown_cost)
      fmt::print("{} failed probe runs have no recorded runtime: their cost is unknown and left out, so "
                 "the probe cost is a lower bound\n",
                 s.probes_unknown_cost);
    if (s.skipped) fmt::print("skipped {} workloads with no feasible environment\n", s.skipped);
    if (!a.json_path.empty())
      if (auto st = writeFileAtomically(a.json_path, match::toJson(*report, *table, opt)); !st) {
        spdlog::error("{}", st.error().message);
        return 1;
      }
    return 0;
  }

  match::WorkloadEvidence ev;
  for (const auto& p : a.probe_runs) {
    auto probe = parseProbe(p);
    if (!probe) {
      spdlog::error("{}", probe.error().message);
      return 2;
    }
    ev.probes.push_back(*probe);
  }
  std::size_t actual_of = std::string::npos;
  Result<match::Ranking> ranking = fail(ErrorCode::kInternal, "no ranking");
  if (!a.workload.empty()) {
    // As in the evaluation: the workload (and its group) is hidden except its probe runs.
    const auto w = table->workloadIndex(a.workload);
    if (w == std::string::npos) {
      spdlog::error("--workload '{}': not in {}", a.workload, a.data_dir);
      return 1;
    }
    if (!a.group_by.empty() && !table->info[w].count(a.group_by)) {
      spdlog::error("--group-by '{}': workload '{}' has no such column", a.group_by, a.workload);
      return 2;
    }
    actual_of = w;
    std::vector<std::size_t> train;
    for (std::size_t i = 0; i < table->workloads.size(); ++i) {
      const bool same = i == w || (!a.group_by.empty() && table->info[i].count(a.group_by) &&
                                   table->info[w].count(a.group_by) &&
                                   table->info[i].at(a.group_by) == table->info[w].at(a.group_by));
      if (!same) train.push_back(i);
    }
    auto matcher = match::Matcher::train(*table, train, a.matcher);
    if (!matcher) {
      spdlog::error("{}", matcher.error().message);
      return 1;
    }
    if (!a.no_fingerprints) ev.fingerprint = table->fingerprints[w];
    // The probe runs are looked up in the data, one at a time, as the evaluation does.
    std::vector<std::size_t> candidates;
    for (std::size_t e = 0; e < table->environments.size(); ++e)
      if (table->outcomes[w][e].has_run) candidates.push_back(e);
    while (ev.probes.size() < matcher->probeBudget()) {
      auto next = matcher->nextProbe(ev, candidates);
      if (!next) {
        spdlog::error("{}", next.error().message);
        return 1;
      }
      if (!*next) break;
      const auto& o = table->outcomes[w][**next];
      ev.probes.push_back({table->environments[**next].id, o.completed, o.runtime_s});
    }
    std::string names;
    for (const auto& p : ev.probes) names += " " + p.env;
    fmt::print("probe runs (from the data):{}\n", names);
    ranking = matcher->rank(ev, candidates);  // among those with a measured outcome, as evaluated
  } else {
    auto fp = readFingerprint(a.fingerprint);
    if (!fp) {
      spdlog::error("{}", fp.error().message);
      return 1;
    }
    if (auto st = checkFingerprint(*table, *fp, a.fingerprint, !ev.probes.empty()); !st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
    ev.fingerprint = *fp;
    // As recommendEnvironments() does, kept step by step to suggest the next probe: without any
    // probe outcome the model is trained on fingerprints and environment features alone.
    auto options = a.matcher;
    if (ev.probes.empty()) options.probes = 0;
    std::vector<std::size_t> all(table->workloads.size());
    std::iota(all.begin(), all.end(), 0);
    auto matcher = match::Matcher::train(*table, all, options);
    if (!matcher) {
      spdlog::error("{}", matcher.error().message);
      return 1;
    }
    ranking = matcher->rank(ev);
    if (ev.probes.empty() && a.matcher.probes > 0) {
      // The probes a matcher with the full budget would start with.
      std::vector<std::size_t> first;
      if (a.matcher.model == match::RuntimeModel::kFactor) {
        auto full = match::Matcher::train(*table, all, a.matcher);
        if (!full) {
          spdlog::error("{}", full.error().message);
          return 1;
        }
        first = full->probes();
        if (first.empty())  // no factor to learn: the first check instead
          if (auto next = full->nextProbe(ev); next && *next) first.push_back(**next);
      } else {
        first = match::Matcher::chooseProbes(*table, all, (a.matcher.probes + 1) / 2);
      }
      std::string names;
      for (auto p : first) names += " " + table->environments[p].id;
      fmt::print("ranked from the fingerprint alone; to sharpen it, run the informative probes{} "
                 "and pass --probe ENV=SECONDS (or =failed) for each\n", names);
    } else if (ranking && ev.probes.size() < matcher->probeBudget()) {
      auto next = matcher->nextProbe(ev);
      if (next && *next)
        fmt::print("next probe to run ({} of {}): {}\n", ev.probes.size() + 1,
                   matcher->probeBudget(), table->environments[**next].id);
    }
  }
  if (!ranking) {
    spdlog::error("{}", ranking.error().message);
    return 1;
  }
  printRanking(*ranking, *table, a.top, actual_of, *objective);
  if (!a.json_path.empty())
    if (auto st = writeFileAtomically(a.json_path, rankingJson(*ranking)); !st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
  return 0;
}

}  // namespace

void addMatchCommand(CLI::App& app) {
  auto args = std::make_shared<MatchArgs>();
  auto* cmd = app.add_subcommand(
      "match", "Rank the environments (hardware, software, price) that suit a workload best");
  cmd->add_option("--data", args->data_dir,
                  "Generic folder: environments.csv|yaml, runs.csv and/or history.sqlite, "
                  "fingerprints.csv");
  cmd->add_option("--catalog", args->catalog, "Instance catalog CSV joined on instance_type");
  cmd->add_option("--history", args->history, "SQLite run store to read runs from");
  cmd->add_option("--purchase-option", args->purchase_option, "Price to use: on_demand, reserved_1yr_std_noupfront, ...")
      ->capture_default_str();
  cmd->add_option("--objective", args->objective, "cost or runtime")->capture_default_str();
  cmd->add_option("--model", args->model,
                  "Runtime model: factor (low-rank across workloads) or xgboost (boosted trees)")
      ->capture_default_str();
  cmd->add_option("--deadline", args->deadline, "Lowest cost that finishes within S seconds")
      ->check(finiteAbove(0));
  cmd->add_option("--probes", args->matcher.probes, "Trial runs on environments the matcher picks")
      ->capture_default_str()
      ->check(wholeNumber(0));
  cmd->add_option("--group-by", args->group_by, "Workloads sharing this runs.csv column are held out together");
  cmd->add_flag("--no-fingerprints", args->no_fingerprints, "Ignore fingerprints.csv");
  cmd->add_option("--workload", args->workload, "Rank for this workload of the data, hidden except its probes");
  cmd->add_option("--fingerprint", args->fingerprint, "Rank for a new workload: psrecord trace, one-row CSV, or a recording's fingerprints.jsonl");
  cmd->add_option("--probe", args->probe_runs, "Known trial run: ENV=SECONDS or ENV=failed (repeatable)");
  cmd->add_flag("--evaluate", args->evaluate, "Leave-one-group-out evaluation (MATCHING.md)");
  cmd->add_flag("--self-tune", args->self_tune,
                "With --evaluate: each fold picks its informative/checking probe split by an inner "
                "evaluation on its training workloads (slower)");
  cmd->add_option("--json", args->json_path, "Write the ranking or the evaluation as JSON")->check(outputFile());
  cmd->add_option("--top", args->top, "Rows to print")
      ->capture_default_str()
      ->check(wholeNumber(1));
  cmd->add_option("--threads", args->threads, "Held-out groups evaluated in parallel")
      ->capture_default_str()
      ->check(wholeNumber(1));
  cmd->add_option("--ensemble", args->matcher.ensemble, "Bagged models (uncertainty)")
      ->capture_default_str()
      ->check(wholeNumber(1));
  cmd->add_option("--seed", args->matcher.seed, "Seed of the bootstrap and of XGBoost")->capture_default_str();

  auto* conv = cmd->add_subcommand("convert-flora", "Flora's original files → generic folder with fingerprints");
  conv->add_option("--flora", args->flora_dir, "Flora folder (gcp_runtime_data/, profiling_data/)")->required();
  conv->add_option("--out", args->flora_out, "Output folder")->required();
  conv->add_option("--vcpu-hour-price", args->vcpu_hour_price,
                   "$ per worker vCPU-hour (with --gb-hour-price)")
      ->check(finiteIn(0));
  conv->add_option("--gb-hour-price", args->gb_hour_price, "$ per worker GB-hour of memory")
      ->check(finiteIn(0));
  conv->callback([args] {
    if (int rc = runConvertFlora(*args); rc != 0) throw CLI::RuntimeError(rc);
  });
  cmd->callback([args, conv] {
    if (conv->parsed()) return;
    if (int rc = runMatch(*args); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
