#pragma once
// SeasonalForecaster: a per-workload streaming forecaster that needs no training, for the live
// loop (1 s samples, where a model trained on 5-minute traces does not apply) and as a backtest
// policy (`seasonal`).
//
// Point forecast for step t+h: the median of the values one, two, ... `cycles` periods earlier
// (± `jitter` steps) when a period is detected by autocorrelation, else the median of the last
// `recent` values. Quantiles: the point forecast plus the empirical quantiles of its own recent
// errors at that horizon (online split-conformal), so a trend or a burst pattern the point
// forecast misses widens the band by exactly what it has been missing.
//
// Thread-safety: none; one instance per workload and resource.

#include <cstddef>
#include <deque>
#include <optional>
#include <span>
#include <vector>

namespace foresight::predict {

struct SeasonalOptions {
  std::size_t horizon = 12;      // steps ahead kept ready (1..horizon)
  // Keep only h = horizon ready: what a caller that forecasts at one lead needs (the backtest
  // policy); each horizon costs a point forecast and an error set per step.
  bool only_horizon = false;
  std::size_t min_period = 4;    // steps
  std::size_t max_period = 288;  // steps; the history kept is 3 x max_period
  double min_acf = 0.4;          // autocorrelation needed to accept a period
  std::size_t cycles = 3;        // past cycles consulted
  std::size_t jitter = 1;        // steps either side of the seasonal position
  std::size_t recent = 12;       // window of the non-seasonal point forecast
  std::size_t errors = 288;      // recent errors kept per horizon
  std::size_t min_errors = 12;   // before that many errors, quantiles come from the raw samples
  // For resources that must not run short (memory): the point forecast is at least the last
  // value extrapolated along the recent growth, so a ramp is met before it arrives.
  bool follow_growth = false;
  std::size_t growth_window = 3;  // steps over which the growth per step is measured
};

class SeasonalForecaster {
 public:
  explicit SeasonalForecaster(SeasonalOptions options = {});

  // The usage of the next step; NaN is a missing value (kept as a gap).
  void observe(double usage);
  // Quantiles of step t+h (1 <= h <= horizon; h = horizon with only_horizon) at each level
  // (ascending), never negative.
  void forecast(std::size_t h, std::span<const double> levels, std::span<double> out) const;
  std::optional<std::size_t> period() const { return period_; }
  std::size_t steps() const { return steps_; }

 private:
  double pointForecast(std::size_t h) const;  // NaN when there is no history
  void samples(std::size_t h, std::vector<double>& out) const;
  void detectPeriod();
  void findPeriod();
  double at(std::size_t steps_ago) const;  // 0 = the last observed step

  SeasonalOptions o_;
  std::size_t first_h_;  // the horizons kept ready are first_h_..horizon; slot h - first_h_
  std::deque<double> history_;
  std::size_t steps_ = 0;
  std::optional<std::size_t> period_;
  // Per horizon slot: the point forecasts made for the next h steps, oldest first; the recent
  // errors, kept sorted and in arrival order (for eviction).
  std::vector<std::deque<double>> pending_;
  std::vector<std::vector<double>> sorted_errors_;
  std::vector<std::deque<double>> error_order_;
  mutable std::vector<double> scratch_;
};

}  // namespace foresight::predict
