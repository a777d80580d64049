// `seasonal`: SeasonalForecaster as a backtest policy; the knob is the quantile level.
#include <array>
#include <optional>

#include "foresight/predict/baselines/baselines.h"
#include "foresight/predict/seasonal.h"

namespace foresight::predict {
namespace {

const std::vector<double> kQuantileGrid = {0.5,  0.6,  0.7,  0.8,   0.85,  0.9, 0.95,
                                           0.97, 0.98, 0.99, 0.995, 0.999, 1.0};
constexpr double kDefaultQuantile = 0.95;

class SeasonalPolicy final : public Policy {
 public:
  explicit SeasonalPolicy(const SeriesContext& ctx) : lead_(ctx.lead_steps) {
    SeasonalOptions o;
    o.horizon = lead_;
    // Look for periods up to a day (the strongest cycle of most services), within bounds that
    // keep the history small at any sampling step.
    const double day = 86400.0 / static_cast<double>(std::max<std::int64_t>(1, ctx.step_seconds));
    o.max_period = static_cast<std::size_t>(std::clamp(day, 16.0, 1440.0));
    o.errors = o.max_period;
    for (Resource r : kAllResources)
      if (ctx.resources[index(r)]) f_[index(r)].emplace(o);
  }
  void observe(const Observation& o) override {
    for (Resource r : kAllResources)
      if (f_[index(r)]) f_[index(r)]->observe(o.usage[index(r)]);
  }
  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
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
  std::array<std::optional<SeasonalForecaster>, kResourceCount> f_;
};

class SeasonalFactory final : public PolicyFactory {
 public:
  Knob knob(Resource) const override { return {"quantile", kQuantileGrid, kDefaultQuantile}; }
  bool givesIntervals() const override { return true; }
  std::unique_ptr<Policy> create(const SeriesContext& ctx, const trace::Series*) const override {
    return std::make_unique<SeasonalPolicy>(ctx);
  }
};

}  // namespace

std::unique_ptr<PolicyFactory> makeSeasonalFactory() { return std::make_unique<SeasonalFactory>(); }

}  // namespace foresight::predict
