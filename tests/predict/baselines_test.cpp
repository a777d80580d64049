// Baseline policies on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>

#include "foresight/predict/baselines/baselines.h"
#include "foresight/predict/baselines/histogram.h"

namespace foresight::predict {
namespace {

double start(double f, std::size_t n) {
  return f * (std::pow(1.05, static_cast<double>(n)) - 1) / 0.05;
}
double upperEdge(const ExponentialBuckets& b, double first, double v) {
  return start(first, b.find(v) + 1);
}

SeriesContext context(std::size_t warmup = 0) {
  SeriesContext c;
  c.step_seconds = 300;
  c.warmup_steps = warmup;
  c.resources = {true, true, true, true};
  return c;
}

Observation obs(std::size_t step, std::int64_t time, double cpu, double memory = NAN) {
  Observation o;
  o.step = step;
  o.time = time;
  o.usage = {cpu, memory, NAN, NAN};
  return o;
}

double commitOne(Policy& p, Resource r, double knob) {
  double out = 0;
  p.commit(r, std::span<const double>(&knob, 1), std::span<double>(&out, 1));
  return out;
}

TEST(Vpa, CpuTargetIs115PercentOfTheP90UpperEdge) {
  auto f = makeVpaFactory();
  EXPECT_DOUBLE_EQ(f->knob(Resource::kCpu).default_value, 0.9);
  auto p = f->create(context(), nullptr);
  // 10 samples at the same time: nine of 0.5 cores and one of 2 cores: P90 is 0.5's bucket.
  for (int i = 0; i < 9; ++i) p->observe(obs(i, 0, 0.5));
  p->observe(obs(9, 0, 2.0));
  EXPECT_NEAR(commitOne(*p, Resource::kCpu, 0.9), 1.15 * upperEdge(vpaCpuBuckets(), 0.01, 0.5),
              1e-9);
  EXPECT_NEAR(commitOne(*p, Resource::kCpu, 0.95), 1.15 * upperEdge(vpaCpuBuckets(), 0.01, 2.0),
              1e-9);
}

TEST(Vpa, MinimumCpuAndMemory) {
  auto p = makeVpaFactory()->create(context(), nullptr);
  p->observe(obs(0, 0, 0.001, 1e6));
  EXPECT_DOUBLE_EQ(commitOne(*p, Resource::kCpu, 0.9), 0.025);                   // 25 millicores
  EXPECT_DOUBLE_EQ(commitOne(*p, Resource::kMemory, 0.9), 250.0 * 1024 * 1024);  // 250 MiB
}

TEST(Vpa, MemoryKeepsOnePeakPerDayAndALargerPeakReplacesTheSmaller) {
  auto p = makeVpaFactory()->create(context(), nullptr);
  const double mb = 1e6;
  p->observe(obs(0, 0, NAN, 400 * mb));
  p->observe(obs(1, 3600, NAN, 900 * mb));  // same 24 h interval, larger: replaces 400 MB
  // One peak only: even P50 is the 900 MB bucket. Were both kept, P50 would be 400 MB's.
  const double edge900 = upperEdge(vpaMemoryBuckets(), 1e7, 900 * mb);
  EXPECT_NEAR(commitOne(*p, Resource::kMemory, 0.5), 1.15 * edge900, 1);
  p->observe(obs(2, 7200, NAN, 500 * mb));  // smaller, same interval: ignored
  EXPECT_NEAR(commitOne(*p, Resource::kMemory, 0.5), 1.15 * edge900, 1);
  // Next interval: a new peak of 500 MB, stamped at the interval end (48 h), against 900 MB stamped
  // at 24 h: with a 24 h half-life they weigh 2 : 1. Sorted by value, 500 MB comes first.
  p->observe(obs(3, 25 * 3600, NAN, 500 * mb));
  const double edge500 = upperEdge(vpaMemoryBuckets(), 1e7, 500 * mb);
  EXPECT_NEAR(commitOne(*p, Resource::kMemory, 0.5), 1.15 * edge500, 1);
  // P60 (threshold 1.8 of 3) separates the weightings: 500's bucket at 2 : 1, 900's at 1 : 1.
  EXPECT_NEAR(commitOne(*p, Resource::kMemory, 0.6), 1.15 * edge500, 1);
  EXPECT_NEAR(commitOne(*p, Resource::kMemory, 0.7), 1.15 * edge900, 1);
}

TEST(Autopilot, CpuIsALoadAdjustedPercentile) {
  auto f = makeAutopilotFactory();
  auto p = f->create(context(), nullptr);
  // Nine samples of 0.1 cores and one of 1.0: by time, P50 is 0.1; by load (0.9 vs 1.0 core),
  // half the load lies in the 1.0 sample's bucket.
  for (int i = 0; i < 9; ++i) p->observe(obs(i, 0, 0.1));
  p->observe(obs(9, 0, 1.0));
  EXPECT_NEAR(commitOne(*p, Resource::kCpu, 0.5), upperEdge(vpaCpuBuckets(), 0.01, 1.0), 1e-9);
  EXPECT_NEAR(commitOne(*p, Resource::kCpu, 0.45), upperEdge(vpaCpuBuckets(), 0.01, 0.1), 1e-9);
}

TEST(Autopilot, MemoryIsADecayedMaximum) {
  auto p = makeAutopilotFactory()->create(context(), nullptr);
  p->observe(obs(0, 0, NAN, 1000));
  p->observe(obs(1, 48 * 3600, NAN, 100));  // one half-life later the old peak counts as 500
  EXPECT_NEAR(commitOne(*p, Resource::kMemory, 0.0), 500, 1e-9);
  p->observe(obs(2, 96 * 3600, NAN, 300));  // 250 by now: the new sample wins
  EXPECT_NEAR(commitOne(*p, Resource::kMemory, 0.0), 300, 1e-9);
}

TEST(Reactive, MaxOverTheLastHourTimesOnePlusMargin) {
  auto p = makeReactiveFactory()->create(context(), nullptr);
  std::vector<double> u = {5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2};  // 13 steps of 300 s
  for (std::size_t t = 0; t < 12; ++t) p->observe(obs(t, 300 * static_cast<long>(t), u[t]));
  EXPECT_DOUBLE_EQ(commitOne(*p, Resource::kCpu, 0.15), 5 * 1.15);  // 5 is within 12 steps
  p->observe(obs(12, 3600, u[12]));
  EXPECT_DOUBLE_EQ(commitOne(*p, Resource::kCpu, 0.15), 2 * 1.15);  // 5 has left the hour
}

TEST(Reactive, FloorLiftsAnIdleHour) {
  auto p = makeReactiveFactory()->create(context(), nullptr);
  p->observe(obs(0, 0, 24));
  for (std::size_t t = 1; t < 24; ++t) p->observe(obs(t, 300 * static_cast<long>(t), 0));
  // Hour max 0; mean so far 1: the allocation is m x 1.
  EXPECT_DOUBLE_EQ(commitOne(*p, Resource::kCpu, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(commitOne(*p, Resource::kCpu, 0.0), 0.0);
}

TEST(Static, FreezesThePeakOfTheWarmUp) {
  auto p = makeStaticFactory()->create(context(/*warmup=*/3), nullptr);
  p->observe(obs(0, 0, 1));
  p->observe(obs(1, 300, 4));
  p->observe(obs(2, 600, 2));
  p->observe(obs(3, 900, 100));  // after the warm-up: ignored
  EXPECT_DOUBLE_EQ(commitOne(*p, Resource::kCpu, 0.1), 4 * 1.1);
}

}  // namespace
}  // namespace foresight::predict
