#include <algorithm>
#include <array>
#include <cmath>

#include "foresight/loop/controller.h"

namespace foresight::loop {
namespace {

class StaticController final : public Controller {
 public:
  explicit StaticController(StaticOptions o) : o_(o) {}
  double decide(const Interval& in) override {
    if (seen_ < o_.warmup_intervals) {
      peak_ = std::max(peak_, in.demand);
      if (++seen_ < o_.warmup_intervals) return kUnlimited;
    }
    return peak_ * (1 + o_.margin);
  }

 private:
  StaticOptions o_;
  std::size_t seen_ = 0;
  double peak_ = 0;
};

class ReactiveController final : public Controller {
 public:
  explicit ReactiveController(ReactiveOptions o) : o_(o) {}
  double decide(const Interval& in) override {
    recent_.push_back(in.usage);
    if (recent_.size() > o_.quiet_intervals) recent_.pop_front();
    double limit = in.limit;
    if (std::isinf(limit)) {
      limit = std::max(o_.min_limit, in.usage * (1 + o_.headroom));  // first decision
    } else if (in.pressure) {
      limit = std::max(limit * o_.up_factor, in.usage * (1 + o_.headroom));
      quiet_ = 0;
    } else if (++quiet_ >= o_.quiet_intervals) {
      const double peak = *std::max_element(recent_.begin(), recent_.end());
      limit = std::min(limit, std::max(o_.min_limit, peak * (1 + o_.headroom)));
    }
    return limit;
  }

 private:
  ReactiveOptions o_;
  std::deque<double> recent_;
  std::size_t quiet_ = 0;
};

class ForesightController final : public Controller {
 public:
  explicit ForesightController(ForesightOptions o) : o_(o), forecaster_(o.forecaster) {}
  double decide(const Interval& in) override {
    forecaster_.observe(in.demand);
    double forecast = 0;
    const std::array<double, 1> level = {o_.level};
    for (std::size_t h = 1; h <= std::min(o_.lookahead, o_.forecaster.horizon); ++h) {
      std::array<double, 1> q{};
      forecaster_.forecast(h, level, q);
      if (!std::isnan(q[0])) forecast = std::max(forecast, q[0]);
    }
    double target =
        std::max({forecast * (1 + o_.headroom), o_.min_limit, in.usage * (1 + o_.usage_margin)});
    const double current = in.limit;
    if (std::isinf(current) || target > current) return target;  // up: at once
    if (target > current * (1 - o_.hysteresis)) return current;  // inside the band: no change
    return std::max(target, current * (1 - o_.max_down));        // down: slowly
  }

 private:
  ForesightOptions o_;
  predict::SeasonalForecaster forecaster_;
};

}  // namespace

std::unique_ptr<Controller> makeStaticController(StaticOptions o) {
  return std::make_unique<StaticController>(o);
}
std::unique_ptr<Controller> makeReactiveController(ReactiveOptions o) {
  return std::make_unique<ReactiveController>(o);
}
std::unique_ptr<Controller> makeForesightController(ForesightOptions o) {
  return std::make_unique<ForesightController>(o);
}

}  // namespace foresight::loop
