#pragma once
// Pieces shared by the baselines.

#include <cmath>
#include <vector>

namespace foresight::predict {

// Knob grids, least to most conservative. They reach far enough for violation rates under 0.5%,
// and the percentiles start low enough that `vpa`'s memory (daily peaks, x 1.15) reaches 2%
// violations: from 0.5 it stayed under 0.6% on the July trace, leaving its iso_risk at 2% and 1%
// unmeasured.
inline const std::vector<double> kPercentileGrid = {0.1,  0.2,  0.3,  0.4,  0.5,   0.6,   0.7,
                                                    0.8,  0.85, 0.9,  0.95, 0.97,  0.98,  0.99,
                                                    0.995, 0.999, 1.0};
inline const std::vector<double> kMarginGrid = {0,   0.05, 0.1, 0.15, 0.2, 0.3, 0.4,
                                                0.5, 0.75, 1,   1.5,  2,   3,   5};

// A multiplicative margin cannot lift an allocation of zero (an idle hour before a burst), so the
// margin policies (reactive, static, autopilot memory) allocate at least m x the series' mean
// usage so far: the same knob then also sets a floor that grows with the risk aversion.
inline double withMarginAndFloor(double base, double margin, double mean_so_far) {
  return std::max(base * (1 + margin), margin * mean_so_far);
}

class RunningMean {
 public:
  void add(double v) {
    if (std::isnan(v)) return;
    ++n_;
    mean_ += (v - mean_) / static_cast<double>(n_);
  }
  double value() const { return mean_; }

 private:
  long n_ = 0;
  double mean_ = 0;
};

}  // namespace foresight::predict
