#pragma once
// The Kubernetes VPA recommender's histograms (vertical-pod-autoscaler/pkg/recommender/util:
// histogram.go, histogram_options.go, decaying_histogram.go), re-implemented so that the `vpa`
// baseline behaves as the recommender does, bucket for bucket. Autopilot's load-adjusted histogram
// reuses the same bucketing.
//
// Thread-safety: none; one histogram per series and resource.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace foresight::predict {

// Exponential buckets: bucket n starts at first * (ratio^n - 1) / (ratio - 1).
class ExponentialBuckets {
 public:
  ExponentialBuckets(double max_value, double first_bucket_size, double ratio, double epsilon);
  std::size_t count() const { return count_; }
  std::size_t find(double value) const;
  double start(std::size_t bucket) const { return starts_[bucket]; }
  double epsilon() const { return epsilon_; }

 private:
  double first_, ratio_, log_ratio_, epsilon_;
  std::size_t count_;
  std::vector<double> starts_;
};

// histogram.go: per-bucket weights; Percentile() returns the upper edge of the bucket where the
// cumulative weight reaches p (the start of the last bucket, which has no upper edge).
class Histogram {
 public:
  explicit Histogram(const ExponentialBuckets* buckets);
  void add(double value, double weight);
  void subtract(double value, double weight);
  void scale(double factor);
  bool empty() const;
  double percentile(double p) const;
  // Several percentiles in one pass; `ps` must be ascending.
  void percentiles(std::span<const double> ps, std::span<double> out) const;
  double totalWeight() const { return total_; }
  const ExponentialBuckets& buckets() const { return *buckets_; }

 private:
  void updateMinMax();
  const ExponentialBuckets* buckets_;
  std::vector<double> weight_;
  double total_ = 0;
  std::size_t min_bucket_, max_bucket_ = 0;
};

// decaying_histogram.go: a sample's weight is multiplied by 2^((t - reference) / half_life); the
// reference moves forward (a multiple of half_life) when the exponent passes 100.
class DecayingHistogram {
 public:
  DecayingHistogram(const ExponentialBuckets* buckets, double half_life_seconds);
  void add(double value, double weight, double time);
  void subtract(double value, double weight, double time);
  double percentile(double p) const { return histogram_.percentile(p); }
  void percentiles(std::span<const double> ps, std::span<double> out) const {
    histogram_.percentiles(ps, out);
  }
  bool empty() const { return histogram_.empty(); }

 private:
  double decayFactor(double time);
  void shiftReference(double time);
  Histogram histogram_;
  double half_life_;
  std::optional<double> reference_;
};

// VPA's bucketing constants (pkg/recommender/model/aggregations_config.go):
// 5% growth, epsilon = 0.001 * minSampleWeight(0.1); CPU from 0.01 to 1000 cores, memory from
// 1e7 to 1e12 bytes. disk_io and network (bytes/s), which VPA does not size, get buckets from
// 1e3 to 1e12 bytes/s: the same 5% resolution over the range those rates take.
inline constexpr double kVpaBucketGrowth = 0.05;
inline constexpr double kVpaMinSampleWeight = 0.1;
inline constexpr double kVpaEpsilon = 0.001 * kVpaMinSampleWeight;
const ExponentialBuckets& vpaCpuBuckets();
const ExponentialBuckets& vpaMemoryBuckets();
const ExponentialBuckets& rateBuckets();

}  // namespace foresight::predict
