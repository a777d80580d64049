// `vpa`: the Kubernetes VPA recommender (vertical-pod-autoscaler/pkg/recommender), target only.
#include <array>
#include <optional>

#include "common.h"
#include "foresight/predict/baselines/baselines.h"
#include "foresight/predict/baselines/histogram.h"

namespace foresight::predict {
namespace {

// pkg/recommender/model/aggregations_config.go
constexpr double kCpuHalfLife = 24 * 3600.0;                // CPUHistogramDecayHalfLife
constexpr double kMemoryHalfLife = 24 * 3600.0;             // MemoryHistogramDecayHalfLife
constexpr double kMemoryAggregationInterval = 24 * 3600.0;  // MemoryAggregationInterval
// pkg/recommender/logic/recommender.go
constexpr double kSafetyMarginFraction = 0.15;  // safetyMarginFraction
constexpr double kTargetPercentile = 0.9;       // targetCPUPercentile / targetMemoryPeaksPercentile
constexpr double kPodMinCpuCores = 0.025;       // podMinCPUMillicores = 25
constexpr double kPodMinMemoryBytes = 250.0 * 1024 * 1024;  // podMinMemoryMb = 250

class VpaPolicy final : public Policy {
 public:
  explicit VpaPolicy(const SeriesContext& ctx)
      : cpu_(&vpaCpuBuckets(), kCpuHalfLife),
        memory_(&vpaMemoryBuckets(), kMemoryHalfLife),
        disk_(&rateBuckets(), kCpuHalfLife),
        network_(&rateBuckets(), kCpuHalfLife) {
    (void)ctx;
  }

  void observe(const Observation& o) override {
    const double t = static_cast<double>(o.time);
    // CPU: every sample, weight max(request, minSampleWeight); the request is unknown here.
    auto add_cpu_like = [&](DecayingHistogram& h, double v) {
      if (!std::isnan(v)) h.add(v, kVpaMinSampleWeight, t);
    };
    add_cpu_like(cpu_, o.usage[index(Resource::kCpu)]);
    add_cpu_like(disk_, o.usage[index(Resource::kDiskIo)]);
    add_cpu_like(network_, o.usage[index(Resource::kNetwork)]);
    if (double m = o.usage[index(Resource::kMemory)]; !std::isnan(m)) addMemory(m, t);
  }

  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    const DecayingHistogram& h = r == Resource::kCpu      ? cpu_
                                 : r == Resource::kMemory ? memory_
                                 : r == Resource::kDiskIo ? disk_
                                                          : network_;
    h.percentiles(knobs, out);
    const double floor = r == Resource::kCpu      ? kPodMinCpuCores
                         : r == Resource::kMemory ? kPodMinMemoryBytes
                                                  : 0.0;
    for (double& a : out) a = std::max(a * (1 + kSafetyMarginFraction), floor);
  }

 private:
  // container.go addMemorySample: one peak per aggregation interval, timestamped at the interval
  // end; a larger sample in the same interval replaces the peak (subtract old, add new).
  void addMemory(double usage, double t) {
    if (!window_end_) window_end_ = t;
    bool add_new_peak = false;
    if (t < *window_end_) {
      if (peak_ != 0 && usage > peak_) {
        memory_.subtract(peak_, 1.0, *window_end_);
        add_new_peak = true;
      }
    } else {
      double shift =
          std::floor((t - *window_end_) / kMemoryAggregationInterval) * kMemoryAggregationInterval +
          kMemoryAggregationInterval;
      *window_end_ += shift;
      peak_ = 0;
      add_new_peak = true;
    }
    if (add_new_peak) {
      memory_.add(usage, 1.0, *window_end_);
      peak_ = usage;
    }
  }

  DecayingHistogram cpu_, memory_, disk_, network_;
  std::optional<double> window_end_;
  double peak_ = 0;
};

class VpaFactory final : public PolicyFactory {
 public:
  Knob knob(Resource) const override { return {"percentile", kPercentileGrid, kTargetPercentile}; }
  std::unique_ptr<Policy> create(const SeriesContext& ctx, const trace::Series*) const override {
    return std::make_unique<VpaPolicy>(ctx);
  }
};

}  // namespace

std::unique_ptr<PolicyFactory> makeVpaFactory() { return std::make_unique<VpaFactory>(); }

}  // namespace foresight::predict
