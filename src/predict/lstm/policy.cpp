// Policy `lstm`: forecast quantiles at the lead time, calibrated twice (split-conformal offsets
// from training on held-back workloads, then an online quantile tracker per workload, resource
// and level, which follows behaviour changes), turned into an allocation by the violation-cost
// rule of decision.h (knob=cost, default) or taken at one quantile level (knob=quantile).
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

#include "foresight/core/log.h"
#include "foresight/predict/baselines/baselines.h"
#include "foresight/predict/best_of.h"
#include "foresight/predict/lstm/model.h"
#include "foresight/predict/lstm/stream.h"

namespace foresight::predict::lstm {
namespace {

const std::vector<double> kQuantileGrid = {0.5,  0.6,  0.7,  0.8,   0.85,  0.9,
                                           0.95, 0.97, 0.98, 0.99, 0.995, 0.999};
constexpr double kDefaultQuantile = 0.99;
constexpr double kDefaultCost = 128;

class LstmPolicy final : public Policy {
 public:
  LstmPolicy(const Ensemble& models, const SeriesContext& ctx, double eta, bool cost)
      : cost_(cost), lead_(std::clamp<std::size_t>(ctx.lead_steps, 1, models.front()->horizon)) {
    streams_.reserve(models.size());
    for (const auto& m : models) streams_.emplace_back(*m, ctx.metadata, eta, static_cast<double>(ctx.step_seconds));
  }

  void observe(const Observation& o) override {
    for (auto& s : streams_) s.observe(o);
  }

  // Each member decides as it would alone; the allocation is the mean of theirs.
  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    member_.resize(knobs.size());
    std::fill(out.begin(), out.end(), 0.0);
    for (auto& s : streams_) {
      commitOne(s, r, knobs, member_);
      for (std::size_t i = 0; i < knobs.size(); ++i) out[i] += member_[i] / static_cast<double>(streams_.size());
    }
  }

  bool interval(Resource r, double level, double& lo, double& hi) override {
    lo = hi = 0;
    for (auto& s : streams_) {
      lo += std::max(0.0, s.quantile(r, lead_, (1 - level) / 2)) / static_cast<double>(streams_.size());
      hi += std::max(0.0, s.quantile(r, lead_, (1 + level) / 2)) / static_cast<double>(streams_.size());
    }
    return true;
  }

 private:
  void commitOne(LstmStream& s, Resource r, std::span<const double> knobs, std::span<double> out) {
    if (cost_) {
      std::array<double, 16> v{};
      for (std::size_t k = 0; k < kQuantileGrid.size(); ++k) v[k] = s.quantile(r, lead_, kQuantileGrid[k]);
      costOptimalSweep(kQuantileGrid, std::span(v.data(), kQuantileGrid.size()), s.scale(r), knobs,
                       IdleFloor::kNone, out);
      return;
    }
    for (std::size_t i = 0; i < knobs.size(); ++i) {
      out[i] = std::max(s.quantile(r, lead_, knobs[i]), 0.0);  // no idle floor: decision.h
      // Per-level trackers can cross; allocations must still grow along the (ascending) grid.
      if (i > 0 && knobs[i] >= knobs[i - 1]) out[i] = std::max(out[i], out[i - 1]);
    }
  }

  std::vector<LstmStream> streams_;
  bool cost_;
  std::size_t lead_;
  std::vector<double> member_;
};

// `lstm` and `auto` both prepare a model when run together: say the same thing once per process.
void warnOnce(const std::string& warning) {
  static std::mutex mutex;
  static std::set<std::string> said;
  const std::lock_guard lock(mutex);
  if (said.insert(warning).second) spdlog::warn("{}", warning);
}

// Loads the models named by `models` (the option's text) at prepare(), unless they were given in
// memory.
class LstmFactory final : public PolicyFactory {
 public:
  LstmFactory(std::string models, std::string eta, std::string knob, Ensemble loaded = {})
      : models_text_(std::move(models)), eta_text_(std::move(eta)), knob_text_(std::move(knob)),
        cost_(knob_text_ == "cost"), models_(std::move(loaded)) {}
  Knob knob(Resource) const override {
    if (cost_) return {"violation_cost", kViolationCostGrid, kDefaultCost};
    return {"quantile", kQuantileGrid, kDefaultQuantile};
  }
  bool givesIntervals() const override { return true; }
  Status prepare(const trace::Trace& trace, const ReplayInfo& replay) override {
    if (knob_text_ != "cost" && knob_text_ != "quantile")
      return fail(ErrorCode::kInvalidArgument, "lstm.knob='{}': expected cost or quantile", knob_text_);
    char* end = nullptr;
    eta_ = std::strtod(eta_text_.c_str(), &end);
    if (eta_text_.empty() || *end != '\0' || !(eta_ >= 0 && eta_ < 1))
      return fail(ErrorCode::kInvalidArgument, "lstm.eta='{}': expected a number in [0, 1)", eta_text_);
    if (models_.empty()) {
      auto files = modelList(models_text_);
      if (!files) return fail(ErrorCode::kInvalidArgument, "lstm.model={}", files.error().message);
      auto e = loadEnsemble(*files);
      if (!e) return tl::unexpected(e.error());
      models_ = std::move(*e);
      names_.assign(files->begin(), files->end());
    }
    std::vector<Resource> used;
    for (Resource r : kAllResources)
      if (trace.resources[index(r)]) used.push_back(r);
    for (std::size_t i = 0; i < models_.size(); ++i) {
      const std::string file = i < names_.size() ? names_[i] : std::string();
      if (auto w = stepMismatch(*models_[i], trace.step_seconds); !w.empty()) warnOnce(w);
      if (auto w = scoresTrainedSteps(*models_[i], file, replay.warmup_fraction); !w.empty()) warnOnce(w);
      if (auto w = untrainedResources(*models_[i], file, used); !w.empty()) warnOnce(w);
    }
    return ok();
  }
  std::unique_ptr<Policy> create(const SeriesContext& ctx, const trace::Series*) const override {
    if (models_.empty()) throw std::logic_error("lstm policy: create() before prepare()");
    const std::size_t horizon = models_.front()->horizon;
    if (ctx.lead_steps > horizon) {
      static std::once_flag once;
      std::call_once(once, [&] {
        spdlog::warn("lstm: lead {} exceeds the model horizon {}; using horizon {}", ctx.lead_steps, horizon,
                     horizon);
      });
    }
    return std::make_unique<LstmPolicy>(models_, ctx, eta_, cost_);
  }

 private:
  std::string models_text_, eta_text_, knob_text_;
  double eta_ = 0;
  bool cost_;
  Ensemble models_;
  std::vector<std::string> names_;  // the files models_ came from; empty when given in memory
};

}  // namespace

void registerLstm(PolicyRegistry& registry, std::vector<std::filesystem::path> default_models) {
  std::string defaults;
  for (const auto& f : default_models) defaults += (defaults.empty() ? "" : ",") + f.string();
  auto lstm = [defaults](const PolicyOptions& o) -> std::unique_ptr<PolicyFactory> {
    auto get = [&](const char* k, std::string d) {
      auto it = o.find(k);
      return it == o.end() ? d : it->second;
    };
    return std::make_unique<LstmFactory>(get("model", defaults), get("eta", fmt::format("{}", kDefaultEta)),
                                         get("knob", "cost"));
  };
  registry.add("lstm",
               "global LSTM quantile forecaster, split + online conformal (options: model=FILE[,FILE...]: "
               "several are averaged, default the two shipped models; "
               "eta=online calibration step, 0 = off; knob=cost (violation cost, default) or quantile)",
               lstm, {"model", "eta", "knob"});
  registry.add("auto",
               "per series and resource, the better of lstm and seasonal by recent quantile loss, as "
               "foresight run's default forecaster (options: model=FILE[,FILE...], eta=, as lstm's; lowest_level=L: "
               "score the levels from L of 0.1, 0.5, 0.9, 0.95, 0.99; default 0.9; margin=M: seasonal takes "
               "over only below (1 - M) times the lstm's loss; default 0.25)",
               [lstm](const PolicyOptions& o) -> std::unique_ptr<PolicyFactory> {
                 PolicyOptions cost = o;
                 cost["knob"] = "cost";  // both candidates share the violation-cost knob
                 std::vector<std::unique_ptr<PolicyFactory>> c;
                 c.push_back(lstm(cost));
                 c.push_back(makeSeasonalFactory("cost"));
                 // Not a number: NaN, refused at prepare().
                 auto number = [&](const char* key, double fallback) {
                   auto it = o.find(key);
                   if (it == o.end()) return fallback;
                   char* end = nullptr;
                   const double v = std::strtod(it->second.c_str(), &end);
                   return it->second.empty() || *end != '\0' ? NAN : v;
                 };
                 return makeBestOfFactory(std::move(c), 60, number("lowest_level", kSelectionLowestLevel),
                                          number("margin", kSelectionMargin));
               },
               {"model", "eta", "lowest_level", "margin"});
}

std::unique_ptr<PolicyFactory> makeLstmPolicy(Ensemble models) {
  return std::make_unique<LstmFactory>("", fmt::format("{}", kDefaultEta), "cost", std::move(models));
}

}  // namespace foresight::predict::lstm
