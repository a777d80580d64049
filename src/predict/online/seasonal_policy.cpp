// `seasonal`: SeasonalForecaster as a backtest policy. Knob: the violation cost (decision.h), or
// with option knob=quantile the quantile level.
#include <array>
#include <optional>

#include "foresight/predict/baselines/baselines.h"
#include "foresight/predict/decision.h"
#include "foresight/predict/seasonal.h"

namespace foresight::predict {
namespace {

const std::vector<double> kQuantileGrid = {0.5,  0.6,  0.7,  0.8,   0.85,  0.9, 0.95,
                                           0.97, 0.98, 0.99, 0.995, 0.999, 1.0};
constexpr double kDefaultQuantile = 0.95;
constexpr double kDefaultCost = 128;

class SeasonalPolicy final : public Policy {
 public:
  SeasonalPolicy(const SeriesContext& ctx, bool cost)
      : lead_(ctx.lead_steps), cost_(cost),
        scale_(runningScales()) {
    SeasonalOptions o;
    o.horizon = lead_;
    o.only_horizon = true;  // commit() and interval() forecast at the lead only
    // Look for periods up to a day (the strongest cycle of most services), within bounds that
    // keep the history small at any sampling step.
    const double day = 86400.0 / static_cast<double>(std::max<std::int64_t>(1, ctx.step_seconds));
    o.max_period = static_cast<std::size_t>(std::clamp(day, 16.0, 1440.0));
    o.errors = o.max_period;
    for (Resource r : kAllResources)
      if (ctx.resources[index(r)]) f_[index(r)].emplace(o);
  }
  void observe(const Observation& o) override {
    for (Resource r : kAllResources) {
      if (!f_[index(r)]) continue;
      f_[index(r)]->observe(o.usage[index(r)]);
      scale_[index(r)].add(o.usage[index(r)]);
    }
  }
  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    if (cost_) {
      std::array<double, 16> v{};
      const std::span<double> vs(v.data(), kQuantileGrid.size());
      f_[index(r)]->forecast(lead_, kQuantileGrid, vs);
      if (std::isnan(vs[0])) {  // no history yet
        std::fill(out.begin(), out.end(), 0.0);
        return;
      }
      costOptimalSweep(kQuantileGrid, vs, scale_[index(r)].value(), knobs, IdleFloor::kScaled, out);
      return;
    }
    f_[index(r)]->forecast(lead_, knobs, out);
    for (double& a : out)
      if (std::isnan(a)) a = 0;  // no history yet
  }
  bool interval(Resource r, double level, double& lo, double& hi) override {
    const std::array<double, 2> q = {(1 - level) / 2, (1 + level) / 2};
    std::array<double, 2> v{};
    f_[index(r)]->forecast(lead_, q, v);
    lo = v[0], hi = v[1];
    return !std::isnan(lo);
  }

 private:
  std::size_t lead_;
  bool cost_;
  std::array<RunningScale, kResourceCount> scale_;
  std::array<std::optional<SeasonalForecaster>, kResourceCount> f_;
};

class SeasonalFactory final : public PolicyFactory {
 public:
  explicit SeasonalFactory(std::string knob) : knob_(std::move(knob)), cost_(knob_ == "cost") {}
  Status prepare(const trace::Trace&, const ReplayInfo&) override {
    if (knob_ != "cost" && knob_ != "quantile")
      return fail(ErrorCode::kInvalidArgument, "seasonal.knob='{}': expected cost or quantile", knob_);
    return ok();
  }
  Knob knob(Resource) const override {
    if (cost_) return {"violation_cost", kViolationCostGrid, kDefaultCost};
    return {"quantile", kQuantileGrid, kDefaultQuantile};
  }
  bool givesIntervals() const override { return true; }
  std::unique_ptr<Policy> create(const SeriesContext& ctx, const trace::Series*) const override {
    return std::make_unique<SeasonalPolicy>(ctx, cost_);
  }

 private:
  std::string knob_;
  bool cost_;
};

}  // namespace

std::unique_ptr<PolicyFactory> makeSeasonalFactory(std::string knob) {
  return std::make_unique<SeasonalFactory>(std::move(knob));
}

}  // namespace foresight::predict
