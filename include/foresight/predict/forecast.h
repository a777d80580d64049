#pragma once
// A forecast: quantiles of each resource's demand over a horizon. What the predictor hands to the
// allocator, and what a quantile-producing backtest policy commits from.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "foresight/core/resource.h"

namespace foresight::predict {

struct Forecast {
  std::string workload;
  std::int64_t time = 0;          // Unix seconds of the last observed step
  std::int64_t step_seconds = 0;  // horizon step h (1-based) covers time + h * step_seconds
  std::vector<double> levels;     // quantile levels, ascending, e.g. 0.5 0.8 0.9 0.95 0.99
  // values[r][h - 1][q]: resource r, horizon step h, quantile levels[q]; empty if not forecast.
  std::array<std::vector<std::vector<double>>, kResourceCount> values;

  std::size_t horizon() const {
    for (const auto& v : values)
      if (!v.empty()) return v.size();
    return 0;
  }

  // The quantile at `level`, linearly interpolated between the forecast's levels and clamped to
  // its outermost ones. NaN when the resource or step is absent.
  double quantile(Resource r, std::size_t h, double level) const {
    const auto& v = values[index(r)];
    if (h == 0 || h > v.size() || levels.empty()) return NAN;
    const auto& q = v[h - 1];
    if (level <= levels.front()) return q.front();
    if (level >= levels.back()) return q.back();
    auto it = std::upper_bound(levels.begin(), levels.end(), level);
    const std::size_t hi = static_cast<std::size_t>(it - levels.begin()), lo = hi - 1;
    const double w = (level - levels[lo]) / (levels[hi] - levels[lo]);
    return q[lo] + w * (q[hi] - q[lo]);
  }
};

}  // namespace foresight::predict
