// `reactive` and `static`: the margin-over-recent-peak policies of threshold autoscalers.
#include <deque>

#include "common.h"
#include "foresight/predict/baselines/baselines.h"

namespace foresight::predict {
namespace {

constexpr double kWindowSeconds = 3600;  // EVALUATION.md: max over the last hour
constexpr double kDefaultMargin = 0.15;  // EVALUATION.md: reactive default m

// Sliding-window maximum in O(1) amortised per step (monotone deque of step, value).
class WindowMax {
 public:
  explicit WindowMax(std::size_t width) : width_(width) {}
  void add(std::size_t step, double v) {
    while (!q_.empty() && q_.front().first + width_ <= step) q_.pop_front();
    if (std::isnan(v)) return;
    while (!q_.empty() && q_.back().second <= v) q_.pop_back();
    q_.emplace_back(step, v);
  }
  double value() const { return q_.empty() ? 0.0 : q_.front().second; }

 private:
  std::size_t width_;
  std::deque<std::pair<std::size_t, double>> q_;
};

class ReactivePolicy final : public Policy {
 public:
  explicit ReactivePolicy(const SeriesContext& ctx) {
    const auto width = static_cast<std::size_t>(
        std::max<double>(1, std::ceil(kWindowSeconds / static_cast<double>(ctx.step_seconds))));
    for (auto& w : window_) w.emplace(width);
  }
  void observe(const Observation& o) override {
    for (Resource r : kAllResources) {
      window_[index(r)]->add(o.step, o.usage[index(r)]);
      mean_[index(r)].add(o.usage[index(r)]);
    }
  }
  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    for (std::size_t i = 0; i < knobs.size(); ++i) {
      out[i] = withMarginAndFloor(window_[index(r)]->value(), knobs[i], mean_[index(r)].value());
    }
  }

 private:
  std::array<std::optional<WindowMax>, kResourceCount> window_;
  std::array<RunningMean, kResourceCount> mean_;
};

class StaticPolicy final : public Policy {
 public:
  explicit StaticPolicy(const SeriesContext& ctx) : warmup_(ctx.warmup_steps) {}
  void observe(const Observation& o) override {
    // Frozen after the warm-up part: a static allocation sized once from history.
    if (o.step >= warmup_) return;
    for (Resource r : kAllResources) {
      double v = o.usage[index(r)];
      if (std::isnan(v)) continue;
      peak_[index(r)] = std::max(peak_[index(r)], v);
      mean_[index(r)].add(v);
    }
  }
  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    for (std::size_t i = 0; i < knobs.size(); ++i) {
      out[i] = withMarginAndFloor(peak_[index(r)], knobs[i], mean_[index(r)].value());
    }
  }

 private:
  std::size_t warmup_;
  std::array<double, kResourceCount> peak_{};
  std::array<RunningMean, kResourceCount> mean_;
};

class OraclePolicy final : public Policy {
 public:
  OraclePolicy(const SeriesContext& ctx, const trace::Series& future)
      : lead_(ctx.lead_steps), series_(future) {}
  void observe(const Observation& o) override { step_ = o.step; }
  void commit(Resource r, std::span<const double>, std::span<double> out) override {
    const auto& u = series_.usage[index(r)];
    const std::size_t t = step_ + lead_;
    for (double& a : out) a = t < u.size() ? u[t] : NAN;
  }

 private:
  std::size_t lead_, step_ = 0;
  const trace::Series& series_;
};

template <typename P>
class MarginFactory final : public PolicyFactory {
 public:
  Knob knob(Resource) const override { return {"margin", kMarginGrid, kDefaultMargin}; }
  std::unique_ptr<Policy> create(const SeriesContext& ctx, const trace::Series*) const override {
    return std::make_unique<P>(ctx);
  }
};

class OracleFactory final : public PolicyFactory {
 public:
  Knob knob(Resource) const override { return {"none", {0.0}, 0.0}; }
  bool seesFuture() const override { return true; }
  std::unique_ptr<Policy> create(const SeriesContext& ctx,
                                 const trace::Series* future) const override {
    return std::make_unique<OraclePolicy>(ctx, *future);
  }
};

}  // namespace

std::unique_ptr<PolicyFactory> makeReactiveFactory() {
  return std::make_unique<MarginFactory<ReactivePolicy>>();
}
std::unique_ptr<PolicyFactory> makeStaticFactory() {
  return std::make_unique<MarginFactory<StaticPolicy>>();
}
std::unique_ptr<PolicyFactory> makeOracleFactory() { return std::make_unique<OracleFactory>(); }

void registerBaselines(PolicyRegistry& registry) {
  registry.add("vpa", "Kubernetes VPA recommender (decaying histograms, 1.15 x P90)",
               [](const PolicyOptions&) { return makeVpaFactory(); });
  registry.add("autopilot", "Google Autopilot moving window (load-adjusted P_j, decayed max)",
               [](const PolicyOptions&) { return makeAutopilotFactory(); });
  registry.add("reactive", "max over the last hour x (1 + m)",
               [](const PolicyOptions&) { return makeReactiveFactory(); });
  registry.add("static", "peak of the warm-up part x (1 + m)",
               [](const PolicyOptions&) { return makeStaticFactory(); });
  registry.add("seasonal", "streaming seasonal median + conformal error quantiles, no training (option: knob=cost or quantile)",
               [](const PolicyOptions& o) {
                 auto it = o.find("knob");
                 return makeSeasonalFactory(it == o.end() ? "cost" : it->second);
               },
               {"knob"});
  registry.add("oracle", "a = u (reference; sees the future)",
               [](const PolicyOptions&) { return makeOracleFactory(); });
}

}  // namespace foresight::predict
