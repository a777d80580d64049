#include <algorithm>
#include <cmath>
#include <complex>
#include <numeric>
#include <stdexcept>

#include <unsupported/Eigen/FFT>

#include "foresight/predict/seasonal.h"

namespace foresight::predict {
namespace {

// Linear interpolation between order statistics (numpy's default), on a sorted sample.
double sortedQuantile(const std::vector<double>& v, double q) {
  if (v.empty()) return NAN;
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

double median(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  return sortedQuantile(v, 0.5);
}

}  // namespace

SeasonalForecaster::SeasonalForecaster(SeasonalOptions options)
    : o_(options), first_h_(o_.only_horizon ? o_.horizon : 1), pending_(o_.horizon + 1 - first_h_),
      sorted_errors_(pending_.size()), error_order_(pending_.size()) {}

double SeasonalForecaster::at(std::size_t steps_ago) const {
  return history_[history_.size() - 1 - steps_ago];
}

void SeasonalForecaster::observe(double usage) {
  // Score the forecasts made for this step, then make new ones.
  if (!std::isnan(usage)) {
    for (std::size_t h = first_h_; h <= o_.horizon; ++h) {
      auto& p = pending_[h - first_h_];
      if (p.size() < h) continue;  // nothing was forecast h steps ago
      const double predicted = p.front();
      if (std::isnan(predicted)) continue;
      const double e = usage - predicted;
      auto& sorted = sorted_errors_[h - first_h_];
      auto& order = error_order_[h - first_h_];
      sorted.insert(std::upper_bound(sorted.begin(), sorted.end(), e), e);
      order.push_back(e);
      if (order.size() > o_.errors) {
        sorted.erase(std::lower_bound(sorted.begin(), sorted.end(), order.front()));
        order.pop_front();
      }
    }
  }
  for (std::size_t h = first_h_; h <= o_.horizon; ++h) {
    if (pending_[h - first_h_].size() == h) pending_[h - first_h_].pop_front();
  }
  history_.push_back(usage);
  if (history_.size() > 3 * o_.max_period) history_.pop_front();
  ++steps_;
  // Re-detect the period every half of the shortest period we look for, but at most every
  // max_period / 4 steps (detection costs O(history x lags)).
  const std::size_t every = std::max<std::size_t>(o_.min_period, o_.max_period / 4);
  if (steps_ % every == 0) detectPeriod();
  for (std::size_t h = first_h_; h <= o_.horizon; ++h) pending_[h - first_h_].push_back(pointForecast(h));
}

void SeasonalForecaster::detectPeriod() {
  const auto before = period_;
  findPeriod();
  // Conformal errors are only exchangeable for one point forecaster: a new period starts afresh
  // (until min_errors accrue, quantiles come from the seasonal samples themselves).
  if (period_ != before) {
    for (auto& e : sorted_errors_) e.clear();
    for (auto& e : error_order_) e.clear();
  }
}

void SeasonalForecaster::findPeriod() {
  // Autocorrelation of the history through an FFT (Wiener-Khinchin; zero-padded so it is linear,
  // not circular): O(n log n) instead of O(n x lags). Missing values count as the mean.
  const std::size_t n = history_.size();
  if (n < 4 * o_.min_period) return;
  double sum = 0;
  std::size_t cnt = 0;
  for (double v : history_)
    if (!std::isnan(v)) sum += v, ++cnt;
  if (cnt < 2 * o_.min_period) return;
  const double mean = sum / static_cast<double>(cnt);
  std::size_t size = 1;
  while (size < 2 * n) size <<= 1;
  std::vector<double> x(size, 0.0);
  for (std::size_t i = 0; i < n; ++i) x[i] = std::isnan(history_[i]) ? 0.0 : history_[i] - mean;
  Eigen::FFT<double> fft;
  std::vector<std::complex<double>> spectrum;
  fft.fwd(spectrum, x);
  for (auto& c : spectrum) c = std::norm(c);
  std::vector<double> acov;
  fft.inv(acov, spectrum);
  period_.reset();
  if (acov[0] <= 1e-12 * static_cast<double>(n)) return;  // flat: nothing periodic
  // The first peak of the ACF above min_acf after it has dipped below it: multiples of the true
  // period have peaks as high, and picking the highest would choose them.
  bool dipped = false;
  double best = 0;
  for (std::size_t lag = o_.min_period; lag <= std::min(o_.max_period, n / 2); ++lag) {
    const double acf = acov[lag] / acov[0];  // biased estimate
    if (acf < o_.min_acf) {
      if (period_) break;  // past the first qualifying peak
      dipped = true;
      continue;
    }
    if (dipped && acf > best) best = acf, period_ = lag;
  }
}

void SeasonalForecaster::samples(std::size_t h, std::vector<double>& out) const {
  out.clear();
  const std::size_t n = history_.size();
  if (period_) {
    const std::size_t p = *period_;
    for (std::size_t k = 1; k <= o_.cycles; ++k) {
      for (std::size_t d = 0; d <= 2 * o_.jitter; ++d) {
        // Step t+h-kP+(d-jitter), as "steps ago" from t: kP - h - d + jitter.
        const long ago = static_cast<long>(k * p + o_.jitter) - static_cast<long>(h + d);
        if (ago < 0 || static_cast<std::size_t>(ago) >= n) continue;
        const double v = at(static_cast<std::size_t>(ago));
        if (!std::isnan(v)) out.push_back(v);
      }
    }
  }
  if (out.empty()) {
    for (std::size_t ago = 0; ago < std::min(o_.recent, n); ++ago) {
      const double v = at(ago);
      if (!std::isnan(v)) out.push_back(v);
    }
  }
}

double SeasonalForecaster::pointForecast(std::size_t h) const {
  samples(h, scratch_);
  double point = scratch_.empty() ? NAN : median(scratch_);
  const std::size_t w = o_.growth_window;
  if (o_.follow_growth && history_.size() > w) {
    const double last = at(0), before = at(w);
    if (!std::isnan(last) && !std::isnan(before)) {
      const double growth = std::max(0.0, (last - before) / static_cast<double>(w));
      point = std::isnan(point) ? last + growth * h : std::max(point, last + growth * h);
    }
  }
  return point;
}

void SeasonalForecaster::forecast(std::size_t h, std::span<const double> levels,
                                  std::span<double> out) const {
  if (h < first_h_ || h > o_.horizon) throw std::out_of_range("SeasonalForecaster: horizon not kept ready");
  const auto& errors = sorted_errors_[h - first_h_];
  if (errors.size() >= o_.min_errors) {
    const double point = pointForecast(h);
    for (std::size_t i = 0; i < levels.size(); ++i) {
      out[i] = std::isnan(point) ? NAN : std::max(0.0, point + sortedQuantile(errors, levels[i]));
    }
    return;
  }
  samples(h, scratch_);
  std::sort(scratch_.begin(), scratch_.end());
  for (std::size_t i = 0; i < levels.size(); ++i) {
    out[i] = scratch_.empty() ? NAN : std::max(0.0, sortedQuantile(scratch_, levels[i]));
  }
}

}  // namespace foresight::predict
