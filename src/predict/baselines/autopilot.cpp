// `autopilot`: Google Autopilot's moving-window recommenders (Rzadca et al., "Autopilot: workload
// autoscaling at Google", EuroSys 2020, section 3.2).
#include "common.h"
#include "foresight/predict/baselines/baselines.h"
#include "foresight/predict/baselines/histogram.h"

namespace foresight::predict {
namespace {

constexpr double kCpuHalfLife = 12 * 3600.0;     // the paper's CPU half-life
constexpr double kMemoryHalfLife = 48 * 3600.0;  // the paper's memory half-life
// Default j: the 95th percentile, the setting the paper gives for latency-sensitive jobs as we
// read it; the backtest sweeps j anyway.
constexpr double kDefaultJ = 0.95;
constexpr double kDefaultMemoryMargin = 0.0;  // memory recommendation = the decayed max itself

class AutopilotPolicy final : public Policy {
 public:
  AutopilotPolicy()
      : cpu_(&vpaCpuBuckets(), kCpuHalfLife),
        disk_(&rateBuckets(), kCpuHalfLife),
        network_(&rateBuckets(), kCpuHalfLife) {}

  void observe(const Observation& o) override {
    const double t = static_cast<double>(o.time);
    // Load-adjusted histogram: each sample weighs as much as its value, so the j-th percentile is
    // the level below which j of the *load* (not of the time) falls.
    auto add = [&](DecayingHistogram& h, double v) {
      if (!std::isnan(v) && v > 0) h.add(v, v, t);
    };
    add(cpu_, o.usage[index(Resource::kCpu)]);
    add(disk_, o.usage[index(Resource::kDiskIo)]);
    add(network_, o.usage[index(Resource::kNetwork)]);
    // Memory: the maximum over a window whose samples decay, i.e. max_k u(t-k) 2^(-age/half-life),
    // kept as an envelope in O(1).
    if (double m = o.usage[index(Resource::kMemory)]; !std::isnan(m)) {
      if (last_memory_time_) {
        memory_peak_ *= std::exp2(-(t - *last_memory_time_) / kMemoryHalfLife);
      }
      memory_peak_ = std::max(memory_peak_, m);
      last_memory_time_ = t;
      memory_mean_.add(m);
    }
  }

  void commit(Resource r, std::span<const double> knobs, std::span<double> out) override {
    if (r == Resource::kMemory) {
      for (std::size_t i = 0; i < knobs.size(); ++i) {
        out[i] = withMarginAndFloor(memory_peak_, knobs[i], memory_mean_.value());
      }
      return;
    }
    const DecayingHistogram& h = r == Resource::kCpu      ? cpu_
                                 : r == Resource::kDiskIo ? disk_
                                                          : network_;
    h.percentiles(knobs, out);
  }

 private:
  DecayingHistogram cpu_, disk_, network_;
  double memory_peak_ = 0;
  std::optional<double> last_memory_time_;
  RunningMean memory_mean_;
};

class AutopilotFactory final : public PolicyFactory {
 public:
  Knob knob(Resource r) const override {
    if (r == Resource::kMemory) return {"margin", kMarginGrid, kDefaultMemoryMargin};
    return {"percentile", kPercentileGrid, kDefaultJ};
  }
  std::unique_ptr<Policy> create(const SeriesContext&, const trace::Series*) const override {
    return std::make_unique<AutopilotPolicy>();
  }
};

}  // namespace

std::unique_ptr<PolicyFactory> makeAutopilotFactory() {
  return std::make_unique<AutopilotFactory>();
}

}  // namespace foresight::predict
