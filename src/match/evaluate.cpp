#include "foresight/match/evaluate.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "foresight/core/parallel.h"

namespace foresight::match {
namespace {

// Regrets this close to 0 are ties with the best (runtimes are recorded to a few digits).
constexpr double kTie = 1e-9;

struct Extremes {
  double best = 0, worst = 0;
  std::size_t best_env = std::string::npos;
};

std::optional<Extremes> extremes(const OutcomeTable& t, std::size_t w) {
  Extremes x;
  for (std::size_t e = 0; e < t.environments.size(); ++e) {
    const auto& o = t.outcomes[w][e];
    if (!t.feasible(o)) continue;
    const double v = t.value(o);
    if (x.best_env == std::string::npos || v < x.best) x.best = v, x.best_env = e;
    x.worst = std::max(x.worst, v);
  }
  if (x.best_env == std::string::npos || !(x.best > 0)) return std::nullopt;
  return x;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  return std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

}  // namespace

std::optional<double> regret(const OutcomeTable& t, std::size_t w, std::size_t chosen) {
  auto x = extremes(t, w);
  if (!x) return std::nullopt;
  const auto& o = t.outcomes[w][chosen];
  return (t.feasible(o) ? t.value(o) : x->worst) / x->best - 1;
}

std::vector<std::size_t> rankOnAverage(const OutcomeTable& t, const std::vector<std::size_t>& workloads) {
  std::vector<double> mean_regret(t.environments.size(), std::numeric_limits<double>::infinity());
  for (std::size_t e = 0; e < t.environments.size(); ++e) {
    double sum = 0;
    int n = 0;
    for (auto w : workloads)  // over the workloads that ran there: without a run it is unknown
      if (auto r = t.outcomes[w][e].has_run ? regret(t, w, e) : std::nullopt) sum += *r, ++n;
    if (n) mean_regret[e] = sum / n;
  }
  std::vector<std::size_t> order(t.environments.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return mean_regret[a] < mean_regret[b]; });
  return order;
}

Result<EvaluationReport> evaluate(const OutcomeTable& t, const EvaluationOptions& options) {
  // Groups in order of first appearance.
  std::vector<std::string> group_of(t.workloads.size());
  std::vector<std::string> groups;
  for (std::size_t w = 0; w < t.workloads.size(); ++w) {
    if (options.group_by.empty()) {
      group_of[w] = t.workloads[w];
    } else {
      auto it = t.info[w].find(options.group_by);
      if (it == t.info[w].end()) {
        std::vector<std::string> have;
        for (const auto& [k, v] : t.info[w]) have.push_back(k);
        return fail(ErrorCode::kInvalidArgument, "workload '{}' has no `{}` column to group by (runs.csv columns it has: {})",
                    t.workloads[w], options.group_by, have.empty() ? std::string("none") : fmt::format("{}", fmt::join(have, ", ")));
      }
      group_of[w] = it->second;
    }
    if (std::find(groups.begin(), groups.end(), group_of[w]) == groups.end())
      groups.push_back(group_of[w]);
  }
  if (groups.size() < 2)
    return fail(ErrorCode::kInvalidArgument, "leave-one-group-out needs at least two groups");

  std::vector<std::vector<WorkloadScore>> per_group(groups.size());
  std::vector<std::optional<Error>> errors(groups.size());
  std::vector<std::size_t> skipped(groups.size(), 0);
  parallelFor(groups.size(), options.threads, [&](std::size_t g, unsigned) {
    std::vector<std::size_t> train, held;
    for (std::size_t w = 0; w < t.workloads.size(); ++w)
      (group_of[w] == groups[g] ? held : train).push_back(w);
    // The fold's matcher and best-on-average know the prices the training runs imply, not those
    // the held-out group's own costs would add; its choice is still scored on all of them.
    OutcomeTable known = t;
    implyPrices(known, train);
    if (t.objective == Objective::kCost)
      for (std::size_t e = 0; e < t.environments.size(); ++e)
        if (std::isnan(known.price_per_hour[e])) {
          errors[g] = Error{ErrorCode::kInvalidArgument,
                            fmt::format("environment '{}' has no price, and only the runs of "
                                        "held-out group '{}' have a cost there to imply one: give "
                                        "its price_per_hour or use --objective runtime",
                                        t.environments[e].id, groups[g])};
          return;
        }
    auto fold_options = options.matcher;
    fold_options.group_by = options.group_by;  // inner model selection holds out as we do
    if (options.self_tune) {
      auto split = selectInformativeProbes(known, train, options);
      if (!split) {
        errors[g] = split.error();
        return;
      }
      if (*split) fold_options.informative_probes = **split;
    }
    auto matcher = Matcher::train(known, train, fold_options);
    if (!matcher) {
      errors[g] = matcher.error();
      return;
    }
    const auto on_average = rankOnAverage(known, train);
    for (auto w : held) {
      auto x = extremes(t, w);
      if (!x) {
        ++skipped[g];
        continue;
      }
      // Only what a user would know: the fingerprint and the probe runs' outcomes.
      WorkloadEvidence ev;
      if (options.use_fingerprints) ev.fingerprint = t.fingerprints[w];
      WorkloadScore s;
      s.workload = t.workloads[w];
      s.group = groups[g];
      s.informative_probes = matcher->probes().size();
      // A choice is scored by its outcome, so the matcher and both reference points choose among
      // the environments the workload has a run on (docs/matching.md).
      std::vector<std::size_t> candidates;
      for (std::size_t e = 0; e < t.environments.size(); ++e)
        if (t.outcomes[w][e].has_run) candidates.push_back(e);
      const auto baseline = *std::find_if(on_average.begin(), on_average.end(), [&](std::size_t e) {
        return t.outcomes[w][e].has_run;
      });
      for (std::size_t k = 0; k < matcher->probeBudget(); ++k) {
        auto next = matcher->nextProbe(ev, candidates);
        if (!next) {
          errors[g] = next.error();
          return;
        }
        if (!*next) break;
        const auto p = **next;
        const auto& o = t.outcomes[w][p];
        ev.probes.push_back({t.environments[p].id, o.completed, o.runtime_s});
        s.probes.push_back(t.environments[p].id);
        // A failed run without a recorded runtime has no known cost (Scout's time-outs are
        // among them): counted, so the total reads as the lower bound it is.
        if (std::isfinite(t.value(o))) s.probe_cost += t.value(o);
        else ++s.probes_unknown_cost;
      }
      auto ranking = matcher->rank(ev, candidates);
      if (!ranking) {
        errors[g] = ranking.error();
        return;
      }
      const auto chosen = t.environmentIndex(ranking->environments.front().env);
      s.chosen = t.environments[chosen].id;
      s.best = t.environments[x->best_env].id;
      s.regret = *regret(t, w, chosen);
      // A hit is a choice as good as the best: with tied bests any of them is one.
      const auto hit = [&](std::size_t e) { return *regret(t, w, e) <= kTie; };
      s.top1 = hit(chosen);
      for (std::size_t i = 0; i < std::min<std::size_t>(3, ranking->environments.size()); ++i)
        s.top3 = s.top3 || hit(t.environmentIndex(ranking->environments[i].env));
      s.probe_cost_vs_best = s.probe_cost / x->best;
      s.baseline_env = t.environments[baseline].id;
      s.baseline_regret = *regret(t, w, baseline);
      s.baseline_top1 = hit(baseline);
      double sum = 0;
      for (auto e : candidates) sum += *regret(t, w, e);
      s.random_regret = sum / candidates.size();
      per_group[g].push_back(std::move(s));
    }
  });
  for (const auto& e : errors)
    if (e) return tl::unexpected(*e);

  EvaluationReport report;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (auto& s : per_group[g]) report.workloads.push_back(std::move(s));
    report.summary.skipped += skipped[g];
  }
  std::vector<double> r, b, rnd, pc;
  auto& sm = report.summary;
  for (const auto& s : report.workloads) {
    r.push_back(s.regret);
    b.push_back(s.baseline_regret);
    rnd.push_back(s.random_regret);
    pc.push_back(s.probe_cost_vs_best);
    sm.top1 += s.top1;
    sm.top3 += s.top3;
    sm.baseline_top1 += s.baseline_top1;
    sm.probes_unknown_cost += s.probes_unknown_cost;
  }
  sm.workloads = report.workloads.size();
  sm.median_regret = median(r);
  sm.mean_regret = mean(r);
  sm.baseline_median = median(b);
  sm.baseline_mean = mean(b);
  sm.random_median = median(rnd);
  sm.random_mean = mean(rnd);
  sm.median_probe_cost_vs_best = median(pc);
  return report;
}

Result<std::optional<std::size_t>> selectInformativeProbes(const OutcomeTable& t,
                                                           const std::vector<std::size_t>& workloads,
                                                           const EvaluationOptions& options) {
  const std::size_t k = options.matcher.probes;
  // The default split is the matcher's own: informative_probes as given, else half the budget
  // capped by the factor model's rank, which is only known once a matcher is trained. So it is
  // tried and returned as nullopt (a fold's options unchanged), not as a number.
  const std::optional<std::size_t> fallback = options.matcher.informative_probes;
  if (k <= 1) return fallback;
  // The training workloads alone, as a table of their own.
  OutcomeTable sub = t;
  sub.workloads.clear();
  sub.outcomes.clear();
  sub.fingerprints.clear();
  sub.info.clear();
  for (auto w : workloads) {
    sub.workloads.push_back(t.workloads[w]);
    sub.outcomes.push_back(t.outcomes[w]);
    sub.fingerprints.push_back(t.fingerprints[w]);
    sub.info.push_back(t.info[w]);
  }
  EvaluationOptions inner = options;
  inner.self_tune = false;
  inner.threads = 1;
  std::optional<std::size_t> best = fallback;
  double best_mean = std::numeric_limits<double>::infinity();
  std::vector<std::optional<std::size_t>> tried;
  for (std::optional<std::size_t> n : {fallback, std::optional<std::size_t>(1), std::optional(k)}) {
    if (std::find(tried.begin(), tried.end(), n) != tried.end()) continue;
    tried.push_back(n);
    inner.matcher.informative_probes = n;
    auto r = evaluate(sub, inner);
    if (!r) return fallback;  // e.g. a single training group: nothing to choose with
    if (r->summary.mean_regret < best_mean - 1e-12) best_mean = r->summary.mean_regret, best = n;
  }
  return best;
}

std::string toJson(const EvaluationReport& report, const OutcomeTable& t,
                   const EvaluationOptions& options) {
  using nlohmann::json;
  const auto& s = report.summary;
  json j;
  j["protocol"] = {{"objective", t.objective == Objective::kCost ? "cost" : "runtime"},
                   {"deadline_s", t.deadline_s ? json(*t.deadline_s) : json(nullptr)},
                   {"probes", options.matcher.probes},
                   {"group_by", options.group_by},
                   {"fingerprints", options.use_fingerprints},
                   {"model", options.matcher.model == RuntimeModel::kFactor ? "factor" : "xgboost"},
                   {"ensemble", options.matcher.ensemble},
                   {"seed", options.matcher.seed},
                   {"self_tune", options.self_tune}};
  j["summary"] = {{"workloads", s.workloads},
                  {"skipped_no_feasible_environment", s.skipped},
                  {"median_regret", s.median_regret},
                  {"mean_regret", s.mean_regret},
                  {"top1", s.top1},
                  {"top3", s.top3},
                  {"top1_rate", s.workloads ? double(s.top1) / s.workloads : 0.0},
                  {"top3_rate", s.workloads ? double(s.top3) / s.workloads : 0.0},
                  {"median_probe_cost_vs_best", s.median_probe_cost_vs_best},
                  {"probe_runs_of_unknown_cost", s.probes_unknown_cost},
                  {"best_on_average", {{"median_regret", s.baseline_median},
                                       {"mean_regret", s.baseline_mean},
                                       {"top1", s.baseline_top1}}},
                  {"random", {{"median_regret", s.random_median}, {"mean_regret", s.random_mean}}}};
  json rows = json::array();
  for (const auto& w : report.workloads)
    rows.push_back({{"workload", w.workload},
                    {"group", w.group},
                    {"chosen", w.chosen},
                    {"best", w.best},
                    {"regret", w.regret},
                    {"top1", w.top1},
                    {"top3", w.top3},
                    {"probes", w.probes},
                    {"probe_cost", w.probe_cost},
                    {"probe_cost_vs_best", w.probe_cost_vs_best},
                    {"probe_runs_of_unknown_cost", w.probes_unknown_cost},
                    {"best_on_average", w.baseline_env},
                    {"best_on_average_regret", w.baseline_regret},
                    {"best_on_average_top1", w.baseline_top1},
                    {"random_regret", w.random_regret},
                    {"informative_probes", w.informative_probes}});
  j["workloads"] = rows;
  return j.dump(2) + "\n";
}

}  // namespace foresight::match
