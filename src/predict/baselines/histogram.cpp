#include "foresight/predict/baselines/histogram.h"

#include <cassert>
#include <cmath>
#include <stdexcept>

namespace foresight::predict {

ExponentialBuckets::ExponentialBuckets(double max_value, double first_bucket_size, double ratio,
                                       double epsilon)
    : first_(first_bucket_size), ratio_(ratio), log_ratio_(std::log(ratio)), epsilon_(epsilon) {
  if (max_value <= 0 || first_bucket_size <= 0 || ratio <= 1) {
    throw std::invalid_argument("ExponentialBuckets: bad parameters");
  }
  count_ = static_cast<std::size_t>(
               std::ceil(std::log(max_value * (ratio - 1) / first_bucket_size + 1) / log_ratio_)) +
           1;
  starts_.resize(count_ + 1);
  for (std::size_t n = 0; n <= count_; ++n) {
    starts_[n] = first_ * (std::pow(ratio_, static_cast<double>(n)) - 1) / (ratio_ - 1);
  }
}

std::size_t ExponentialBuckets::find(double value) const {
  if (value < first_) return 0;
  auto bucket = static_cast<std::size_t>(std::log(value * (ratio_ - 1) / first_ + 1) / log_ratio_);
  return bucket >= count_ ? count_ - 1 : bucket;
}

Histogram::Histogram(const ExponentialBuckets* buckets)
    : buckets_(buckets), weight_(buckets->count(), 0.0), min_bucket_(buckets->count() - 1) {}

void Histogram::add(double value, double weight) {
  assert(weight >= 0);
  std::size_t b = buckets_->find(value);
  weight_[b] += weight;
  total_ += weight;
  if (b < min_bucket_ && weight_[b] >= buckets_->epsilon()) min_bucket_ = b;
  if (b > max_bucket_ && weight_[b] >= buckets_->epsilon()) max_bucket_ = b;
}

void Histogram::subtract(double value, double weight) {
  assert(weight >= 0);
  std::size_t b = buckets_->find(value);
  if (weight > weight_[b] - buckets_->epsilon()) weight = weight_[b];
  total_ -= weight;
  weight_[b] -= weight;
  updateMinMax();
}

void Histogram::scale(double factor) {
  assert(factor >= 0);
  for (std::size_t b = min_bucket_; b <= max_bucket_; ++b) weight_[b] *= factor;
  total_ *= factor;
  updateMinMax();
}

void Histogram::updateMinMax() {
  const double eps = buckets_->epsilon();
  const std::size_t last = buckets_->count() - 1;
  while (weight_[min_bucket_] < eps && min_bucket_ < last) ++min_bucket_;
  while (weight_[max_bucket_] < eps && max_bucket_ > 0) --max_bucket_;
}

bool Histogram::empty() const { return weight_[min_bucket_] < buckets_->epsilon(); }

double Histogram::percentile(double p) const {
  double out = 0;
  percentiles(std::span<const double>(&p, 1), std::span<double>(&out, 1));
  return out;
}

void Histogram::percentiles(std::span<const double> ps, std::span<double> out) const {
  if (empty()) {
    for (double& o : out) o = 0.0;
    return;
  }
  double partial = 0;
  std::size_t b = min_bucket_;
  bool added = false;  // whether weight_[b] is already in `partial`
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const double threshold = ps[i] * total_;
    for (;;) {
      if (!added) {
        partial += weight_[b];
        added = true;
      }
      if (b >= max_bucket_ || partial >= threshold) break;
      ++b;
      added = false;
    }
    out[i] = b < buckets_->count() - 1 ? buckets_->start(b + 1) : buckets_->start(b);
  }
}

DecayingHistogram::DecayingHistogram(const ExponentialBuckets* buckets, double half_life_seconds)
    : histogram_(buckets), half_life_(half_life_seconds) {}

void DecayingHistogram::add(double value, double weight, double time) {
  histogram_.add(value, weight * decayFactor(time));
}

void DecayingHistogram::subtract(double value, double weight, double time) {
  histogram_.subtract(value, weight * decayFactor(time));
}

void DecayingHistogram::shiftReference(double time) {
  // The reference stays an integer multiple of the half-life.
  double new_reference = std::floor(time / half_life_ + 0.5) * half_life_;
  if (reference_) {
    double exponent = std::floor((*reference_ - new_reference) / half_life_ + 0.5);
    histogram_.scale(std::ldexp(1.0, static_cast<int>(exponent)));
  }
  reference_ = new_reference;
}

double DecayingHistogram::decayFactor(double time) {
  constexpr double kMaxDecayExponent = 100;
  if (!reference_ || time > *reference_ + half_life_ * kMaxDecayExponent) shiftReference(time);
  return std::exp2((time - *reference_) / half_life_);
}

const ExponentialBuckets& vpaCpuBuckets() {
  static const ExponentialBuckets b(1000.0, 0.01, 1 + kVpaBucketGrowth, kVpaEpsilon);
  return b;
}
const ExponentialBuckets& vpaMemoryBuckets() {
  static const ExponentialBuckets b(1e12, 1e7, 1 + kVpaBucketGrowth, kVpaEpsilon);
  return b;
}
const ExponentialBuckets& rateBuckets() {
  static const ExponentialBuckets b(1e12, 1e3, 1 + kVpaBucketGrowth, kVpaEpsilon);
  return b;
}

}  // namespace foresight::predict
