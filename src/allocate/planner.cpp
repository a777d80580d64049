#include "foresight/allocate/planner.h"

#include <algorithm>
#include <cmath>

namespace foresight::allocate {

std::optional<OomKill> oomKillFromDemand(std::int64_t now, double usage, double demand) {
  if (std::isfinite(demand) && !(demand <= usage)) return OomKill{now, demand};
  return std::nullopt;
}
namespace {

std::string show(Resource r, double v) {
  if (std::isnan(v)) return "n/a";
  if (r == Resource::kCpu) return fmt::format("{:.3f} cores", v);
  if (r == Resource::kMemory) return formatBytes(v);
  return formatBytes(v) + "/s";
}

std::string show(Resource r, const std::optional<double>& v) {
  return v ? show(r, *v) : std::string("unlimited");
}

}  // namespace

std::string Plan::reason() const {
  std::string out;
  for (const auto& d : decisions) {
    if (!d.change) continue;
    if (!out.empty()) out += "; ";
    out += d.reason;
  }
  return out.empty() ? "no change" : out;
}

Plan Planner::plan(const PlanInput& in) const {
  Plan plan;
  plan.time = in.now;
  if (in.forecast) plan.workload = in.forecast->workload;
  for (Resource r : kAllResources) {
    const ResourcePolicy& p = config_[r];
    Decision d;
    d.resource = r;
    d.current = in.current[r];
    d.target = d.current;
    const std::string res(name(r));

    const std::size_t horizon = in.forecast ? in.forecast->values[index(r)].size() : 0;
    if (horizon == 0) {
      // Nothing to plan from: only report, never touch.
      if (r == Resource::kCpu || r == Resource::kMemory || d.current) {
        d.rule = "no-forecast";
        d.reason = fmt::format("{}: no forecast; keep {}", res, show(r, d.current));
        plan.decisions.push_back(std::move(d));
      }
      continue;
    }
    const std::size_t steps =
        config_.horizon_steps == 0 ? horizon : std::min(horizon, config_.horizon_steps);
    auto horizonMax = [&](double level) {
      double m = -std::numeric_limits<double>::infinity();
      for (std::size_t h = 1; h <= steps; ++h) m = std::max(m, in.forecast->quantile(r, h, level));
      return m;
    };
    const double q = horizonMax(p.quantile);
    d.forecast = q;
    d.lower = horizonMax(p.lower_quantile);
    d.upper = horizonMax(p.upper_quantile);
    plan.lower[r] = d.lower;
    plan.upper[r] = d.upper;
    double desired = q * (1.0 + p.headroom);
    std::string rule = "forecast";
    const double max = in.ceiling[r] ? std::min(p.max, *in.ceiling[r]) : p.max;
    const double min = in.floor[r] ? std::min(std::max(p.min, *in.floor[r]), max) : p.min;
    if (desired < min) desired = min, rule = "min-bound";
    if (desired > max) desired = max, rule = "max-bound";

    // The memory floors: usage (beats max: the kernel would reclaim or OOM) and a recent OOM
    // kill's demand (capped at max, which the operator set knowing the workload).
    double floor = 0;
    std::string floor_rule;
    if (r == Resource::kMemory && in.usage[r]) {
      floor = *in.usage[r] * (1.0 + p.usage_margin) + p.usage_margin_abs;
      floor_rule = "usage-floor";
    }
    const bool oom_held = r == Resource::kMemory && in.oom && in.now - in.oom->time < p.oom_hold_seconds;
    if (oom_held && std::min(in.oom->demand, max) > floor) {
      floor = std::min(in.oom->demand, max);
      floor_rule = "oom-floor";
    }
    // What the backends can set: a page of memory, a microsecond of quota per 100 ms.
    const double resolution = r == Resource::kMemory ? 4096.0 : r == Resource::kCpu ? 1e-5 : 1.0;
    const auto& last = in.last_change[index(r)];  // the stall's interval and the cool-down
    // A limit the workload stalls at is too tight, whatever the forecast says: a workload that
    // thrashes its page cache under a limit shows almost no working set (its pages are evicted
    // before they are activated), and the forecast of it would shrink the limit further. The raise
    // is Senpai's back-off (oomd): ((share / threshold) / 20)^2 of the limit, at most doubling it;
    // one within the hysteresis band would be a write a round for little, so that only holds.
    const bool stalled = r == Resource::kMemory && in.stall && d.current &&
                         std::fabs(*d.current - in.stall->limit) < resolution &&
                         !(last && *last > in.stall->since) && in.stall->share > p.pressure_threshold;
    double backoff = 0;
    if (stalled) {
      constexpr double kSenpaiCoeffBackoff = 20, kSenpaiMaxBackoff = 1;
      const double excess = in.stall->share / p.pressure_threshold / kSenpaiCoeffBackoff;
      backoff = std::min(kSenpaiMaxBackoff, excess * excess);
      if (backoff <= p.hysteresis) backoff = 0;
      const double at = std::min(*d.current * (1.0 + backoff), max);
      if (at > floor) floor = at, floor_rule = "pressure";
    }
    const bool has_floor = !floor_rule.empty();
    if (has_floor && desired < floor) desired = floor, rule = floor_rule;
    d.desired = desired;

    double target = desired;
    if (d.current) {
      const double cur = *d.current;
      const bool below_floor = has_floor && cur < floor;
      // A bound the operator moved past the current value (max lowered, min raised) is not held
      // off by the dead band or a cool-down; the step limits still pace the way in. A floor above
      // max (usage beats max) moves that bound to where the floor's raise put the limit: else the
      // limit would follow every wobble of usage, a write each round.
      const double ceiling = has_floor ? std::max(max, floor * (1.0 + p.hysteresis)) : max;
      const bool hold = !below_floor && cur <= ceiling && cur >= min;
      const bool up = desired > cur;
      const std::int64_t cooldown = up ? p.cooldown_up_seconds : p.cooldown_down_seconds;
      if (hold && std::fabs(desired - cur) <= p.hysteresis * cur) {
        // Held at a limit it stalls at: say so, not merely that the change was small.
        target = cur, rule = floor_rule == "pressure" && desired == floor ? floor_rule : "hysteresis";
      } else if (hold && last && in.now - *last < cooldown) {
        target = cur, rule = "cooldown";
      } else if (up && desired > cur * (1.0 + p.max_step_up)) {
        target = cur * (1.0 + p.max_step_up), rule = "max-step-up";
      } else if (!up && desired < cur * (1.0 - p.max_step_down)) {
        target = cur * (1.0 - p.max_step_down), rule = "max-step-down";
      }
      // The safety rails beat every limit on change. When the usage floor forces a raise, the
      // raise clears it by the hysteresis band, so that a slowly growing usage does not cause a
      // write at every sample.
      if (has_floor && target < floor) target = floor, rule = floor_rule;
      if (below_floor && rule == "usage-floor") target = std::max(target, floor * (1.0 + p.hysteresis));
    } else {
      rule = rule == "forecast" ? "initial" : rule;
      // A first limit the usage floor sets clears it by the band, as a raise does: set at the
      // floor, the next sample's slightly higher usage raised it again (every `make run` until
      // 2026-12-06: a second write 6-23 s after the first).
      if (rule == "usage-floor") target = floor * (1.0 + p.hysteresis);
    }
    // The floors beat the policy's max, not the ceiling: past it the backend refuses the change
    // (a balloon above a guest's maximum memory), round after round.
    if (in.ceiling[r] && target > *in.ceiling[r]) target = *in.ceiling[r], rule = "max-bound";
    if (const auto& unit = in.units[r]; unit && *unit > 0) {
      const auto whole = [u = *unit](double v) { return std::ceil(v / u - 1e-9) * u; };
      const double rounded = whole(target);
      // A planned step down that rounds back to the current value would be planned, applied as
      // nothing and audited every round, and would never come down: it is one unit instead.
      const bool lost_step = d.current && target < *d.current && rounded >= *d.current && whole(desired) < *d.current;
      target = lost_step ? *d.current - *unit : rounded;
    }
    d.target = target;
    // Within the resolution a target is the current value: else the change is written, rounded
    // back to it, and audited.
    d.change = !d.current || std::fabs(*d.current - target) >= resolution;
    d.rule = rule;
    d.reason = fmt::format("{}: forecast p{:g} max over {} step{} = {}, current {}, desired {}, "
                           "rule {} -> {}",
                           res, p.quantile * 100, steps, steps == 1 ? "" : "s", show(r, q),
                           show(r, d.current),
                           show(r, desired), rule,
                           d.change ? show(r, target) : std::string("keep"));
    if (has_floor && in.usage[r])
      d.reason += fmt::format(" (usage {}, floor {})", show(r, *in.usage[r]), show(r, floor));
    if (oom_held)
      d.reason += fmt::format(" (OOM kill {} s ago: demand {}, held for {} s)", in.now - in.oom->time,
                              show(r, in.oom->demand), p.oom_hold_seconds);
    if (stalled)
      d.reason += fmt::format(" (stalled on memory {:.2f}% of the time at this limit, above {:.2f}%: {})",
                              in.stall->share * 100, p.pressure_threshold * 100,
                              backoff > 0 ? fmt::format("raise it by {:.0f}%", backoff * 100) : std::string("hold it"));
    if (d.change) plan.target[r] = target;
    plan.decisions.push_back(std::move(d));
  }
  return plan;
}

std::vector<double> plannerLevels(const PlannerConfig& config, std::span<const Resource> resources) {
  std::vector<double> levels;
  for (Resource r : resources) {
    const auto& p = config[r];
    levels.insert(levels.end(), {p.lower_quantile, p.quantile, p.upper_quantile});
  }
  std::sort(levels.begin(), levels.end());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  return levels;
}

}  // namespace foresight::allocate
