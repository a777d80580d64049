#pragma once
// Controllers that size one resource limit of a live workload, one decision per sampling interval.
// The closed-loop experiment (`foresight bench closed-loop`) runs the three side by side:
//   static    the peak of a warm-up x (1 + margin), then fixed
//   reactive  threshold autoscaling: raise after pressure is seen, lower after it has stopped
//   foresight forecast the next seconds and set the limit before the demand arrives
//
// Thread-safety: none; one controller per workload and resource.

#include <deque>
#include <limits>
#include <memory>
#include <string>

#include "foresight/allocate/planner.h"
#include "foresight/loop/forecaster.h"

namespace foresight::loop {

inline constexpr double kUnlimited = std::numeric_limits<double>::infinity();

// What one sampling interval showed.
struct Interval {
  double usage = 0;       // mean usage over the interval (cores, or bytes)
  double demand = 0;      // usage plus what pressure held back (cpu: + throttled time / interval)
  bool pressure = false;  // cpu: throttled; memory: usage above 90% of the limit
  double limit = kUnlimited;  // the limit in force during the interval
};

class Controller {
 public:
  virtual ~Controller() = default;
  // The limit for the next interval.
  virtual double decide(const Interval& observed) = 0;
};

struct StaticOptions {
  std::size_t warmup_intervals = 40;  // unlimited while the peak is measured
  double margin = 0.15;
};

struct ReactiveOptions {
  double up_factor = 1.5;           // on pressure: limit x 1.5 ...
  double headroom = 0.25;           // ... and at least usage x 1.25
  std::size_t quiet_intervals = 5;  // lower only after this many intervals without pressure
  double min_limit = 0;
};

// Foresight: the streaming forecaster's quantiles for the next `lookahead` intervals, handed to
// the allocator's Planner (allocate/planner.h), whose rules (headroom, hysteresis, cooldown, step
// limits, bounds, the memory usage floor) decide the limit.
struct ForesightOptions {
  ForecasterFactory forecaster = seasonalForecasters({});
  std::size_t lookahead = 2;  // intervals the limit must cover
  Resource resource = Resource::kCpu;
  allocate::ResourcePolicy policy;
  double interval_seconds = 1.0;  // for the planner's cooldowns
};

std::unique_ptr<Controller> makeStaticController(StaticOptions o);
std::unique_ptr<Controller> makeReactiveController(ReactiveOptions o);
std::unique_ptr<Controller> makeForesightController(ForesightOptions o);

}  // namespace foresight::loop
