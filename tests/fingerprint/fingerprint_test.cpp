// Fingerprint pipeline on synthetic series whose statistics are known in closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <random>

#include "foresight/fingerprint/fingerprint.h"
#include "support/mutate.h"

using namespace foresight;
using namespace foresight::fingerprint;

TEST(WindowStats, RampHasKnownMomentsAndNoPeriod) {
  std::vector<double> x(60);
  for (int i = 0; i < 60; ++i) x[i] = i;
  auto s = windowStats(x, 30);
  EXPECT_DOUBLE_EQ(s.mean, 29.5);
  EXPECT_NEAR(s.stddev, std::sqrt((60.0 * 60.0 - 1) / 12.0), 1e-9);  // uniform 0..n-1
  EXPECT_DOUBLE_EQ(s.max, 59);
  EXPECT_DOUBLE_EQ(s.p95, 56);  // sorted[floor(0.95 * 59)]
  EXPECT_NEAR(s.slope, 1.0, 1e-12);
  EXPECT_EQ(s.period, 0);
  EXPECT_NEAR(s.trend_strength, 1.0, 1e-9);
  EXPECT_NEAR(s.residual_std, 0.0, 1e-9);
}

TEST(WindowStats, ConstantAndMissing) {
  std::vector<double> c(30, 4.0);
  auto s = windowStats(c, 15);
  EXPECT_DOUBLE_EQ(s.stddev, 0);
  EXPECT_DOUBLE_EQ(s.burstiness, -1);  // (0 - 4) / (0 + 4)
  EXPECT_DOUBLE_EQ(s.slope, 0);
  std::vector<double> nan(30, NAN);
  EXPECT_TRUE(std::isnan(windowStats(nan, 15).mean));
  c[3] = NAN;  // a missing sample is ignored, not a zero
  EXPECT_DOUBLE_EQ(windowStats(c, 15).mean, 4.0);
}

// The shape the LSTM takes: hand-computed on an alternating window, and windowStats' own moments.
TEST(WindowShape, AlternatingWindowByHandAndAgreesWithWindowStats) {
  const std::vector<double> x = {1, 3, 1, 3, NAN, 3};
  const auto s = windowShape(x);
  // Finite samples 1,3,1,3,3: mean 2.2, variance (3*0.64 + 2*1.44)/5 = 0.96.
  EXPECT_DOUBLE_EQ(s.mean, 2.2);
  EXPECT_NEAR(s.stddev, std::sqrt(0.96), 1e-12);
  EXPECT_NEAR(s.burstiness, (std::sqrt(0.96) - 2.2) / (std::sqrt(0.96) + 2.2), 1e-12);
  // acf1 with the missing sample at the mean: deviations -1.2,.8,-1.2,.8,0,.8.
  const double num = -0.96 * 3 + 0.0 + 0.0, den = 1.44 * 2 + 0.64 * 3;
  EXPECT_NEAR(s.acf1, num / den, 1e-12);
  const auto w = windowStats(x, 3);
  EXPECT_DOUBLE_EQ(w.mean, s.mean);
  EXPECT_DOUBLE_EQ(w.stddev, s.stddev);
  EXPECT_DOUBLE_EQ(w.burstiness, s.burstiness);
  EXPECT_TRUE(std::isnan(w.acf1));  // the fingerprint's: 3 pairs of present samples, under 8
  EXPECT_TRUE(std::isnan(windowShape(std::vector<double>{NAN, NAN}).burstiness));
}

// A detail metric between tiered reads: one sample in ten present. Filled with the mean, the
// window had no present pair at lag 1 (acf1 0) and the filled-in stretches made a period of 10.
// Now the autocorrelation comes from the pairs that are present, the period and the
// decomposition are missing, and the slope is fitted through the present points only.
TEST(WindowStats, AWindowMostlyMissingIsNotFilledInWithAPeriod) {
  std::vector<double> smooth(200), sparse(200, NAN), half(200);
  for (int i = 0; i < 200; ++i) smooth[i] = 100 + 0.5 * i + 10 * std::sin(i / 15.0);
  for (int i = 0; i < 200; i += 10) sparse[i] = smooth[i];
  const auto full = windowStats(smooth, 100), tiered = windowStats(sparse, 100);
  EXPECT_TRUE(std::isnan(tiered.period));
  EXPECT_TRUE(std::isnan(tiered.seasonal_strength));
  EXPECT_TRUE(std::isnan(tiered.acf1));  // no two consecutive samples present
  EXPECT_NEAR(tiered.slope, full.slope, 0.05 * full.slope);
  // One sample in four missing: still decomposed, acf1 from the lag-1 pairs present; a complete
  // window's acf1 is the classical estimate.
  for (int i = 0; i < 200; ++i) half[i] = i % 4 == 3 ? NAN : smooth[i];
  const auto three_in_four = windowStats(half, 100);
  EXPECT_FALSE(std::isnan(three_in_four.period));
  EXPECT_GT(three_in_four.acf1, 0.9);
  EXPECT_NEAR(full.acf1, windowShape(smooth).acf1, 1e-12);
}

TEST(Decomposition, FindsThePeriodAndSplitsTrendFromSeason) {
  const std::size_t n = 120, period = 12;
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i)
    x[i] = 0.05 * i + 3.0 * std::sin(2 * std::numbers::pi * i / period);
  EXPECT_EQ(detectPeriod(x, 60), period);
  auto d = decompose(x, 60);
  ASSERT_EQ(d.period, period);
  // Away from the edges the moving average recovers the line and the season the sine.
  for (std::size_t i = period; i < n - period; ++i) {
    EXPECT_NEAR(d.trend[i], 0.05 * i, 0.05) << i;
    EXPECT_NEAR(d.seasonal[i], 3.0 * std::sin(2 * std::numbers::pi * i / period), 0.15) << i;
  }
  auto s = windowStats(x, 60);
  EXPECT_GT(s.seasonal_strength, 0.95);
  std::mt19937 rng(1);
  std::normal_distribution<double> noise;
  std::vector<double> white(n);
  for (double& e : white) e = noise(rng);
  EXPECT_EQ(detectPeriod(white, 60), 0u);
}

TEST(IncrementalPca, RecoversAPlaneAndFlagsPointsOffIt) {
  // 6-D data on a 2-D plane spanned by u and v.
  Eigen::VectorXd u(6), v(6);
  u << 1, 2, 0, -1, 0, 1;
  v << 0, 1, 1, 1, -2, 0;
  std::mt19937 rng(7);
  std::normal_distribution<double> g;
  IncrementalPca pca(6, 2);
  for (int i = 0; i < 500; ++i) pca.update(g(rng) * u + 3.0 * g(rng) * v + Eigen::VectorXd::Constant(6, 10));
  const Eigen::VectorXd on = 1.5 * u - 2.0 * v + Eigen::VectorXd::Constant(6, 10);
  Eigen::VectorXd off = on;
  off[2] += 5;  // leaves the plane
  EXPECT_LT(pca.reconstructionError(on), 1e-3 * pca.reconstructionError(off));
  EXPECT_GT(pca.reconstructionError(off), 10.0);
  EXPECT_EQ(pca.project(on).size(), 2);
}

// A feature constant for thousands of updates (memory at 100 MiB) that then moves by a page: its
// spread is floored at a thousandth of its size, so the score stays ordinary (before, the next
// scores ran to thousands for a hundred updates).
TEST(IncrementalPca, ATinyMoveOfAConstantFeatureIsNotAnAnomaly) {
  std::mt19937 rng(3);
  std::normal_distribution<double> g;
  IncrementalPca pca(4, 2);
  auto sample = [&](double memory) {
    Eigen::VectorXd x(4);
    const double a = g(rng), b = g(rng);
    x << a, a + 0.1 * g(rng), b, memory;
    return x;
  };
  for (int i = 0; i < 5000; ++i) pca.update(sample(100.0 * (1 << 20)));
  double typical = 0;
  for (int i = 0; i < 50; ++i) typical = std::max(typical, pca.reconstructionError(sample(100.0 * (1 << 20))));
  pca.update(sample(100.0 * (1 << 20) + 4096));
  const double after = pca.reconstructionError(sample(100.0 * (1 << 20) + 4096));
  EXPECT_LT(after, 2 * typical + 1) << "typical " << typical;
}

// Refreshes of the basis on stationary data keep each component's sign: the fingerprint vector
// does not flip. Two loadings of a component close in size flipped it under the rule "largest
// loading positive" (139 flips in 1795 fingerprints in a review's run).
TEST(IncrementalPca, ComponentsKeepTheirSignAcrossRefreshes) {
  std::mt19937 rng(7);
  std::normal_distribution<double> g;
  IncrementalPca pca(6, 3);
  Eigen::MatrixXd previous;
  int flips = 0, compared = 0;
  for (int i = 0; i < 4000; ++i) {
    Eigen::VectorXd x(6);
    const double a = g(rng), b = g(rng), c = g(rng);
    // Components whose two largest loadings are equal in expectation (x0 and x1, x2 and x3).
    x << a + 0.3 * g(rng), a + 0.3 * g(rng), b + 0.3 * g(rng), b + 0.3 * g(rng), 0.5 * c, g(rng);
    pca.update(x);
    if (i % 8 != 7 || i < 200) continue;
    if (previous.size()) {
      for (Eigen::Index k = 0; k < 3; ++k) {
        ++compared;
        flips += previous.col(k).dot(pca.basis().col(k)) < -0.9;
      }
    }
    previous = pca.basis();
  }
  EXPECT_GT(compared, 1000);
  EXPECT_EQ(flips, 0);
}

// A feature missing from some windows (a detail metric between its reads) is learnt from the
// windows that have it. It was taken as the running mean and counted in a count shared by all
// features: here its mean came out as 5 and its spread as 5.1 instead of 10 and 1.
TEST(IncrementalPca, AFeatureMissingFromSomeUpdatesIsLearntFromTheOthers) {
  IncrementalPca pca(2, 1);
  Eigen::VectorXd x(2);
  for (int i = 0; i < 100; ++i) {
    x << (i % 2 ? 1 : -1), std::numeric_limits<double>::quiet_NaN();
    pca.update(x);
  }
  for (int i = 0; i < 100; ++i) {
    x << (i % 2 ? 1 : -1), 10 + (i % 2 ? 1 : -1);
    pca.update(x);
  }
  EXPECT_EQ(pca.count(), 200u);
  x << 0, 10;
  EXPECT_NEAR(pca.normalise(x)[1], 0, 1e-9);
  x << 0, 11;
  EXPECT_NEAR(pca.normalise(x)[1], std::sqrt(99.0 / 100.0), 1e-9);  // sd sqrt(100/99)
}

// Two features that move together, the second present in every other update: their
// correlation is 1 over the updates having both. Counting the missing ones as the mean made it
// 0.7, so a point off their line scored 10 instead of standing out.
TEST(IncrementalPca, APairIsLearntFromTheUpdatesHavingBoth) {
  IncrementalPca pca(2, 1);
  const double cycle[4] = {1, -1, -1, 1};  // the even updates have the same mean and spread
  Eigen::VectorXd x(2);
  for (int i = 0; i < 1000; ++i) {
    const double a = cycle[i % 4];
    x << a, i % 2 == 0 ? a : std::numeric_limits<double>::quiet_NaN();
    pca.update(x);
  }
  Eigen::VectorXd on(2), off(2);
  on << 1, 1;
  off << 1, -1;
  EXPECT_LT(pca.reconstructionError(on), 1.0);
  EXPECT_GT(pca.reconstructionError(off), 100.0);
}

TEST(IncrementalPca, StateRoundTrips) {
  IncrementalPca pca(4, 2);
  std::mt19937 rng(3);
  std::normal_distribution<double> g;
  for (int i = 0; i < 50; ++i) {
    Eigen::VectorXd x(4);
    x << g(rng), 2 * g(rng), g(rng) + 1, i % 3 ? 0.5 * g(rng) : std::numeric_limits<double>::quiet_NaN();
    pca.update(x);
  }
  auto back = IncrementalPca::load(pca.save());
  ASSERT_TRUE(back);
  Eigen::VectorXd x(4);
  x << 0.3, -1, 2, 0.1;
  EXPECT_TRUE(back->project(x).isApprox(pca.project(x), 1e-12));
  EXPECT_DOUBLE_EQ(back->reconstructionError(x), pca.reconstructionError(x));
  back->update(x);
  pca.update(x);
  EXPECT_TRUE(back->normalise(x).isApprox(pca.normalise(x), 1e-12));
  EXPECT_FALSE(IncrementalPca::load(nlohmann::json{{"mean", {1, 2}}, {"m2", {1}}}));
  auto bad = pca.save();
  bad["pair_counts"] = std::vector<double>{1, 2};
  EXPECT_FALSE(IncrementalPca::load(bad));
}

// A state saved before per-pair counts (every feature counted in every update) still loads.
TEST(IncrementalPca, StateWithoutPairCountsLoads) {
  IncrementalPca pca(3, 2);
  std::mt19937 rng(5);
  std::normal_distribution<double> g;
  for (int i = 0; i < 40; ++i) pca.update(Eigen::Vector3d(g(rng), g(rng) + 3, 2 * g(rng)));
  auto j = pca.save();
  j.erase("pair_counts");
  j.erase("pair_means");
  auto back = IncrementalPca::load(j);
  ASSERT_TRUE(back) << back.error().message;
  const Eigen::Vector3d x(0.5, 2, -1);
  EXPECT_TRUE(back->normalise(x).isApprox(pca.normalise(x), 1e-12));
  back->update(x);
  pca.update(x);
  EXPECT_TRUE(back->normalise(x).isApprox(pca.normalise(x), 1e-12));
}

namespace {
double load(std::size_t i) { return 1.0 + 0.5 * std::sin(2 * std::numbers::pi * i / 10.0); }
}

TEST(Pipeline, EmitsEveryHopAndScoresABurstAsAnomalous) {
  Pipeline p({.window = 40, .hop = 5, .dim = 8}, {"cpu", "memory"});
  std::vector<Fingerprint> fps;
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0, 0.02);
  for (std::size_t i = 0; i < 400; ++i) {
    double cpu = load(i) + noise(rng);
    if (i >= 380) cpu = 8.0;  // a sustained burst at the end
    const double row[2] = {cpu, 1e9 + noise(rng) * 1e6};
    if (auto f = p.push(1000 * static_cast<std::int64_t>(i), row)) fps.push_back(*f);
  }
  ASSERT_EQ(fps.size(), 1 + (400 - 40) / 5);
  EXPECT_EQ(fps[0].time_ms, 39'000);
  EXPECT_EQ(fps.back().vector.size(), 8u);
  EXPECT_EQ(fps.back().features.size(), 2 * kStatCount);
  EXPECT_EQ(fps.back().features[0].first, "cpu.mean");
  // Normal windows once the model has settled vs. the burst windows.
  // The first window that holds the burst ends at t=384; the model has learnt from ~30 windows.
  double normal_max = 0;
  std::size_t burst = 0;
  for (std::size_t k = 0; k < fps.size(); ++k) {
    if (fps[k].time_ms >= 200'000 && fps[k].time_ms < 380'000) normal_max = std::max(normal_max, fps[k].anomaly);
    if (fps[k].time_ms == 384'000) burst = k;
  }
  ASSERT_GT(burst, 0u);
  EXPECT_GT(fps[burst].anomaly, 100 * normal_max);
  // The periodic cpu shows its period.
  EXPECT_DOUBLE_EQ(fps[40].features[7].second, 10);  // cpu.period
}

TEST(Pipeline, TraceSeriesAndLivePushesGiveTheSameFingerprints) {
  trace::Series s;
  s.id = "t";
  s.start = 1000;
  s.step_seconds = 60;
  for (std::size_t i = 0; i < 200; ++i) {
    s.usage[0].push_back(load(i));
    s.usage[1].push_back(2e9 + i);
  }
  Pipeline a({.window = 30, .hop = 10, .dim = 4}, resourceMetrics());
  Pipeline b({.window = 30, .hop = 10, .dim = 4}, resourceMetrics());
  auto from_trace = fingerprintSeries(s, a);
  std::vector<Fingerprint> live;
  for (std::size_t i = 0; i < 200; ++i) {
    const double row[4] = {s.usage[0][i], s.usage[1][i], NAN, NAN};
    if (auto f = b.push(1000 * (1000 + 60 * static_cast<std::int64_t>(i)), row)) live.push_back(*f);
  }
  ASSERT_EQ(from_trace.size(), live.size());
  ASSERT_FALSE(live.empty());
  EXPECT_EQ(from_trace.back().vector, live.back().vector);
  EXPECT_EQ(from_trace.back().time_ms, 1000 * (1000 + 60 * 199));  // the trace's seconds in ms
}

TEST(Pipeline, StateFileRoundTripsAndRejectsGarbage) {
  Pipeline p({.window = 20, .hop = 5, .dim = 3}, {"cpu"});
  for (std::size_t i = 0; i < 100; ++i) {
    const double row[1] = {load(i)};
    p.push(static_cast<std::int64_t>(i), row);
  }
  const auto file = std::filesystem::path(testing::TempDir()) / "fp-state.json";
  ASSERT_TRUE(p.saveState(file));
  auto q = Pipeline::loadState(file);
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(q->metrics(), p.metrics());
  EXPECT_EQ(q->config().window, 20u);
  EXPECT_EQ(q->pca().count(), p.pca().count());
  EXPECT_TRUE(q->pca().basis().isApprox(p.pca().basis(), 1e-12));
  { std::ofstream(file) << "{\"version\": 1}"; }
  auto bad = Pipeline::loadState(file);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kParse);
  EXPECT_EQ(Pipeline::loadState(file.string() + ".missing").error().code, ErrorCode::kNotFound);
  std::filesystem::remove(file);
}

// A state file out of shape (a value of another type, out of range, or removed, anywhere) is
// loaded or refused with the file named, never an exception, and a loaded one takes samples.
TEST(Pipeline, AStateFileOutOfShapeIsLoadedOrRefused) {
  Pipeline p({.window = 20, .hop = 5, .dim = 3}, {"cpu", "memory"});
  for (std::size_t i = 0; i < 100; ++i) {
    const double row[2] = {load(i), 2 * load(i)};
    p.push(static_cast<std::int64_t>(i), row);
  }
  const auto file = std::filesystem::path(testing::TempDir()) / "fp-state-damaged.json";
  ASSERT_TRUE(p.saveState(file));
  std::ifstream in(file);
  const nlohmann::json good = nlohmann::json::parse(in);
  std::mt19937 rng(17);
  int loaded = 0, refused = 0;
  for (int i = 0; i < 500; ++i) {
    nlohmann::json doc = good;
    test_support::mutateJson(doc, rng);
    { std::ofstream(file) << doc.dump(); }
    Result<Pipeline> q = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(q = Pipeline::loadState(file)) << doc.dump();
    if (!q) {
      ++refused;
      EXPECT_NE(q.error().message.find(file.filename().string()), std::string::npos) << q.error().message;
      continue;
    }
    ++loaded;
    std::vector<double> row(q->metrics().size(), 1.0);
    for (std::int64_t t = 0; t < 30; ++t) ASSERT_NO_THROW(q->push(1000 * t, row)) << doc.dump();
  }
  EXPECT_GT(loaded, 20);
  EXPECT_GT(refused, 100);
  std::filesystem::remove(file);
}
