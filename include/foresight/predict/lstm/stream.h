#pragma once
// One workload's LSTM forecaster as it runs live or in the backtest: the network's state advanced
// one observation at a time (never re-running the window), split-conformal offsets from training,
// and an online adaptive-conformal tracker per (resource, horizon, level) — scored when the usage
// of the step a quantile was made for arrives — which follows the workload's own behaviour.

#include <array>
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "foresight/predict/lstm/model.h"

namespace foresight::predict::lstm {

// The online tracker's step in z space: fast enough to follow a behaviour change within a few
// hundred steps, small enough not to chase single bursts (docs/model.md).
inline constexpr double kDefaultEta = 0.02;

class LstmStream {
 public:
  // `eta`: step of the online tracker in z space (0: split conformal only). `sample_seconds`: the
  // period of the observations (0: the model's step); it sets when a scale restarts.
  LstmStream(const LstmModel& model, const std::map<std::string, double>& metadata, double eta,
             double sample_seconds = 0);

  void observe(const Observation& o);
  // The calibrated quantile at `level` of resource r, h steps (1..horizon) after the last
  // observation, in the resource's units, before any floor. Each call is recorded for the
  // online calibration of (r, h, level).
  double quantile(Resource r, std::size_t h, double level);
  // quantile() at each of `levels` (ascending), h steps ahead, at least 0 and made non-decreasing:
  // per-level online offsets can cross, and bands must stay ordered.
  void orderedQuantiles(Resource r, std::size_t h, std::span<const double> levels, std::span<double> out);
  double scale(Resource r) const { return fb_.scale(r); }
  std::size_t horizon() const { return m_.horizon; }

 private:
  struct Tracker {
    std::size_t h = 1;
    double level = 0;
    double adj = 0;                        // online correction in z space
    std::vector<double> pending;           // per ring slot: the value given for a step
    std::vector<std::size_t> pending_for;  // the step each slot is for (SIZE_MAX: none)
  };
  Tracker& tracker(Resource r, std::size_t h, double level);

  const LstmModel& m_;
  FeatureBuilder fb_;
  CpuStepper st_;
  std::vector<float> x_;
  double eta_;
  std::size_t steps_ = 0;  // observations so far; the last one is step steps_ - 1
  // Head quantiles per (resource, horizon), computed on first use after each observation.
  std::vector<std::vector<double>> z_;
  std::vector<bool> z_valid_;
  std::array<std::vector<Tracker>, kResourceCount> trackers_;
};

// Runs a whole series through each member's LstmStream (split conformal + online calibration at
// every horizon and level) and returns the forecast made after step `at` (0-based; clamps to the
// last): at the first member's levels, the mean of the members' ordered quantiles.
Result<Forecast> forecastSeries(const Ensemble& models, const trace::Series& s, std::size_t at);

}  // namespace foresight::predict::lstm
