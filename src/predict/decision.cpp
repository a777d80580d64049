#include "foresight/predict/decision.h"

#include <algorithm>
#include <cmath>

namespace foresight::predict {

void RunningScale::add(double u) {
  if (std::isnan(u)) return;
  u = std::max(u, 0.0);
  if (n_ > 0 && u > 8.0 * value()) {
    if (restart_after_ > 0) {
      above_sum_ += u;
      if (++above_ == restart_after_) {
        n_ = restart_after_;
        mean_ = above_sum_ / restart_after_;
        above_ = 0;
        above_sum_ = 0;
        ++restarts_;
        return;
      }
    }
    u = 8.0 * value();
  } else {
    above_ = 0;
    above_sum_ = 0;
  }
  ++n_;
  mean_ += (u - mean_) / static_cast<double>(n_);
}

double scaleFloor(Resource r) {
  switch (r) {
    case Resource::kCpu: return 1e-3;                 // a thousandth of a core
    case Resource::kMemory: return 1024.0 * 1024.0;   // 1 MiB
    default: return 1024.0;                           // 1 KiB/s
  }
}

std::array<RunningScale, kResourceCount> runningScales(std::uint32_t restart_after) {
  return {RunningScale(scaleFloor(Resource::kCpu), restart_after),
          RunningScale(scaleFloor(Resource::kMemory), restart_after),
          RunningScale(scaleFloor(Resource::kDiskIo), restart_after),
          RunningScale(scaleFloor(Resource::kNetwork), restart_after)};
}

CostChoice costOptimal(std::span<const double> levels, std::span<const double> values,
                       double scale, double kappa, IdleFloor floor) {
  if (levels.empty() || values.size() != levels.size()) return {NAN, NAN};
  std::size_t k = 0;
  double v = std::max(values[0], 0.0);
  while (k + 1 < levels.size()) {
    const double next = std::max(values[k + 1], v);
    // Expected unused allocation grows by about (next - v) x P(u <= a) over the step (the
    // mean level of the pair); the violation cost falls by kappa x scale x the level gained.
    const double extra_unused = (next - v) * 0.5 * (levels[k] + levels[k + 1]);
    if (extra_unused >= kappa * scale * (levels[k + 1] - levels[k])) break;
    ++k;
    v = next;
  }
  if (floor == IdleFloor::kScaled) v = std::max(v, std::max(0.0, 2 * levels[k] - 1) * scale);
  return {v, levels[k]};
}

void costOptimalSweep(std::span<const double> levels, std::span<const double> values, double scale,
                      std::span<const double> kappas, IdleFloor floor, std::span<double> out) {
  for (std::size_t i = 0; i < kappas.size(); ++i) {
    out[i] = costOptimal(levels, values, scale, kappas[i], floor).value;
    if (i > 0) out[i] = std::max(out[i], out[i - 1]);
  }
}

}  // namespace foresight::predict
