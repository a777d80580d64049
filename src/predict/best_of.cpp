#include "foresight/predict/best_of.h"

#include <algorithm>
#include <cmath>

namespace foresight::predict {

RecentLoss::RecentLoss(std::size_t candidates, double half_life, std::size_t lead, double lowest_level,
                       double margin)
    : decay_(std::exp2(-1.0 / half_life)),
      margin_(margin),
      lead_(std::max<std::size_t>(lead, 1)),
      first_level_(static_cast<std::size_t>(
          std::lower_bound(kSelectionLevels.begin(), kSelectionLevels.end(), lowest_level) - kSelectionLevels.begin())) {
  // Above the last level nothing would be scored: score the last.
  first_level_ = std::min(first_level_, kSelectionLevels.size() - 1);
  for (auto& s : state_) s.resize(candidates);
}

void RecentLoss::observe(Resource r, double usage) {
  for (Score& sc : state_[index(r)]) {
    if (sc.pending.size() < lead_) continue;  // nothing was forecast for this observation
    const auto q = sc.pending.front();
    sc.pending.pop_front();
    if (!q || std::isnan(usage)) continue;
    double loss = 0;
    for (std::size_t k = first_level_; k < kSelectionLevels.size(); ++k) {
      const double d = usage - (*q)[k];
      loss += d >= 0 ? kSelectionLevels[k] * d : (kSelectionLevels[k] - 1) * d;
    }
    sc.loss = sc.scored ? decay_ * sc.loss + (1 - decay_) * loss : loss;
    sc.scored = true;
  }
}

void RecentLoss::forecast(Resource r, std::size_t i, const std::optional<SelectionQuantiles>& q) {
  state_[index(r)][i].pending.push_back(q);
}

std::size_t RecentLoss::best(Resource r) const {
  const auto& s = state_[index(r)];
  std::size_t best = 0;
  double best_loss = (1 - margin_) * s[0].loss;
  for (std::size_t i = 1; i < s.size(); ++i)
    if (s[i].scored && (!s[best].scored || s[i].loss < best_loss)) {
      best = i;
      best_loss = s[i].loss;
    }
  return best;
}

namespace {

// kSelectionLevels from central intervals: 0.8 -> (0.1, 0.9), 0 -> 0.5, 0.9 -> 0.95, 0.98 -> 0.99.
std::optional<SelectionQuantiles> selectionQuantiles(Policy& p, Resource r) {
  SelectionQuantiles q{};
  double lo = 0;
  if (!p.interval(r, 0.8, q[0], q[2]) || !p.interval(r, 0.0, lo, q[1]) ||
      !p.interval(r, 0.9, lo, q[3]) || !p.interval(r, 0.98, lo, q[4]))
    return std::nullopt;
  for (double v : q)
    if (!std::isfinite(v)) return std::nullopt;
  return q;
}

class BestOfPolicy final : public Policy {
 public:
  BestOfPolicy(std::vector<std::unique_ptr<Policy>> c, const SeriesContext& ctx, double half_life, double lowest_level,
               double margin)
      : c_(std::move(c)), resources_(ctx.resources), loss_(c_.size(), half_life, ctx.lead_steps, lowest_level, margin) {}

  void observe(const Observation& o) override {
    for (Resource r : kAllResources)
      if (resources_[index(r)]) loss_.observe(r, o.usage[index(r)]);
    for (auto& c : c_) c->observe(o);
    for (Resource r : kAllResources)
      if (resources_[index(r)])
        for (std::size_t i = 0; i < c_.size(); ++i) loss_.forecast(r, i, selectionQuantiles(*c_[i], r));
  }
  // Every candidate commits and gives its intervals every step, the others into scratch: each
  // one's online state (the lstm's calibration of the levels it commits at) keeps learning while
  // another is chosen.
  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    const std::size_t best = loss_.best(r);
    scratch_.resize(knobs.size());
    for (std::size_t i = 0; i < c_.size(); ++i)
      c_[i]->commit(r, knobs, i == best ? out : std::span<double>(scratch_));
  }
  bool interval(Resource r, double level, double& lo, double& hi) override {
    const std::size_t best = loss_.best(r);
    double a = 0, b = 0;
    for (std::size_t i = 0; i < c_.size(); ++i)
      if (i != best) (void)c_[i]->interval(r, level, a, b);
    return c_[best]->interval(r, level, lo, hi);
  }

 private:
  std::vector<std::unique_ptr<Policy>> c_;
  std::array<bool, kResourceCount> resources_;
  RecentLoss loss_;
  std::vector<double> scratch_;
};

class BestOfFactory final : public PolicyFactory {
 public:
  BestOfFactory(std::vector<std::unique_ptr<PolicyFactory>> c, double half_life, double lowest_level, double margin)
      : c_(std::move(c)), half_life_(half_life), lowest_level_(lowest_level), margin_(margin) {}
  Knob knob(Resource r) const override { return c_.front()->knob(r); }
  bool givesIntervals() const override { return true; }
  Status prepare(const trace::Trace& trace, const ReplayInfo& replay) override {
    if (c_.empty()) return fail(ErrorCode::kInvalidArgument, "best-of policy: no candidates");
    if (!(lowest_level_ > 0 && lowest_level_ < 1))
      return fail(ErrorCode::kInvalidArgument, "best-of policy: lowest_level must be a number in (0, 1)");
    if (!(margin_ >= 0 && margin_ < 1))
      return fail(ErrorCode::kInvalidArgument, "best-of policy: margin must be a number in [0, 1)");
    for (const auto& c : c_) {
      if (!c->givesIntervals())
        return fail(ErrorCode::kInvalidArgument, "best-of policy: a candidate gives no intervals to score");
      for (Resource r : kAllResources) {
        const Knob a = c_.front()->knob(r), b = c->knob(r);
        if (a.name != b.name || a.grid != b.grid)
          return fail(ErrorCode::kInvalidArgument,
                      "best-of policy: candidates' knobs differ for {} ({} and {})", name(r), a.name, b.name);
      }
      if (auto s = c->prepare(trace, replay); !s) return s;
    }
    return ok();
  }
  std::unique_ptr<Policy> create(const SeriesContext& ctx, const trace::Series* future) const override {
    std::vector<std::unique_ptr<Policy>> p;
    for (const auto& c : c_) p.push_back(c->create(ctx, future));
    return std::make_unique<BestOfPolicy>(std::move(p), ctx, half_life_, lowest_level_, margin_);
  }

 private:
  std::vector<std::unique_ptr<PolicyFactory>> c_;
  double half_life_, lowest_level_, margin_;
};

}  // namespace

std::unique_ptr<PolicyFactory> makeBestOfFactory(std::vector<std::unique_ptr<PolicyFactory>> candidates,
                                                 double half_life, double lowest_level, double margin) {
  return std::make_unique<BestOfFactory>(std::move(candidates), half_life, lowest_level, margin);
}

}  // namespace foresight::predict
