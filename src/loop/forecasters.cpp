#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>

#include "foresight/core/log.h"
#include "foresight/loop/forecaster.h"
#include "foresight/predict/best_of.h"
#include "foresight/predict/lstm/stream.h"

namespace foresight::loop {
namespace {

class Seasonal final : public WorkloadForecaster {
 public:
  explicit Seasonal(const predict::SeasonalOptions& o) {
    for (auto& f : f_) f.emplace(o);
  }
  void observe(std::int64_t, const std::array<double, kResourceCount>& usage) override {
    for (Resource r : kAllResources) f_[index(r)]->observe(usage[index(r)]);
  }
  bool forecast(Resource r, std::span<const double> levels, std::size_t lookahead,
                std::vector<std::vector<double>>& out) override {
    out.assign(lookahead, std::vector<double>(levels.size()));
    for (std::size_t h = 1; h <= lookahead; ++h) {
      f_[index(r)]->forecast(h, levels, out[h - 1]);
      if (std::isnan(out[h - 1][0])) return false;
    }
    return true;
  }

 private:
  std::array<std::optional<predict::SeasonalForecaster>, kResourceCount> f_;
};

// The mean of the members' ordered quantiles (itself ordered).
class Lstm final : public WorkloadForecaster {
 public:
  Lstm(predict::lstm::Ensemble models, double eta, double sample_seconds) : models_(std::move(models)) {
    streams_.reserve(models_.size());
    for (const auto& m : models_) streams_.emplace_back(*m, std::map<std::string, double>{}, eta, sample_seconds);
  }
  void observe(std::int64_t now, const std::array<double, kResourceCount>& usage) override {
    predict::Observation o;
    o.step = steps_++;
    o.time = now;
    o.usage = usage;
    for (auto& s : streams_) s.observe(o);
    seen_ = seen_ || std::any_of(usage.begin(), usage.end(), [](double u) { return !std::isnan(u); });
  }
  bool forecast(Resource r, std::span<const double> levels, std::size_t lookahead,
                std::vector<std::vector<double>>& out) override {
    if (!seen_) return false;
    out.assign(lookahead, std::vector<double>(levels.size(), 0.0));
    const double share = 1.0 / static_cast<double>(streams_.size());
    member_.resize(levels.size());
    for (auto& s : streams_)
      for (std::size_t h = 1; h <= lookahead; ++h) {
        s.orderedQuantiles(r, h, levels, member_);
        for (std::size_t q = 0; q < levels.size(); ++q) out[h - 1][q] += share * member_[q];
      }
    return true;
  }

 private:
  predict::lstm::Ensemble models_;
  std::vector<predict::lstm::LstmStream> streams_;
  std::vector<double> member_;
  std::size_t steps_ = 0;
  bool seen_ = false;
};

class BestOf final : public WorkloadForecaster {
 public:
  BestOf(std::vector<std::unique_ptr<WorkloadForecaster>> c, double half_life)
      : c_(std::move(c)), loss_(c_.size(), half_life) {}
  void observe(std::int64_t now, const std::array<double, kResourceCount>& usage) override {
    for (Resource r : kAllResources) loss_.observe(r, usage[index(r)]);
    for (auto& c : c_) c->observe(now, usage);
    // What each candidate forecasts for the next sample, scored when it arrives.
    std::vector<std::vector<double>> one;
    for (Resource r : kAllResources)
      for (std::size_t i = 0; i < c_.size(); ++i) {
        std::optional<predict::SelectionQuantiles> q;
        if (c_[i]->forecast(r, predict::kSelectionLevels, 1, one)) {
          q.emplace();
          std::copy(one[0].begin(), one[0].end(), q->begin());
        }
        loss_.forecast(r, i, q);
      }
  }
  // Every candidate forecasts, the others into scratch, as the backtest's `auto` commits with
  // every candidate: each one's online state (the lstm's calibration of these levels and
  // horizons) keeps learning while another is chosen.
  bool forecast(Resource r, std::span<const double> levels, std::size_t lookahead,
                std::vector<std::vector<double>>& out) override {
    const std::size_t best = loss_.best(r);
    bool given = c_[best]->forecast(r, levels, lookahead, out);
    for (std::size_t i = 0; i < c_.size(); ++i) {
      if (i == best) continue;
      if (given) (void)c_[i]->forecast(r, levels, lookahead, scratch_);
      else  // the leader has none yet: the next that has
        given = c_[i]->forecast(r, levels, lookahead, out);
    }
    return given;
  }

 private:
  std::vector<std::unique_ptr<WorkloadForecaster>> c_;
  predict::RecentLoss loss_;
  std::vector<std::vector<double>> scratch_;
};

}  // namespace

ForecasterFactory bestOfForecasters(std::vector<ForecasterFactory> candidates, double half_life) {
  return [candidates, half_life] {
    std::vector<std::unique_ptr<WorkloadForecaster>> c;
    for (const auto& f : candidates) c.push_back(f());
    return std::make_unique<BestOf>(std::move(c), half_life);
  };
}

ForecasterFactory seasonalForecasters(predict::SeasonalOptions options) {
  return [options] { return std::make_unique<Seasonal>(options); };
}

ForecasterFactory lstmForecasters(predict::lstm::Ensemble models, double eta, double sample_seconds) {
  return [models, eta, sample_seconds] { return std::make_unique<Lstm>(models, eta, sample_seconds); };
}

}  // namespace foresight::loop

namespace foresight::loop {

Result<ForecasterFactory> makeForecasters(const std::string& kind,
                                          std::span<const std::filesystem::path> models,
                                          const predict::SeasonalOptions& seasonal,
                                          double sample_seconds) {
  if (kind == "seasonal") return seasonalForecasters(seasonal);
  if (kind != "lstm" && kind != "auto")
    return fail(ErrorCode::kInvalidArgument, "forecaster '{}': expected auto, lstm or seasonal", kind);
  auto e = predict::lstm::loadEnsemble(models);
  if (!e) return tl::unexpected(e.error());
  constexpr Resource kPlanned[] = {Resource::kCpu, Resource::kMemory};  // what the loop resizes
  for (std::size_t i = 0; i < e->size(); ++i)
    if (auto w = predict::lstm::untrainedResources(*(*e)[i], models[i].string(), kPlanned); !w.empty())
      spdlog::warn("{}", w);
  auto lstm = lstmForecasters(std::move(*e), predict::lstm::kDefaultEta, sample_seconds);
  if (kind == "lstm") return lstm;
  return bestOfForecasters({std::move(lstm), seasonalForecasters(seasonal)});
}

Result<ForecasterFactory> liveForecasters(const std::string& kind, std::span<const std::filesystem::path> models,
                                          double period) {
  predict::SeasonalOptions seasonal;
  seasonal.max_period = static_cast<std::size_t>(std::max(16.0, 600.0 / period));
  seasonal.errors = seasonal.max_period;
  return makeForecasters(kind, models, seasonal, period);
}

}  // namespace foresight::loop
