#include "foresight/sim/backtest.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "foresight/core/parallel.h"

namespace foresight::sim {
namespace {

struct Accumulator {
  double sum_alloc = 0, sum_slack = 0, sum_usage = 0, sum_short = 0;
  std::uint64_t steps = 0, violations = 0, changes = 0;
  std::uint64_t warm_steps = 0, warm_violations = 0;
  void merge(const Accumulator& o) {
    sum_alloc += o.sum_alloc, sum_slack += o.sum_slack, sum_usage += o.sum_usage;
    sum_short += o.sum_short, steps += o.steps, violations += o.violations, changes += o.changes;
    warm_steps += o.warm_steps, warm_violations += o.warm_violations;
  }
};

struct Coverage {
  std::uint64_t steps = 0, covered = 0;
};

struct PolicyAccumulator {
  std::array<std::vector<Accumulator>, kResourceCount> knob;  // per knob grid value
  std::array<std::array<Coverage, 4>, kResourceCount> coverage{};
  std::array<double, kResourceCount> days{};  // evaluation days, pooled over series
  double seconds = 0;
  std::uint64_t steps = 0;
};

std::size_t nearestIndex(const std::vector<double>& grid, double v) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < grid.size(); ++i)
    if (std::abs(grid[i] - v) < std::abs(grid[best] - v)) best = i;
  return best;
}

predict::SeriesContext contextFor(const trace::Series& s, const Protocol& p) {
  predict::SeriesContext ctx;
  ctx.id = s.id;
  ctx.start = s.start;
  ctx.step_seconds = s.step_seconds;
  ctx.steps = s.size();
  ctx.warmup_steps = s.trainSteps(p.train_fraction);
  ctx.lead_steps = p.lead_steps;
  for (Resource r : kAllResources) ctx.resources[index(r)] = s.has(r);
  ctx.metadata = s.metadata;
  return ctx;
}

// Replays one series through one policy. `visit(t, r, allocations, lo, hi)` is called for every
// step t >= lead with the allocations committed for t (lo/hi: interval bounds per coverage level,
// NaN when the policy gives none).
template <typename Visit>
void replay(const predict::PolicyFactory& factory, const trace::Series& s, const Protocol& p,
            const std::array<std::vector<double>, kResourceCount>& grids, Visit&& visit) {
  const auto ctx = contextFor(s, p);
  auto policy = factory.create(ctx, factory.seesFuture() ? &s : nullptr);
  const std::size_t n = s.size(), lead = p.lead_steps, slots = lead + 1;
  const std::size_t levels = kCoverageLevels.size();
  const bool intervals = factory.givesIntervals();
  std::array<std::vector<double>, kResourceCount> pending, lo, hi;
  for (Resource r : kAllResources) {
    if (!s.has(r)) continue;
    pending[index(r)].assign(slots * grids[index(r)].size(), NAN);
    lo[index(r)].assign(slots * levels, NAN);
    hi[index(r)].assign(slots * levels, NAN);
  }
  predict::Observation o;
  for (std::size_t t = 0; t < n; ++t) {
    if (t >= lead) {
      const std::size_t slot = t % slots;
      for (Resource r : kAllResources) {
        if (!s.has(r)) continue;
        const std::size_t k = grids[index(r)].size();
        visit(t, r, std::span<const double>(pending[index(r)].data() + slot * k, k),
              std::span<const double>(lo[index(r)].data() + slot * levels, levels),
              std::span<const double>(hi[index(r)].data() + slot * levels, levels));
      }
    }
    o.step = t;
    o.time = s.start + static_cast<std::int64_t>(t) * s.step_seconds;
    for (Resource r : kAllResources) o.usage[index(r)] = s.has(r) ? s.usage[index(r)][t] : NAN;
    policy->observe(o);
    const std::size_t slot = (t + lead) % slots;
    for (Resource r : kAllResources) {
      if (!s.has(r)) continue;
      const auto& grid = grids[index(r)];
      policy->commit(r, grid,
                     std::span<double>(pending[index(r)].data() + slot * grid.size(), grid.size()));
      if (intervals) {
        for (std::size_t l = 0; l < levels; ++l) {
          double a = NAN, b = NAN;
          if (!policy->interval(r, kCoverageLevels[l], a, b)) a = b = NAN;
          lo[index(r)][slot * levels + l] = a;
          hi[index(r)][slot * levels + l] = b;
        }
      }
    }
  }
}

Scores scoresOf(const Accumulator& a, const Accumulator& largest, double knob, double days) {
  Scores s;
  s.largest_violation_rate = largest.steps ? static_cast<double>(largest.violations) /
                                                 static_cast<double>(largest.steps)
                                           : 0.0;
  s.knob = knob;
  s.slack = a.sum_alloc > 0 ? a.sum_slack / a.sum_alloc : 0.0;
  s.violation_rate =
      a.steps ? static_cast<double>(a.violations) / static_cast<double>(a.steps) : 0.0;
  s.shortfall = a.sum_usage > 0 ? a.sum_short / a.sum_usage : 0.0;
  s.changes_per_day = days > 0 ? static_cast<double>(a.changes) / days : 0.0;
  return s;
}

// Per resource, whether each series is among the largest fifth by mean usage over its warm-up
// part (which every policy has seen before scoring starts).
std::array<std::vector<bool>, kResourceCount> largestFifth(const trace::Trace& trace,
                                                           const Protocol& p) {
  std::array<std::vector<bool>, kResourceCount> out;
  for (Resource r : kAllResources) {
    std::vector<double> mean(trace.series.size(), NAN);
    for (std::size_t si = 0; si < trace.series.size(); ++si) {
      const auto& s = trace.series[si];
      if (!s.has(r)) continue;
      double sum = 0;
      std::size_t n = 0;
      for (std::size_t t = 0; t < s.trainSteps(p.train_fraction); ++t)
        if (const double u = s.usage[index(r)][t]; !std::isnan(u)) sum += u, ++n;
      if (n) mean[si] = sum / static_cast<double>(n);
    }
    std::vector<double> known;
    for (double m : mean)
      if (!std::isnan(m)) known.push_back(m);
    out[index(r)].assign(trace.series.size(), false);
    if (known.empty()) continue;
    // The top ceil(n/5) series; ties at the threshold are all included.
    const std::size_t top = (known.size() + 4) / 5;
    std::nth_element(known.begin(), known.end() - static_cast<std::ptrdiff_t>(top), known.end());
    const double threshold = *(known.end() - static_cast<std::ptrdiff_t>(top));
    for (std::size_t si = 0; si < trace.series.size(); ++si)
      out[index(r)][si] = !std::isnan(mean[si]) && mean[si] >= threshold;
  }
  return out;
}

// Scored: the evaluation part's steps that an allocation committed `lead` steps before reaches.
std::size_t firstScoredStep(const trace::Series& s, const Protocol& p) {
  return std::max(s.trainSteps(p.train_fraction), p.lead_steps);
}

// The 99th percentile (nearest rank) of a series' scored usage over its mean.
double p99ToMean(const trace::Series& s, Resource r, const Protocol& p) {
  const auto& u = s.usage[index(r)];
  std::vector<double> v;
  for (std::size_t t = firstScoredStep(s, p); t < u.size(); ++t)
    if (!std::isnan(u[t])) v.push_back(u[t]);
  if (v.empty()) return NAN;
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  const auto k = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(v.size()))) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return mean > 0 ? v[k] / mean : NAN;
}

}  // namespace

std::optional<double> interpolateAtViolation(const std::vector<Scores>& frontier, double v,
                                             double Scores::*y) {
  // Along the sweep in knob order: each pair of neighbouring knobs whose violation rates bracket v
  // gives a point. Sorting the points by violation rate instead would pair knobs that are not
  // neighbours when several tie (e.g. every margin above some value at 0 violations) and read the
  // slack of the most wasteful of them. Where a noisy sweep crosses v more than once, the crossing
  // with the least slack is the one the policy can be run at; every y is read at that crossing.
  std::optional<double> best_slack, out;
  const auto consider = [&](const Scores& a, const Scores& b, double w) {
    const double slack = a.slack + w * (b.slack - a.slack);
    if (best_slack && *best_slack <= slack) return;
    best_slack = slack;
    out = a.*y + w * (b.*y - a.*y);
  };
  for (std::size_t i = 0; i < frontier.size(); ++i) {
    const Scores& a = frontier[i];
    if (a.violation_rate == v) consider(a, a, 0);
    if (i + 1 == frontier.size()) break;
    const Scores& b = frontier[i + 1];
    const double lo = std::min(a.violation_rate, b.violation_rate);
    const double hi = std::max(a.violation_rate, b.violation_rate);
    if (lo < v && v < hi) consider(a, b, (v - a.violation_rate) / (b.violation_rate - a.violation_rate));
  }
  return out;
}

std::vector<std::vector<double>> replayAllocations(const predict::PolicyFactory& factory,
                                                   const trace::Series& series,
                                                   const Protocol& protocol, Resource resource) {
  std::array<std::vector<double>, kResourceCount> grids;
  for (Resource r : kAllResources) grids[index(r)] = factory.knob(r).grid;
  std::vector<std::vector<double>> out(series.size(),
                                       std::vector<double>(grids[index(resource)].size(), NAN));
  replay(factory, series, protocol, grids,
         [&](std::size_t t, Resource r, std::span<const double> a, auto, auto) {
           if (r == resource) std::copy(a.begin(), a.end(), out[t].begin());
         });
  return out;
}

Report runBacktest(const trace::Trace& trace, const std::vector<NamedPolicy>& policies,
                   const RunOptions& options) {
  const auto wall_start = std::chrono::steady_clock::now();
  const Protocol& p = options.protocol;
  if (p.lead_steps < 1) throw std::invalid_argument("lead must be at least one step");
  const unsigned threads = options.threads ? options.threads : defaultThreads();

  std::vector<std::array<std::vector<double>, kResourceCount>> grids(policies.size());
  for (std::size_t i = 0; i < policies.size(); ++i)
    for (Resource r : kAllResources) grids[i][index(r)] = policies[i].factory->knob(r).grid;

  // Per series, per policy accumulators, merged in series order afterwards: no locks on the hot
  // path, and the pooled sums (hence every figure) do not depend on thread scheduling.
  std::vector<std::vector<PolicyAccumulator>> acc(trace.series.size());

  const std::size_t n_examples = std::min(options.examples, trace.series.size());
  std::vector<std::array<ExampleSeries, kResourceCount>> examples(n_examples);
  std::vector<std::uint64_t> eval_steps(trace.series.size(), 0);
  std::atomic<std::size_t> done{0};

  parallelFor(trace.series.size(), threads, [&](std::size_t si, unsigned worker) {
    const trace::Series& s = trace.series[si];
    (void)worker;
    const std::size_t warmup = contextFor(s, p).warmup_steps;
    const double step_days = static_cast<double>(s.step_seconds) / 86400.0;
    if (const std::size_t first = firstScoredStep(s, p); s.size() > first)
      eval_steps[si] = s.size() - first;
    const bool keep = si < n_examples;
    if (keep) {
      for (Resource r : kAllResources) {
        if (!s.has(r)) continue;
        auto& ex = examples[si][index(r)];
        ex.id = s.id, ex.resource = r,
        ex.start = s.start + static_cast<std::int64_t>(warmup) * s.step_seconds;
        ex.step_seconds = s.step_seconds;
        ex.usage.assign(s.usage[index(r)].begin() + static_cast<std::ptrdiff_t>(warmup),
                        s.usage[index(r)].end());
      }
    }
    acc[si].resize(policies.size());
    for (std::size_t pi = 0; pi < policies.size(); ++pi) {
      const auto t0 = std::chrono::steady_clock::now();
      PolicyAccumulator& pa = acc[si][pi];
      for (Resource r : kAllResources) pa.knob[index(r)].resize(grids[pi][index(r)].size());
      std::array<std::vector<double>, kResourceCount> prev;
      std::array<std::size_t, kResourceCount> default_index{};
      for (Resource r : kAllResources) {
        prev[index(r)].assign(grids[pi][index(r)].size(), NAN);
        default_index[index(r)] =
            nearestIndex(grids[pi][index(r)], policies[pi].factory->knob(r).default_value);
        if (s.has(r) && s.size() > warmup)
          pa.days[index(r)] += static_cast<double>(s.size() - warmup) * step_days;
        if (keep && s.has(r)) {
          auto& ex = examples[si][index(r)];
          ex.allocation[policies[pi].name].assign(ex.usage.size(), NAN);
          if (policies[pi].factory->givesIntervals()) {
            ex.band_lo[policies[pi].name].assign(ex.usage.size(), NAN);
            ex.band_hi[policies[pi].name].assign(ex.usage.size(), NAN);
          }
        }
      }
      replay(*policies[pi].factory, s, p, grids[pi],
             [&](std::size_t t, Resource r, std::span<const double> alloc,
                 std::span<const double> lo, std::span<const double> hi) {
               const double u = s.usage[index(r)][t];
               auto& accs = pa.knob[index(r)];
               auto& last = prev[index(r)];
               if (t < warmup) {
                 if (!std::isnan(u)) {
                   for (std::size_t k = 0; k < alloc.size(); ++k) {
                     accs[k].warm_steps++;
                     accs[k].warm_violations += u > alloc[k];
                   }
                 }
                 std::copy(alloc.begin(), alloc.end(), last.begin());
                 return;
               }
               for (std::size_t k = 0; k < alloc.size(); ++k) {
                 const double a = alloc[k];
                 if (t > warmup && !std::isnan(last[k]) &&
                     std::abs(a - last[k]) > 0.01 * std::abs(last[k]) && a != last[k]) {
                   accs[k].changes++;
                 }
                 last[k] = a;
                 if (std::isnan(u) || std::isnan(a)) continue;
                 Accumulator& c = accs[k];
                 c.steps++;
                 c.sum_alloc += a;
                 c.sum_usage += u;
                 if (a > u) c.sum_slack += a - u;
                 if (u > a) {
                   c.violations++;
                   c.sum_short += u - a;
                 }
               }
               if (!std::isnan(u)) {
                 for (std::size_t l = 0; l < lo.size(); ++l) {
                   if (std::isnan(lo[l]) || std::isnan(hi[l])) continue;
                   auto& cov = pa.coverage[index(r)][l];
                   cov.steps++;
                   cov.covered += u >= lo[l] && u <= hi[l];
                 }
               }
               if (keep) {
                 auto& ex = examples[si][index(r)];
                 const std::string& name = policies[pi].name;
                 ex.allocation[name][t - warmup] = alloc[default_index[index(r)]];
                 if (!lo.empty() && ex.band_lo.count(name)) {
                   ex.band_lo[name][t - warmup] = lo[2];  // the 90% band
                   ex.band_hi[name][t - warmup] = hi[2];
                 }
               }
             });
      pa.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      pa.steps += s.size();
    }
    if (options.on_progress) options.on_progress(++done, trace.series.size());
  });

  Report report;
  report.series = trace.series.size();
  report.skipped = trace.skipped.size();
  report.warnings = trace.warnings;
  report.step_seconds = trace.step_seconds;
  report.protocol = p;
  report.evaluation_steps = std::accumulate(eval_steps.begin(), eval_steps.end(), std::uint64_t{0});
  const auto largest = largestFifth(trace, p);
  std::array<std::vector<double>, kResourceCount> p99;  // per series, the same for every policy
  if (options.per_series)
    for (Resource r : kAllResources)
      for (const auto& s : trace.series) p99[index(r)].push_back(p99ToMean(s, r, p));
  for (std::size_t pi = 0; pi < policies.size(); ++pi) {
    PolicyAccumulator total, total_largest;
    for (Resource r : kAllResources) {
      total.knob[index(r)].resize(grids[pi][index(r)].size());
      total_largest.knob[index(r)].resize(grids[pi][index(r)].size());
    }
    for (std::size_t si = 0; si < acc.size(); ++si) {
      const auto& pa = acc[si][pi];
      for (Resource r : kAllResources) {
        for (std::size_t k = 0; k < pa.knob[index(r)].size(); ++k) {
          total.knob[index(r)][k].merge(pa.knob[index(r)][k]);
          if (largest[index(r)][si]) total_largest.knob[index(r)][k].merge(pa.knob[index(r)][k]);
        }
        for (std::size_t l = 0; l < kCoverageLevels.size(); ++l) {
          total.coverage[index(r)][l].steps += pa.coverage[index(r)][l].steps;
          total.coverage[index(r)][l].covered += pa.coverage[index(r)][l].covered;
        }
        total.days[index(r)] += pa.days[index(r)];
      }
      total.seconds += pa.seconds;
      total.steps += pa.steps;
    }
    PolicyResult pr;
    pr.name = policies[pi].name;
    pr.thread_seconds = total.seconds;
    pr.series_steps = total.steps;
    for (Resource r : kAllResources) {
      if (!trace.resources[index(r)]) continue;
      const auto& knobs = total.knob[index(r)];
      if (std::none_of(knobs.begin(), knobs.end(), [](const Accumulator& c) { return c.steps > 0; })) {
        // Scores of nothing would read as a perfect policy (slack 0, no violation): left out.
        const std::string why = fmt::format(
            "{}: no step scored for {} (no values in the evaluation parts, or a lead beyond them)",
            name(r), policies[pi].name);
        report.warnings.push_back(why);
        continue;
      }
      ResourceResult rr;
      rr.knob = policies[pi].factory->knob(r);
      const auto& accs = total.knob[index(r)];
      for (std::size_t k = 0; k < accs.size(); ++k) {
        rr.frontier.push_back(scoresOf(accs[k], total_largest.knob[index(r)][k], rr.knob.grid[k],
                                       total.days[index(r)]));
      }
      rr.default_scores = rr.frontier[nearestIndex(rr.knob.grid, rr.knob.default_value)];
      // Calibrated: the least conservative knob whose warm-up violation rate meets the target.
      // Without a scored warm-up step (a lead beyond the warm-up) there is nothing to calibrate
      // on: none, rather than the least conservative knob by default.
      if (std::any_of(accs.begin(), accs.end(), [](const Accumulator& a) { return a.warm_steps > 0; })) {
        std::size_t chosen = accs.size() - 1;
        for (std::size_t k = 0; k < accs.size(); ++k) {
          const auto& a = accs[k];
          if (a.warm_steps && static_cast<double>(a.warm_violations) /
                                      static_cast<double>(a.warm_steps) <=
                                  p.target_violation) {
            chosen = k;
            break;
          }
        }
        rr.calibrated = rr.frontier[chosen];
        if (options.per_series)
          for (std::size_t si = 0; si < acc.size(); ++si) {
            const Accumulator& a = acc[si][pi].knob[index(r)][chosen];
            if (!a.steps) continue;
            const double days = acc[si][pi].days[index(r)];
            rr.per_series.push_back({trace.series[si].id, a.steps, a.violations, a.sum_usage, a.sum_alloc,
                                     a.sum_slack, a.sum_short,
                                     days > 0 ? static_cast<double>(a.changes) / days : 0.0,
                                     p99[index(r)][si]});
          }
      } else {
        report.warnings.push_back(fmt::format(
            "{}: no warm-up step scored for {} (a lead beyond the warm-up): no calibrated knob",
            name(r), policies[pi].name));
      }
      for (double level : kIsoRiskLevels) {
        rr.iso_risk[level] = interpolateAtViolation(rr.frontier, level, &Scores::slack);
        rr.iso_risk_shortfall[level] =
            interpolateAtViolation(rr.frontier, level, &Scores::shortfall);
        rr.iso_risk_largest_violation[level] =
            interpolateAtViolation(rr.frontier, level, &Scores::largest_violation_rate);
      }
      if (policies[pi].factory->givesIntervals()) {
        for (std::size_t l = 0; l < kCoverageLevels.size(); ++l) {
          const auto& c = total.coverage[index(r)][l];
          if (c.steps)
            rr.coverage[kCoverageLevels[l]] =
                static_cast<double>(c.covered) / static_cast<double>(c.steps);
        }
      }
      pr.resources[r] = std::move(rr);
    }
    report.policies.push_back(std::move(pr));
  }
  for (auto& per_resource : examples)
    for (auto& ex : per_resource)
      if (!ex.id.empty()) report.examples.push_back(std::move(ex));
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return report;
}

}  // namespace foresight::sim
