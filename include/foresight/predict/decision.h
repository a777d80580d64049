#pragma once
// From a quantile forecast to one allocation: the workload's burst-robust scale and the
// violation-cost (newsvendor) rule that the quantile-forecasting policies share.

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "foresight/core/resource.h"

namespace foresight::predict {

// The causal, burst-robust level of one resource: a running mean of the usage so far with each
// sample clipped to 8x the current level, so one burst cannot inflate it for days.
// With `restart_after` = N > 0, N samples in a row above the clip are a level shift, not a burst:
// the mean restarts from those N samples. Without it a workload that idled for days before it
// started keeps a scale far below its level for days (docs/model.md, "a workload that starts idle").
class RunningScale {
 public:
  explicit RunningScale(double floor = 1e-9, std::uint32_t restart_after = 0)
      : floor_(floor), restart_after_(restart_after) {}
  void add(double u);
  double value() const { return std::max(mean_, floor_); }
  std::uint64_t restarts() const { return restarts_; }

 private:
  double floor_, mean_ = 0;
  std::uint64_t n_ = 0, restarts_ = 0;
  std::uint32_t restart_after_, above_ = 0;  // samples in a row above the clip
  double above_sum_ = 0;                     // their sum, unclipped
};

// The smallest scale a resource is given (0.001 cores, 1 MiB, 1 KiB/s), so an idle workload's
// relative quantities stay finite.
double scaleFloor(Resource r);

// One RunningScale per resource, each with its resource's floor.
std::array<RunningScale, kResourceCount> runningScales(std::uint32_t restart_after = 0);

// Knob `violation_cost` (kappa): a step with usage above the allocation costs as much as kappa x
// the workload's scale of allocation left unused for one step. The allocation minimising expected
// unused allocation + kappa x scale x P(violation) is the quantile where the forecast's density
// falls to p / (kappa x scale) (newsvendor). Because the cost is relative to each workload's own
// scale, no workload is starved for its size; a workload whose tail is expensive to cover (rare,
// large bursts) is given a lower coverage than a steady one — which a fixed quantile level per
// workload cannot do, and a fixed margin on a recent peak does only by accident.
inline const std::vector<double> kViolationCostGrid = {1,   2,   4,    8,    16,   32,  64,
                                                       128, 256, 512, 1024, 2048, 4096};

// Whether an allocation is lifted to the idle-burst floor max(0, 2 level - 1) x scale. A forecaster
// whose upper quantiles sit at zero for a workload that was idle in its window (seasonal) needs
// the floor to reach low risk at all. The lstm's calibrated quantiles, learnt across workloads,
// already carry that burst risk: with the floor its held-back validation workloads kept more
// allocation unused at every risk level and reached no lower violation rate (docs/model.md).
enum class IdleFloor { kScaled, kNone };

struct CostChoice {
  double value = 0;  // the allocation, max(quantile, floor)
  double level = 0;  // the quantile level chosen
};

// `levels` ascending in (0, 1), `values` the forecast at those levels (made non-decreasing here).
// The choice climbs the levels while the extra allocation is cheaper than the violation
// probability it removes, then applies the idle-burst floor at the level chosen, if asked to.
CostChoice costOptimal(std::span<const double> levels, std::span<const double> values,
                       double scale, double kappa, IdleFloor floor);

// costOptimal(...).value for each of `kappas`, made non-decreasing along them (a knob sweep).
void costOptimalSweep(std::span<const double> levels, std::span<const double> values, double scale,
                      std::span<const double> kappas, IdleFloor floor, std::span<double> out);

}  // namespace foresight::predict
