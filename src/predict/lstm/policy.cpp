// Policy `lstm`: forecast quantiles at the lead time, calibrated twice (split-conformal offsets
// from training on held-back workloads, then an online quantile tracker per workload, resource
// and level, which follows behaviour changes), turned into an allocation by the violation-cost
// rule of decision.h (knob=cost, default) or taken at one quantile level (knob=quantile).
#include <mutex>

#include "foresight/core/log.h"
#include "foresight/predict/lstm/model.h"

namespace foresight::predict::lstm {
namespace {

const std::vector<double> kQuantileGrid = {0.5,  0.6,  0.7,  0.8,   0.85,  0.9,
                                           0.95, 0.97, 0.98, 0.99, 0.995, 0.999};
constexpr double kDefaultQuantile = 0.99;
constexpr double kDefaultCost = 128;
constexpr const char* kDefaultEta = "0.02";

struct Tracker {
  double level = 0;
  double adj = 0;  // online correction in z space, added to the split-conformal offset
  std::vector<double> pending;           // per ring slot: committed pre-floor value
  std::vector<std::size_t> pending_for;  // the step each slot is for (SIZE_MAX: none)
};

class LstmPolicy final : public Policy {
 public:
  LstmPolicy(const LstmModel& m, const SeriesContext& ctx, double eta, bool cost)
      : m_(m), fb_(m, ctx.metadata), st_(m), x_(m.inputs()), eta_(eta), cost_(cost),
        lead_(std::clamp<std::size_t>(ctx.lead_steps, 1, m.horizon)), slots_(lead_ + 1) {
    for (auto& z : z_) z.assign(m.levels.size(), 0.0);
  }

  void observe(const Observation& o) override {
    // Score what was committed for this step first (online calibration, causal).
    for (Resource r : kAllResources) {
      const double u = o.usage[index(r)];
      if (std::isnan(u)) continue;
      for (auto& t : trackers_[index(r)]) {
        const std::size_t slot = o.step % slots_;
        if (t.pending_for[slot] != o.step) continue;
        t.adj += eta_ * (t.level - (u <= t.pending[slot] ? 1.0 : 0.0));
      }
    }
    step_ = o.step;
    fb_.step(o, x_);
    st_.step(x_);
    for (Resource r : kAllResources) st_.quantiles(index(r), lead_, z_[index(r)]);
  }

  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    const double scale = fb_.scale(r);
    if (cost_) {
      std::array<double, 16> v{};
      for (std::size_t k = 0; k < kQuantileGrid.size(); ++k) v[k] = value(r, kQuantileGrid[k]);
      const std::span<const double> vs(v.data(), kQuantileGrid.size());
      for (std::size_t i = 0; i < knobs.size(); ++i) {
        out[i] = costOptimal(kQuantileGrid, vs, scale, knobs[i]).value;
        if (i > 0) out[i] = std::max(out[i], out[i - 1]);
      }
      return;
    }
    for (std::size_t i = 0; i < knobs.size(); ++i) {
      const double v = value(r, knobs[i]);
      // An idle workload that bursts: a floor that grows with the risk aversion.
      const double floor = std::max(0.0, 2 * knobs[i] - 1) * scale;
      out[i] = std::max({v, floor, 0.0});
      // Per-level trackers can cross; allocations must still grow along the (ascending) grid.
      if (i > 0 && knobs[i] >= knobs[i - 1]) out[i] = std::max(out[i], out[i - 1]);
    }
  }

  bool interval(Resource r, double level, double& lo, double& hi) override {
    lo = std::max(0.0, value(r, (1 - level) / 2));
    hi = std::max(0.0, value(r, (1 + level) / 2));
    return true;
  }

 private:
  // The calibrated quantile at `level` for step_ + lead, recorded for the tracker.
  double value(Resource r, double level) {
    Tracker& t = tracker(r, level);
    const double z = interpolate(m_.levels, z_[index(r)], level) +
                     m_.conformalOffset(index(r), lead_, level) + t.adj;
    const double v = fb_.scale(r) * std::expm1(z);
    const std::size_t slot = (step_ + lead_) % slots_;
    t.pending[slot] = v;
    t.pending_for[slot] = step_ + lead_;
    return v;
  }

  Tracker& tracker(Resource r, double level) {
    for (auto& t : trackers_[index(r)])
      if (t.level == level) return t;
    trackers_[index(r)].push_back({level, 0.0, std::vector<double>(slots_, NAN),
                                   std::vector<std::size_t>(slots_, SIZE_MAX)});
    return trackers_[index(r)].back();
  }

  const LstmModel& m_;
  FeatureBuilder fb_;
  CpuStepper st_;
  std::vector<float> x_;
  double eta_;
  bool cost_;
  std::size_t lead_, slots_, step_ = 0;
  std::array<std::vector<double>, kResourceCount> z_;
  std::array<std::vector<Tracker>, kResourceCount> trackers_;
};

// Loads the model from `path` at prepare(), unless it was given in memory.
class LstmFactory final : public PolicyFactory {
 public:
  LstmFactory(std::string path, std::string eta, std::string knob,
              std::shared_ptr<const LstmModel> model = nullptr)
      : path_(std::move(path)), eta_text_(std::move(eta)), knob_text_(std::move(knob)),
        cost_(knob_text_ == "cost"), model_(std::move(model)) {}
  Knob knob(Resource) const override {
    if (cost_) return {"violation_cost", kViolationCostGrid, kDefaultCost};
    return {"quantile", kQuantileGrid, kDefaultQuantile};
  }
  bool givesIntervals() const override { return true; }
  Status prepare(const trace::Trace&) override {
    if (knob_text_ != "cost" && knob_text_ != "quantile")
      return fail(ErrorCode::kInvalidArgument, "lstm.knob='{}': expected cost or quantile", knob_text_);
    char* end = nullptr;
    eta_ = std::strtod(eta_text_.c_str(), &end);
    if (eta_text_.empty() || *end != '\0' || !(eta_ >= 0 && eta_ < 1))
      return fail(ErrorCode::kInvalidArgument, "lstm.eta='{}': expected a number in [0, 1)", eta_text_);
    if (model_) return ok();
    auto m = loadModel(path_);
    if (!m) return tl::unexpected(m.error());
    model_ = std::make_shared<const LstmModel>(std::move(*m));
    return ok();
  }
  std::unique_ptr<Policy> create(const SeriesContext& ctx, const trace::Series*) const override {
    if (!model_) throw std::logic_error("lstm policy: create() before prepare()");
    if (ctx.lead_steps > model_->horizon) {
      static std::once_flag once;
      std::call_once(once, [&] {
        spdlog::warn("lstm: lead {} exceeds the model horizon {}; using horizon {}", ctx.lead_steps,
                     model_->horizon, model_->horizon);
      });
    }
    return std::make_unique<LstmPolicy>(*model_, ctx, eta_, cost_);
  }

 private:
  std::string path_, eta_text_, knob_text_;
  double eta_ = 0;
  bool cost_;
  std::shared_ptr<const LstmModel> model_;
};

}  // namespace

void registerLstm(PolicyRegistry& registry, std::string default_model) {
  registry.add("lstm",
               "global LSTM quantile forecaster, split + online conformal (options: model=FILE, "
               "eta=online calibration step, 0 = off; knob=cost (violation cost, default) or quantile)",
               [default_model](const PolicyOptions& o) -> std::unique_ptr<PolicyFactory> {
                 auto get = [&](const char* k, std::string d) {
                   auto it = o.find(k);
                   return it == o.end() ? d : it->second;
                 };
                 return std::make_unique<LstmFactory>(get("model", default_model), get("eta", kDefaultEta),
                                                      get("knob", "cost"));
               });
}

std::unique_ptr<PolicyFactory> makeLstmPolicy(std::shared_ptr<const LstmModel> model) {
  return std::make_unique<LstmFactory>("", kDefaultEta, "cost", std::move(model));
}

}  // namespace foresight::predict::lstm
