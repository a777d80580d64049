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

}  // namespace

ForecasterFactory seasonalForecasters(predict::SeasonalOptions options) {
  return [options] { return std::make_unique<Seasonal>(options); };
}

ForecasterFactory lstmForecasters(std::shared_ptr<const predict::lstm::LstmModel> model, double eta) {
  return [model, eta] { return std::make_unique<Lstm>(model, eta); };
}

}  // namespace foresight::loop
