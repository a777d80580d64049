#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

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
  explicit ForesightController(ForesightOptions o)
      : o_(o), forecaster_(o.forecaster()), planner_(configFor(o)),
        levels_(allocate::plannerLevels(configFor(o), std::array{o.resource})) {}

  double decide(const Interval& in) override {
    std::array<double, kResourceCount> demand;
    demand.fill(NAN);
    demand[index(o_.resource)] = in.demand;
    ++step_;
    const auto now = static_cast<std::int64_t>(static_cast<double>(step_) * o_.interval_seconds);
    forecaster_->observe(now, demand);
    predict::Forecast f;
    f.levels = levels_;
    if (!forecaster_->forecast(o_.resource, levels_, o_.lookahead, f.values[index(o_.resource)]))
      return in.limit;  // no history yet
    allocate::PlanInput input;
    input.forecast = &f;
    if (!std::isinf(in.limit)) input.current[o_.resource] = in.limit;
    input.usage[o_.resource] = in.usage;
    if (o_.resource == Resource::kMemory)
      if (auto kill = allocate::oomKillFromDemand(now, in.usage, in.demand)) oom_ = kill;
    input.oom = oom_;
    input.now = now;
    input.last_change[index(o_.resource)] = last_change_;
    const allocate::Plan plan = planner_.plan(input);
    for (const auto& d : plan.decisions) {
      if (d.resource != o_.resource || !d.target) continue;
      if (d.change) last_change_ = input.now;
      return *d.target;
    }
    return in.limit;
  }

 private:
  static allocate::PlannerConfig configFor(const ForesightOptions& o) {
    allocate::PlannerConfig c;
    c[o.resource] = o.policy;
    return c;
  }

  ForesightOptions o_;
  std::unique_ptr<WorkloadForecaster> forecaster_;
  allocate::Planner planner_;
  std::vector<double> levels_;
  std::size_t step_ = 0;
  std::optional<std::int64_t> last_change_;
  std::optional<allocate::OomKill> oom_;
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
