// The VPA histogram against hand-computed cases from the recommender's definitions.
#include "foresight/predict/baselines/histogram.h"

#include <gtest/gtest.h>

#include <cmath>

namespace foresight::predict {
namespace {

// bucketStart(n) = f * (1.05^n - 1) / 0.05
double start(double f, int n) { return f * (std::pow(1.05, n) - 1) / 0.05; }

TEST(VpaBuckets, EdgesFollowTheExponentialFormula) {
  const auto& b = vpaCpuBuckets();
  EXPECT_DOUBLE_EQ(b.start(0), 0.0);
  EXPECT_NEAR(b.start(1), 0.01, 1e-12);
  EXPECT_NEAR(b.start(2), 0.0205, 1e-12);
  EXPECT_NEAR(b.start(3), 0.031525, 1e-12);
  EXPECT_NEAR(b.start(100), start(0.01, 100), 1e-9);
  // numBuckets = ceil(log(max * 0.05 / f + 1) / log 1.05) + 1, with max 1000 cores
  EXPECT_EQ(
      b.count(),
      static_cast<std::size_t>(std::ceil(std::log(1000 * 0.05 / 0.01 + 1) / std::log(1.05))) + 1);
  EXPECT_EQ(b.find(0.0), 0u);
  EXPECT_EQ(b.find(0.005), 0u);  // below the first bucket size
  EXPECT_EQ(b.find(0.01), 1u);   // a bucket's start belongs to it
  EXPECT_EQ(b.find(0.015), 1u);
  EXPECT_EQ(b.find(0.0206), 2u);          // (an exact edge may round down, as in the Go original)
  EXPECT_EQ(b.find(1e9), b.count() - 1);  // clamped to the last bucket
}

TEST(VpaHistogram, PercentileIsTheUpperEdgeOfItsBucket) {
  Histogram h(&vpaCpuBuckets());
  EXPECT_TRUE(h.empty());
  EXPECT_DOUBLE_EQ(h.percentile(0.9), 0.0);
  h.add(0.015, 1.0);  // bucket 1: [0.01, 0.0205)
  EXPECT_NEAR(h.percentile(0.5), 0.0205, 1e-12);
  EXPECT_NEAR(h.percentile(1.0), 0.0205, 1e-12);
  h.add(1.0, 3.0);
  // cumulative: bucket of 0.015 holds 1/4 of the weight
  EXPECT_NEAR(h.percentile(0.25), 0.0205, 1e-12);
  const auto b1 = vpaCpuBuckets().find(1.0);
  EXPECT_NEAR(h.percentile(0.26), start(0.01, static_cast<int>(b1) + 1), 1e-9);
  // several percentiles in one pass agree with one at a time
  std::vector<double> ps = {0.1, 0.25, 0.26, 0.9}, out(4);
  h.percentiles(ps, out);
  for (std::size_t i = 0; i < ps.size(); ++i) EXPECT_DOUBLE_EQ(out[i], h.percentile(ps[i]));
}

TEST(VpaHistogram, SubtractEmptiesABucket) {
  Histogram h(&vpaCpuBuckets());
  h.add(0.015, 1.0);
  h.add(1.0, 1.0);
  h.subtract(1.0, 1.0);
  EXPECT_NEAR(h.percentile(1.0), 0.0205, 1e-12);
  h.subtract(0.015, 1.0);
  EXPECT_TRUE(h.empty());
}

TEST(VpaDecayingHistogram, HalfLifeHalvesTheWeightOfOlderSamples) {
  const double half_life = 3600;
  DecayingHistogram h(&vpaCpuBuckets(), half_life);
  h.add(0.015, 1.0, 0);
  h.add(1.0, 1.0, half_life);  // one half-life later: counts twice as much
  // Weights 1 : 2. P30 (threshold 0.9 of 3) stays in the old sample's bucket; P50 (1.5) does not.
  // Without decay (1 : 1) P50 would be the old sample's bucket.
  EXPECT_NEAR(h.percentile(0.3), 0.0205, 1e-12);
  const auto b1 = vpaCpuBuckets().find(1.0);
  EXPECT_NEAR(h.percentile(0.5), start(0.01, static_cast<int>(b1) + 1), 1e-9);
}

TEST(VpaDecayingHistogram, ReferenceShiftKeepsRelativeWeights) {
  // 150 half-lives apart: the reference must move (exponent limit 100) without overflow.
  const double half_life = 60;
  DecayingHistogram h(&vpaCpuBuckets(), half_life);
  h.add(0.015, 1.0, 0);
  h.add(1.0, 1.0, 150 * half_life);
  h.add(0.015, 2.0, 150 * half_life);  // same time: 2 : 1 against the 1.0 sample
  // The first sample has decayed away (2^-150 is below epsilon after the shift).
  EXPECT_NEAR(h.percentile(0.6), 0.0205, 1e-12);
  const auto b1 = vpaCpuBuckets().find(1.0);
  EXPECT_NEAR(h.percentile(0.7), start(0.01, static_cast<int>(b1) + 1), 1e-9);
}

}  // namespace
}  // namespace foresight::predict
