#pragma once
// Policies with known behaviour, for testing the harness.
#include <functional>

#include "foresight/predict/policy.h"

namespace foresight::sim::testing {

// Commits alloc(knob, step the allocation is for); optionally an interval [lo, hi] per level.
class FunctionPolicy final : public predict::Policy {
 public:
  using Alloc = std::function<double(double knob, std::size_t step)>;
  using Interval = std::function<std::pair<double, double>(double level, std::size_t step)>;
  FunctionPolicy(std::size_t lead, Alloc a, Interval i)
      : lead_(lead), alloc_(std::move(a)), interval_(std::move(i)) {}
  void observe(const predict::Observation& o) override { step_ = o.step; }
  void commit(Resource, std::span<const double> knobs, std::span<double> out) override {
    for (std::size_t k = 0; k < knobs.size(); ++k) out[k] = alloc_(knobs[k], step_ + lead_);
  }
  bool interval(Resource, double level, double& lo, double& hi) override {
    if (!interval_) return false;
    std::tie(lo, hi) = interval_(level, step_ + lead_);
    return true;
  }

 private:
  std::size_t lead_, step_ = 0;
  Alloc alloc_;
  Interval interval_;
};

class FunctionFactory final : public predict::PolicyFactory {
 public:
  FunctionFactory(std::vector<double> grid, double def, FunctionPolicy::Alloc a,
                  FunctionPolicy::Interval i = {})
      : grid_(std::move(grid)), default_(def), alloc_(std::move(a)), interval_(std::move(i)) {}
  predict::Knob knob(Resource) const override { return {"test", grid_, default_}; }
  bool givesIntervals() const override { return static_cast<bool>(interval_); }
  std::unique_ptr<predict::Policy> create(const predict::SeriesContext& ctx,
                                          const trace::Series*) const override {
    return std::make_unique<FunctionPolicy>(ctx.lead_steps, alloc_, interval_);
  }

 private:
  std::vector<double> grid_;
  double default_;
  FunctionPolicy::Alloc alloc_;
  FunctionPolicy::Interval interval_;
};

inline trace::Trace oneSeries(std::vector<double> cpu, std::int64_t step = 300) {
  trace::Trace t;
  t.step_seconds = step;
  trace::Series s;
  s.id = "s";
  s.step_seconds = step;
  s.usage[index(Resource::kCpu)] = std::move(cpu);
  t.series.push_back(std::move(s));
  t.resources[index(Resource::kCpu)] = true;
  return t;
}

}  // namespace foresight::sim::testing
