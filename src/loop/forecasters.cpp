#include <algorithm>
#include <cmath>
#include <optional>

#include "foresight/loop/forecaster.h"
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

class Lstm final : public WorkloadForecaster {
 public:
  Lstm(std::shared_ptr<const predict::lstm::LstmModel> m, double eta)
      : model_(std::move(m)), stream_(*model_, {}, eta) {}
  void observe(std::int64_t now, const std::array<double, kResourceCount>& usage) override {
    predict::Observation o;
    o.step = steps_++;
    o.time = now;
    o.usage = usage;
    stream_.observe(o);
    seen_ = seen_ || std::any_of(usage.begin(), usage.end(), [](double u) { return !std::isnan(u); });
  }
  bool forecast(Resource r, std::span<const double> levels, std::size_t lookahead,
                std::vector<std::vector<double>>& out) override {
    if (!seen_) return false;
    out.assign(lookahead, std::vector<double>(levels.size()));
    for (std::size_t h = 1; h <= lookahead; ++h)
      for (std::size_t q = 0; q < levels.size(); ++q) {
        const double v = std::max(stream_.quantile(r, h, levels[q]), 0.0);
        // Per-level online offsets can cross; the planner needs ordered bands.
        out[h - 1][q] = q ? std::max(v, out[h - 1][q - 1]) : v;
      }
    return true;
  }

 private:
  std::shared_ptr<const predict::lstm::LstmModel> model_;
  predict::lstm::LstmStream stream_;
  std::size_t steps_ = 0;
  bool seen_ = false;
};

// The levels the selection is scored on: the centre and both tails.
constexpr std::array<double, 5> kScoreLevels = {0.1, 0.5, 0.9, 0.95, 0.99};

class BestOf final : public WorkloadForecaster {
 public:
  BestOf(std::vector<std::unique_ptr<WorkloadForecaster>> c, double half_life)
      : c_(std::move(c)), decay_(std::exp2(-1.0 / half_life)) {
    for (auto& s : state_) s.assign(c_.size(), Score{});
  }
  void observe(std::int64_t now, const std::array<double, kResourceCount>& usage) override {
    for (Resource r : kAllResources) {
      const double u = usage[index(r)];
      if (std::isnan(u)) continue;
      for (auto& sc : state_[index(r)]) {
        if (!sc.has_pending) continue;
        double loss = 0;
        for (std::size_t q = 0; q < kScoreLevels.size(); ++q) {
          const double d = u - sc.pending[q];
          loss += d >= 0 ? kScoreLevels[q] * d : (kScoreLevels[q] - 1) * d;
        }
        sc.loss = sc.scored ? decay_ * sc.loss + (1 - decay_) * loss : loss;
        sc.scored = true;
      }
    }
    for (auto& c : c_) c->observe(now, usage);
    // What each candidate forecasts for the next sample, scored when it arrives.
    std::vector<std::vector<double>> one;
    for (Resource r : kAllResources)
      for (std::size_t i = 0; i < c_.size(); ++i) {
        auto& sc = state_[index(r)][i];
        sc.has_pending = !std::isnan(usage[index(r)]) && c_[i]->forecast(r, kScoreLevels, 1, one);
        if (sc.has_pending) std::copy(one[0].begin(), one[0].end(), sc.pending.begin());
      }
  }
  bool forecast(Resource r, std::span<const double> levels, std::size_t lookahead,
                std::vector<std::vector<double>>& out) override {
    // Candidates not yet scored rank last; among scored ones the lowest loss wins, ties to the
    // first listed.
    std::size_t best = 0;
    for (std::size_t i = 1; i < c_.size(); ++i) {
      const auto& a = state_[index(r)][i];
      const auto& b = state_[index(r)][best];
      if (a.scored && (!b.scored || a.loss < b.loss)) best = i;
    }
    if (c_[best]->forecast(r, levels, lookahead, out)) return true;
    for (std::size_t i = 0; i < c_.size(); ++i)  // the leader has no forecast yet: any other
      if (i != best && c_[i]->forecast(r, levels, lookahead, out)) return true;
    return false;
  }

 private:
  struct Score {
    double loss = 0;
    bool scored = false, has_pending = false;
    std::array<double, kScoreLevels.size()> pending{};
  };
  std::vector<std::unique_ptr<WorkloadForecaster>> c_;
  double decay_;
  std::array<std::vector<Score>, kResourceCount> state_;
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

ForecasterFactory lstmForecasters(std::shared_ptr<const predict::lstm::LstmModel> model, double eta) {
  return [model, eta] { return std::make_unique<Lstm>(model, eta); };
}

}  // namespace foresight::loop

namespace foresight::loop {

Result<ForecasterFactory> makeForecasters(const std::string& kind,
                                          const std::filesystem::path& model,
                                          const predict::SeasonalOptions& seasonal) {
  if (kind == "seasonal") return seasonalForecasters(seasonal);
  if (kind != "lstm" && kind != "auto")
    return fail(ErrorCode::kInvalidArgument, "forecaster '{}': expected auto, lstm or seasonal", kind);
  auto m = predict::lstm::loadModel(model);
  if (!m) return tl::unexpected(m.error());
  auto lstm = lstmForecasters(std::make_shared<const predict::lstm::LstmModel>(std::move(*m)),
                              predict::lstm::kDefaultEta);
  if (kind == "lstm") return lstm;
  return bestOfForecasters({std::move(lstm), seasonalForecasters(seasonal)});
}

}  // namespace foresight::loop
